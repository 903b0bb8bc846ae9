"""Load a .tflite in a throw-away process before tflkit's own does.

A malformed flatbuffer can crash LiteRT's C++ (a segfault while the interpreter is built or its tensors are
allocated, more often while it runs: of 3,000 random mutants of a 2 KB model, 4 crashed XNNPACK's load and 10 an
invoke, none the built-in kernels' load), and a crash takes the whole process with it: a `tflkit bench a.tflite
b.tflite` would lose every result, a study its worker. So `tflkit.tflite.runtime.load_interpreter` first loads each file
here, in a child process (`load_stages` through tflkit.core.isolate), stage by stage: the built-in kernels (build,
allocate, read every tensor's, input's, output's and node's details), one invoke on zeros, then XNNPACK (build,
allocate, one invoke). The child sends each stage's outcome (a StageDone) the moment it has it; a child killed by a
signal becomes one line naming the first stage it did not report, "the LiteRT interpreter crashed loading m.tflite
(signal 11, SIGSEGV)", and a failed item, and the rest is measured. XNNPACK crashing where the built-in
kernels did not is reported as XNNPACK's refusal, so the file still runs without it.

One child per file per process: the outcome is remembered by path, size, modification time, inode and a hash of
the first and last 64 KiB. Its cost (Python, numpy and LiteRT imported, the file loaded twice and run twice) is
measured by tests/test_tflite_check.py, which docs/reliability.md points to. The child's address space
is capped (tflkit.core.limits.TFLITE_CHECK_BYTES, 2 GiB, plus 4x the file's size; it needs about 180 MB for
MobileNetV3-Small): a fuzzed file whose static shapes claimed 4.5 GB made XNNPACK allocate until the OOM killer
came, and now fails in 0.2 s as XNNPACK's refusal. `TFLKIT_TFLITE_CHILD_CHECK=0` turns the check off (files are
then loaded in the calling process only, as before). No TensorFlow import.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tflkit.core import isolate
from tflkit.core.errors import ModelFileError, TflkitError
from tflkit.core.limits import TFLITE_CHECK_BYTES
from tflkit.tflite.runtime import XnnpackRefusedError, load_interpreter

TIMEOUT_S = 120.0  # a 100 MB model loads and runs once in seconds; a child that takes this long is stuck
# What the child does, in order; a crash is charged to the first stage it did not report.
STAGES = ("builtin", "builtin_invoke", "xnnpack", "xnnpack_invoke")
_DOING = {"builtin": "loading", "builtin_invoke": "running", "xnnpack": "applying XNNPACK to",
          "xnnpack_invoke": "running with XNNPACK"}
_OUTCOMES: dict[tuple, dict] = {}  # (path, size, mtime, inode, runtime) -> {stage: None or why it failed}


@dataclass(frozen=True)
class StageDone:
    """A stage the child got through: `error` is why the file failed it (None: it passed)."""

    stage: str
    error: str | None = None


def enabled() -> bool:
    return os.environ.get("TFLKIT_TFLITE_CHILD_CHECK", "1").strip().lower() not in ("0", "false", "no", "off")


def _key(path: Path, runtime: str | None) -> tuple:
    """The file as it is now: a file rewritten in place within one clock tick keeps its size, inode and mtime, so
    its first and last 64 KiB are hashed too (about 0.1 ms)."""
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(1 << 16))
        if stat.st_size > 1 << 17:
            f.seek(-(1 << 16), os.SEEK_END)
        digest.update(f.read(1 << 16))
    return (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino, digest.hexdigest(), runtime or "")


def _signal_name(number: int) -> str:
    try:
        return f"signal {number}, {signal.Signals(number).name}"
    except ValueError:
        return f"signal {number}"


def checked(path, runtime: str | None = None, timeout_s: float = TIMEOUT_S) -> dict:
    """{stage: None, or why it failed} for every stage in STAGES, from one child process (remembered per file)."""
    path = Path(path)
    key = _key(path, runtime)
    if key in _OUTCOMES:
        return _OUTCOMES[key]
    outcome = {}
    env = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    with tempfile.TemporaryFile() as stderr:
        try:
            isolate.call(load_stages, str(path), runtime, memory_bytes=memory_cap(path), timeout=timeout_s, env=env,
                         on_message=lambda done: outcome.__setitem__(done.stage, done.error),
                         stdout=subprocess.DEVNULL, stderr=stderr)
            failure = None
        except Exception as exc:  # noqa: BLE001 - Crashed, or whatever the child raised: the file failed that stage
            failure = exc
        stderr.seek(0)
        err = stderr.read().decode(errors="replace")
    pending = [s for s in STAGES if s not in outcome]
    if pending:
        why = _why(path, _DOING[pending[0]], failure, err, timeout_s)
        for stage in pending:  # what did not run is not known to be safe
            outcome[stage] = why
    _OUTCOMES[key] = outcome
    return outcome


def _why(path: Path, doing: str, failure: BaseException | None, stderr: str, timeout_s: float) -> str:
    code = failure.code if isinstance(failure, isolate.Crashed) else 1
    if code is None:
        return f"the LiteRT interpreter did not finish {doing} {path.name} in {timeout_s:.0f} s"
    if code < 0:
        why = f"the LiteRT interpreter crashed {doing} {path.name} ({_signal_name(-code)})"
    else:
        if failure is None or isinstance(failure, isolate.Crashed):
            last = (stderr.strip().splitlines() or [f"exit code {code}"])[-1]
        else:
            last = f"{type(failure).__name__}: {failure}".rstrip(": ")
        why = f"the LiteRT interpreter failed {doing} {path.name}: {last[:200]}"
    if -code in (signal.SIGABRT, signal.SIGKILL) or isinstance(failure, MemoryError) or "bad_alloc" in stderr:
        why += (f"; it may have wanted more than the {memory_cap(path) / (1 << 30):.1f} GiB a load may take "
                f"({TFLITE_CHECK_BYTES.env}=N plus 4x the file's size)")
    return why


def memory_cap(path) -> int:
    """The child's address space limit: tflkit.core.limits.TFLITE_CHECK_BYTES plus 4x the file (the file mapped, the
    built-in kernels' arena, XNNPACK's packed weights). A file that wants more fails in the child, not the machine."""
    return TFLITE_CHECK_BYTES.value() + 4 * Path(path).stat().st_size


def require_loadable(path, xnnpack: bool, runtime: str | None = None) -> None:
    """Raise what loading `path` would (ModelFileError; XnnpackRefusedError when only XNNPACK fails or crashes),
    learned in a child process, before the calling process loads it. A file that crashes the built-in kernels'
    invoke is refused too: every reader of it would be one invoke away from a dead process."""
    outcome = checked(path, runtime)
    for stage in ("builtin", "builtin_invoke"):
        if outcome[stage] is not None:
            raise ModelFileError(outcome[stage])
    if xnnpack:
        for stage in ("xnnpack", "xnnpack_invoke"):
            if outcome[stage] is not None:
                raise XnnpackRefusedError(outcome[stage])


def _invoke_once(interpreter) -> str | None:
    """One invoke on zeros; the runtime's own refusal (RuntimeError) is not a crash and is the caller's to meet."""
    import numpy as np

    try:
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
        for detail in interpreter.get_output_details():
            interpreter.get_tensor(detail["index"])
    except (RuntimeError, ValueError):
        pass
    return None


def load_stages(path: str, runtime: str | None = None) -> None:
    """In the child: each stage's StageDone, sent before the next stage can crash."""
    def done(stage: str, error: str | None = None) -> None:
        isolate.send(StageDone(stage, error))

    try:
        interpreter = load_interpreter(path, threads=1, xnnpack=False, runtime=runtime, isolate=False)
    except TflkitError as exc:
        for stage in STAGES:
            done(stage, str(exc))
        return
    done("builtin")
    done("builtin_invoke", _invoke_once(interpreter))
    del interpreter
    try:
        interpreter = load_interpreter(path, threads=1, xnnpack=True, runtime=runtime, isolate=False)
    except XnnpackRefusedError as exc:
        done("xnnpack", str(exc))
        done("xnnpack_invoke", str(exc))
        return
    except TflkitError as exc:  # XNNPACK failing some other way: the built-in kernels still take the file
        done("xnnpack", f"XNNPACK refused {Path(path).name}: {exc}")
        done("xnnpack_invoke", f"XNNPACK refused {Path(path).name}: {exc}")
        return
    done("xnnpack")
    done("xnnpack_invoke", _invoke_once(interpreter))
