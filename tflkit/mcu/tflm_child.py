"""The side of tflkit.mcu.tflm that runs in a child process (through tflkit.core.isolate): TFLM is native code that can
crash its process on a too-small arena or a malformed file, so the parent never loads it itself.
- `run`: construct the interpreter with an N-byte arena (construction allocates every tensor: TFLM allocates nothing
  later); optionally print TFLM's own allocation report, run it once on zeros, or run every image of a batch (already
  in the input's dtype, one per invoke) and return the outputs.
- `search`: the smallest arena that allocates, searched between LO (known to fail) and HI (known to work): doubling
  from 1 KiB, then bisection. Each size is sent (Trying) before it is tried and its outcome (Tried) after, so when a
  size crashes the process the parent knows which one it was (the last message) and goes on from there.
TFLM's own messages go to this process's stdout and stderr (C stdio); the parent reads them for the reason of a
failure and for the allocation report.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from tflkit.core import isolate


@dataclass(frozen=True)
class Outcome:
    """One load: did TFLM allocate (and invoke), TFLM's refusal when it did not, the outputs of a batch when asked."""

    ok: bool
    error: str = ""
    outputs: np.ndarray | None = None  # one row per image


@dataclass(frozen=True)
class Trying:
    arena: int


@dataclass(frozen=True)
class Tried:
    arena: int
    ok: bool


def run(path: str, arena: int, invoke: bool = False, allocations: bool = False,
        images: np.ndarray | None = None) -> Outcome:
    try:
        interpreter = _load(path, arena)
        if allocations:
            interpreter.print_allocations()
            _flush_c_stdio()  # the report survives a crash in the invoke that follows
        outputs = None
        if images is not None:
            outputs = _run_images(interpreter, images)
        elif invoke:
            detail = interpreter.get_input_details(0)
            interpreter.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
            interpreter.invoke()
    except (RuntimeError, ValueError) as exc:
        return Outcome(False, str(exc).strip())
    except Exception as exc:  # noqa: BLE001  (the Python side reading a damaged flatbuffer: struct.error, ...)
        return Outcome(False, f"not a model TFLite Micro can read ({type(exc).__name__}: {str(exc).strip()[:160]})")
    finally:
        _flush_c_stdio()
    return Outcome(True, outputs=outputs)


def search(path: str, lo: int, hi: int) -> None:
    def works(size: int) -> bool:
        isolate.send(Trying(size))
        try:
            _load(path, size)
            ok = True
        except (RuntimeError, ValueError):
            ok = False
        isolate.send(Tried(size, ok))
        return ok

    size = max(1024, 2 * lo)
    while size < hi:
        if works(size):
            hi = size
            break
        lo, size = size, size * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if works(mid):
            hi = mid
        else:
            lo = mid


def _load(model: str, arena: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_file(model, arena_size=arena)


def _run_images(interpreter, images: np.ndarray) -> np.ndarray:
    results = []
    for image in images:
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        results.append(np.array(interpreter.get_output(0)).reshape(-1))
    return np.stack(results)


def _flush_c_stdio() -> None:
    """TFLM prints through C stdio, block-buffered into a file: flush it, as the process's exit would."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass
