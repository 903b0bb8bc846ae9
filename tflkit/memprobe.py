"""`python -m tflkit.memprobe MODEL.tflite`: resident memory a model adds to a process that has only the runtime.

Run in a fresh process (`rss_delta_mb` starts one): the runtime and numpy are imported first, the resident size
is read, then the model is loaded, its tensors allocated and it is invoked a few times, and the resident size is
read again. The difference is what this model costs on top of the runtime (the analogue of benchmark_model's
"overall" memory footprint): the model file's pages, the arena, XNNPACK's packed copy of the weights and its
workspace. No TensorFlow import. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def probe(path, threads: int = 1, runs: int = 3, xnnpack: bool = True, runtime: str | None = None) -> dict:
    """In this process: resident MB before and after load + allocate + `runs` invokes (Linux /proc)."""
    from tflkit.hostbench import random_inputs
    from tflkit.runtime import interpreter_module, load_interpreter

    interpreter_module(runtime)  # the runtime's import is the baseline, not the model's cost
    before = _status_kb("VmRSS")
    # isolate=False: this is already a child process (rss_delta_mb), a crash here costs only the figure
    interpreter = load_interpreter(path, threads=threads, xnnpack=xnnpack, runtime=runtime, isolate=False)
    for detail, array in zip(interpreter.get_input_details(), random_inputs(interpreter)):
        interpreter.set_tensor(detail["index"], array)
    for _ in range(runs):
        interpreter.invoke()
    after, peak = _status_kb("VmRSS"), _status_kb("VmHWM")
    return {"model": Path(path).name, "rss_before_mb": before / 1024, "rss_after_mb": after / 1024,
            "rss_delta_mb": (after - before) / 1024, "peak_delta_mb": (peak - before) / 1024}


def rss_delta_mb(path, threads: int = 1, xnnpack: bool = True, runtime: str | None = None,
                 timeout_s: float = 120.0) -> float | None:
    """`probe` in a fresh interpreter process; None where /proc is missing (not Linux) or the child fails."""
    if not Path("/proc/self/status").exists():
        return None
    cmd = [sys.executable, "-m", "tflkit.memprobe", str(path), "--threads", str(threads)]
    if not xnnpack:
        cmd.append("--no-xnnpack")
    if runtime:
        cmd += ["--runtime", runtime]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["rss_delta_mb"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tflkit.memprobe", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-xnnpack", action="store_true")
    parser.add_argument("--runtime")
    args = parser.parse_args(argv)
    import resource

    from tflkit.errors import TflkitError
    from tflkit.tflite_check import memory_cap

    # the cap of the child check (tflkit.tflite_check): a file that wants more fails here, not the machine
    cap = memory_cap(args.model) if args.model.is_file() else None
    if cap is not None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    try:
        result = probe(args.model, args.threads, args.runs, not args.no_xnnpack, args.runtime)
    except TflkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code if hasattr(exc, "exit_code") else 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
