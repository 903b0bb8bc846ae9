"""`python -m tflkit ...`: the same CLI as the `tflkit` console script."""

import sys

from tflkit.cli import main

sys.exit(main())
