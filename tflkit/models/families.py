"""Imports every architecture module so that its entry points register. Add a family here."""

from tflkit.models import (
    efficientnetv2,  # noqa: F401
    mobilenetv3,  # noqa: F401
    resnet,  # noqa: F401
    resnet8,  # noqa: F401
    shufflenetv2,  # noqa: F401
    squeezenet,  # noqa: F401
)
