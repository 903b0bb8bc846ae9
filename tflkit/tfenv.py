"""Import TensorFlow quietly: its C++ start-up logging says nothing a tflkit user can act on, and would bury
tflkit's one-line errors.

Part of it ("All log messages before absl::InitializeLog() ...", "Could not find cuda drivers") is printed while
the library loads, before TF_CPP_MIN_LOG_LEVEL or absl settings apply, so stderr (file descriptor 2, where C++
writes) is pointed at /dev/null for the import alone. A failing import still raises its Python exception.
"""

import contextlib
import os
import sys


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if "tensorflow" not in sys.modules:
        with _stderr_to_devnull():
            import tensorflow  # noqa: F401
    import absl.logging
    import tensorflow as tf

    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel("ERROR")
    return tf
