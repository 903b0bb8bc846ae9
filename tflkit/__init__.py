"""tflkit: pick, train, quantize, convert and benchmark TFLite image classifiers.

This package's top level imports nothing heavy: TensorFlow is imported only by the modules that need it,
so the CLI's --help, the host runtime and the Android side start fast and run on a board with only LiteRT.
"""

__version__ = "0.1.0"
