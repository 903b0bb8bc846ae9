"""Imports every architecture module so that its entry points register. Add a family here."""

from tflkit.models import efficientnetv2  # noqa: F401
from tflkit.models import mobilenetv3  # noqa: F401
from tflkit.models import resnet  # noqa: F401
from tflkit.models import shufflenetv2  # noqa: F401
from tflkit.models import squeezenet  # noqa: F401
