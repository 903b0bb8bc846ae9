"""Keep TensorFlow's and LiteRT's own log noise off a tflkit user's terminal, unless they ask for it (`--verbose`).

Their C++ start-up and run-time logging ("Could not find cuda drivers", "All log messages before
absl::InitializeLog() ...", "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", converter debug lines)
says nothing a user can act on and would bury tflkit's one-line errors. Part of it is printed while the library
loads, before TF_CPP_MIN_LOG_LEVEL or absl settings apply, and LiteRT ignores TF_CPP_MIN_LOG_LEVEL altogether, so
this works on file descriptor 2, where C++ writes:
- `quiet_tensorflow()` imports TensorFlow with fd 2 pointed at /dev/null (a failing import still raises);
- `filtered_stderr()` passes fd 2 through a filter that drops the known noise lines and keeps every other line,
  for the length of a CLI command (child processes inherit it).
`TFLKIT_VERBOSE=1` (what `--verbose` sets, inherited by child processes) turns both off.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

VERBOSE_ENV = "TFLKIT_VERBOSE"

# Lines TensorFlow, XLA, absl and LiteRT print on their own. A glog-style line ("I0000 00:00:17... 123 file.cc:45]
# ...", or TF's "2026-11-30 12:00:00.1: W tensorflow/...cc:45] ...") at info, warning or error level is native
# library chatter; a fatal one (F) is kept.
NOISE = re.compile(
    r"^(?:[IWE]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|INFO: (?:Created TensorFlow Lite .*delegate|Initialized TensorFlow Lite runtime)"
    r"|.*(?:Could not find cuda drivers|Unable to register cu(?:DNN|FFT|BLAS) factory|TF-TRT Warning"
    r"|oneDNN custom operations are on|This TensorFlow binary is optimized to use available CPU"
    r"|To enable the following instructions|computation placer already registered"
    r"|failed call to cuInit|Estimated count of arithmetic ops))"
    # absl's Python warnings (tensorflow-datasets' "Variant folder ... has no dataset_info.json")
    r"|WARNING:absl:"
    # the MLIR quantizer's settings echo, one per int8 conversion
    r"|fully_quantize: \d+, inference_type: \d+, input_inference_type: "
)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def set_verbose(on: bool) -> None:
    """For this process and its children: TensorFlow's logging as it comes (on) or quiet (off, unless
    TFLKIT_VERBOSE=1 is already set)."""
    if on:
        os.environ[VERBOSE_ENV] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    elif not verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


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
    """Import TensorFlow (quietly unless verbose) and set its Python loggers to errors only; returns it."""
    if verbose():
        import tensorflow as tf

        return tf
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


@contextlib.contextmanager
def filtered_stderr(noise: re.Pattern = NOISE):
    """Route file descriptor 2 through a thread that drops lines matching `noise` (no-op when verbose)."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def relay():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                if not noise.match(line.decode(errors="replace")):
                    os.write(saved, line)

    thread = threading.Thread(target=relay, name="tflkit-stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end in this process: the relay reads to EOF
        thread.join(timeout=5)  # a child process still holding the pipe must not hang the exit
        if not thread.is_alive():
            os.close(saved)
