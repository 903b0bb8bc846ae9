"""`python -m tflkit.tflite.check MODEL.tflite`: load a .tflite in a throw-away process before tflkit's own does.

A malformed flatbuffer can crash LiteRT's C++ (a segfault while the interpreter is built or its tensors are
allocated, more often while it runs: of 3,000 random mutants of a 2 KB model, 4 crashed XNNPACK's load and 10 an
invoke, none the built-in kernels' load), and a crash takes the whole process with it: a `tflkit bench a.tflite
b.tflite` would lose every result, a study its worker. So `tflkit.tflite.runtime.load_interpreter` first loads each file
here, in a child process, stage by stage: the built-in kernels (build, allocate, read every tensor's, input's,
output's and node's details), one invoke on zeros, then XNNPACK (build, allocate, one invoke). The child prints one
JSON line per stage done; a child killed by a signal becomes one line, "the LiteRT interpreter crashed loading
m.tflite (signal 11, SIGSEGV)", and a failed item, and the rest is measured. XNNPACK crashing where the built-in
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

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tflkit.core.errors import ModelFileError
from tflkit.core.limits import TFLITE_CHECK_BYTES

TIMEOUT_S = 120.0  # a 100 MB model loads and runs once in seconds; a child that takes this long is stuck
# What the child does, in order; a crash is charged to the first stage without a line.
STAGES = ("builtin", "builtin_invoke", "xnnpack", "xnnpack_invoke")
_DOING = {"builtin": "loading", "builtin_invoke": "running", "xnnpack": "applying XNNPACK to",
          "xnnpack_invoke": "running with XNNPACK"}
_OUTCOMES: dict[tuple, dict] = {}  # (path, size, mtime, inode, runtime) -> {stage: None or why it failed}


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


def command(path: Path, runtime: str | None) -> list[str]:
    return [sys.executable, "-m", "tflkit.tflite.check", str(path)] + (["--runtime", runtime] if runtime else [])


def checked(path, runtime: str | None = None, timeout_s: float = TIMEOUT_S) -> dict:
    """{stage: None, or why it failed} for every stage in STAGES, from one child process (remembered per file)."""
    path = Path(path)
    key = _key(path, runtime)
    if key in _OUTCOMES:
        return _OUTCOMES[key]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    stderr = ""
    try:
        done = subprocess.run(command(path, runtime), capture_output=True, text=True, errors="replace",
                              timeout=timeout_s, env=env, check=False)
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code = None
    outcome = {}
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("stage") in STAGES:
            outcome[record["stage"]] = record.get("error")
    pending = [s for s in STAGES if s not in outcome]
    if pending:
        doing = _DOING[pending[0]]
        if code is None:
            why = f"the LiteRT interpreter did not finish {doing} {path.name} in {timeout_s:.0f} s"
        elif code < 0:
            why = f"the LiteRT interpreter crashed {doing} {path.name} ({_signal_name(-code)})"
        else:
            last = (stderr.strip().splitlines() or [f"exit code {code}"])[-1]
            why = f"the LiteRT interpreter failed {doing} {path.name}: {last[:200]}"
        if code is not None and (-code in (signal.SIGABRT, signal.SIGKILL) or "bad_alloc" in stderr
                                 or "MemoryError" in stderr):
            why += (f"; it may have wanted more than the {memory_cap(path) / (1 << 30):.1f} GiB a load may take "
                    f"({TFLITE_CHECK_BYTES.env}=N plus 4x the file's size)")
        for stage in pending:  # what did not run is not known to be safe
            outcome[stage] = why
    _OUTCOMES[key] = outcome
    return outcome


def memory_cap(path) -> int:
    """The child's address space limit: tflkit.core.limits.TFLITE_CHECK_BYTES plus 4x the file (the file mapped, the
    built-in kernels' arena, XNNPACK's packed weights). A file that wants more fails in the child, not the machine."""
    return TFLITE_CHECK_BYTES.value() + 4 * Path(path).stat().st_size


def require_loadable(path, xnnpack: bool, runtime: str | None = None) -> None:
    """Raise what loading `path` would (ModelFileError; XnnpackRefusedError when only XNNPACK fails or crashes),
    learned in a child process, before the calling process loads it. A file that crashes the built-in kernels'
    invoke is refused too: every reader of it would be one invoke away from a dead process."""
    from tflkit.tflite.runtime import XnnpackRefusedError

    outcome = checked(path, runtime)
    for stage in ("builtin", "builtin_invoke"):
        if outcome[stage] is not None:
            raise ModelFileError(outcome[stage])
    if xnnpack:
        for stage in ("xnnpack", "xnnpack_invoke"):
            if outcome[stage] is not None:
                raise XnnpackRefusedError(outcome[stage])


def _stage(name: str, error: str | None) -> None:
    print(json.dumps({"stage": name, "error": error}), flush=True)


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


def child(path, runtime: str | None = None) -> int:
    """In the child: one JSON line per stage, flushed before the next stage can crash."""
    from tflkit.core.errors import TflkitError
    from tflkit.tflite.runtime import XnnpackRefusedError, load_interpreter

    try:
        interpreter = load_interpreter(path, threads=1, xnnpack=False, runtime=runtime, isolate=False)
    except TflkitError as exc:
        for stage in STAGES:
            _stage(stage, str(exc))
        return 0
    _stage("builtin", None)
    _stage("builtin_invoke", _invoke_once(interpreter))
    del interpreter
    try:
        interpreter = load_interpreter(path, threads=1, xnnpack=True, runtime=runtime, isolate=False)
    except XnnpackRefusedError as exc:
        _stage("xnnpack", str(exc))
        _stage("xnnpack_invoke", str(exc))
        return 0
    except TflkitError as exc:  # XNNPACK failing some other way: the built-in kernels still take the file
        _stage("xnnpack", f"XNNPACK refused {Path(path).name}: {exc}")
        _stage("xnnpack_invoke", f"XNNPACK refused {Path(path).name}: {exc}")
        return 0
    _stage("xnnpack", None)
    _stage("xnnpack_invoke", _invoke_once(interpreter))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tflkit.tflite.check", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--runtime")
    args = parser.parse_args(argv)
    import resource

    from tflkit.core.process import die_with_parent

    die_with_parent()
    cap = memory_cap(args.model)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return child(args.model, args.runtime)


if __name__ == "__main__":
    raise SystemExit(main())
