"""Resident memory a model adds to a process that has only the runtime (`python -m tflkit.bench.memprobe MODEL`).

Run in a fresh process (`rss_delta_mb` runs `probe` in one, through tflkit.core.isolate): the runtime and numpy are
imported first, the resident size is read, then the model is loaded, its tensors allocated and it is invoked a few
times, and the resident size is read again. The difference is what this model costs on top of the runtime (the
analogue of benchmark_model's "overall" memory footprint): the model file's pages, the arena, XNNPACK's packed copy
of the weights and its workspace. No TensorFlow import. The command prints the probe as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from tflkit.core import isolate
from tflkit.core.errors import TflkitError
from tflkit.tflite.check import memory_cap
from tflkit.tflite.runtime import interpreter_module, load_interpreter, random_inputs


@dataclass(frozen=True)
class MemoryProbe:
    model: str
    rss_before_mb: float
    rss_after_mb: float
    rss_delta_mb: float
    peak_delta_mb: float


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def probe(path, threads: int = 1, runs: int = 3, xnnpack: bool = True, runtime: str | None = None) -> MemoryProbe:
    """In this process: resident MB before and after load + allocate + `runs` invokes (Linux /proc)."""
    interpreter_module(runtime)  # the runtime's import is the baseline, not the model's cost
    before = _status_kb("VmRSS")
    # isolate=False: this is already a child process (rss_delta_mb), a crash here costs only the figure
    interpreter = load_interpreter(path, threads=threads, xnnpack=xnnpack, runtime=runtime, isolate=False)
    for detail, array in zip(interpreter.get_input_details(), random_inputs(interpreter)):
        interpreter.set_tensor(detail["index"], array)
    for _ in range(runs):
        interpreter.invoke()
    after, peak = _status_kb("VmRSS"), _status_kb("VmHWM")
    return MemoryProbe(Path(path).name, before / 1024, after / 1024, (after - before) / 1024, (peak - before) / 1024)


def rss_delta_mb(path, threads: int = 1, xnnpack: bool = True, runtime: str | None = None,
                 timeout_s: float = 120.0) -> float | None:
    """`probe` in a fresh interpreter process; None where /proc is missing (not Linux) or the child fails (a crash,
    a timeout, a file the runtime refuses: the figure is unknown, the benchmark goes on)."""
    if not Path("/proc/self/status").exists():
        return None
    try:
        # The runtime's own log lines (XNNPACK's "Created delegate") are not this figure's business.
        # capped as the child check is (tflkit.tflite.check): a file that wants more fails here, not the machine
        # (a static-shape mutant XNNPACK trusts took 17 GB and 37 s uncapped)
        return isolate.call(probe, str(path), threads=threads, xnnpack=xnnpack, runtime=runtime, timeout=timeout_s,
                            memory_bytes=memory_cap(path), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).rss_delta_mb
    except (TflkitError, OSError, RuntimeError, ValueError, MemoryError):
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tflkit.bench.memprobe", description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-xnnpack", action="store_true")
    parser.add_argument("--runtime")
    args = parser.parse_args(argv)
    if args.model.is_file():  # this command is itself the fresh process: capped as the child check is
        resource.setrlimit(resource.RLIMIT_AS, (memory_cap(args.model),) * 2)
    try:
        result = probe(args.model, args.threads, args.runs, not args.no_xnnpack, args.runtime)
    except TflkitError as exc:
        print(f"tflkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
