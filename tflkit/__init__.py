"""tflkit: pick, train, quantize, convert and benchmark TFLite image classifiers.

This package's top level imports nothing heavy: TensorFlow is imported only by the modules that need it,
so the CLI's --help, the host runtime and the Android side start fast and run on a board with only LiteRT.
"""

__version__ = "0.1.0"

# The Python API (tflkit.api), loaded on first use: `import tflkit` stays light, and the package root (which the
# bottom modules import for __version__) depends on nothing above them.
API = ("train", "Run", "evaluate", "bench", "demo", "models", "dataset", "import_weights", "boards", "mcu", "Study",
       "pick", "tune", "inspect", "Failed")


def __getattr__(name):
    if name in API:
        import importlib

        return getattr(importlib.import_module("tflkit.api"), name)
    raise AttributeError(f"module 'tflkit' has no attribute {name!r}")
