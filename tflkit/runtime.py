"""The host TFLite runtime, whichever is installed: LiteRT (ai_edge_litert), tflite_runtime, or tf.lite.

Imports no TensorFlow unless tf.lite is the only runtime or is asked for, so it runs on a board that has only a
runtime wheel.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from tflkit.errors import ModelFileError, UsageError

RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tf.lite")
_MODULES = {
    "ai_edge_litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
    "tf.lite": "tensorflow.lite.python.interpreter",
}


def available_runtimes() -> list[str]:
    found = []
    for name in RUNTIMES:
        try:
            spec = importlib.util.find_spec(_MODULES[name].split(".")[0])
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            found.append(name)
    return found


def resolve_runtime(name: str | None = None) -> str:
    present = available_runtimes()
    if name is None:
        if not present:
            raise UsageError("no TFLite runtime installed; pip install ai-edge-litert")
        return present[0]
    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {name!r}; choose from: {', '.join(RUNTIMES)}")
    if name not in present:
        raise UsageError(f"runtime {name!r} is not installed here (installed: {', '.join(present) or 'none'})")
    return name


def interpreter_module(runtime: str | None = None):
    runtime = resolve_runtime(runtime)
    if runtime == "tf.lite":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return importlib.import_module(_MODULES[runtime])


def check_tflite_file(path) -> Path:
    """A clear error for a missing, empty or non-TFLite file before the runtime prints a C++ traceback."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ModelFileError(f"not a TFLite flatbuffer (no TFL3 identifier): {path}")
    return path


def load_interpreter(path, threads: int | None = None, xnnpack: bool = True, runtime: str | None = None,
                     preserve_all_tensors: bool = False):
    path = check_tflite_file(path)
    module = interpreter_module(runtime)
    kwargs = {"model_path": str(path), "num_threads": threads}
    if not xnnpack:
        kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if preserve_all_tensors:
        kwargs["experimental_preserve_all_tensors"] = True
    try:
        interpreter = module.Interpreter(**kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"cannot load {path}: {str(exc).strip().splitlines()[0]}") from None
    return interpreter
