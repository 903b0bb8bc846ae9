"""Time a .tflite on this machine with the TFLite runtime, the way benchmark_model does. No TensorFlow import.

Per model and thread count: interpreter init time, the first inference, then warm-up runs, then timed runs until
both a minimum count and a minimum time are reached. Reports median, p5, p95, mean, std, min, max, count, and
the peak resident memory of the process across the run.
"""

from __future__ import annotations

import platform
import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tflkit.benchresult import BenchResult
from tflkit.errors import TflkitError
from tflkit.runtime import check_tflite_file, load_interpreter, resolve_runtime


@dataclass(frozen=True)
class BenchSettings:
    threads: int = 1
    runs: int = 50  # minimum timed runs
    warmup: int = 5
    min_seconds: float = 0.0  # keep running until this much time has passed as well
    max_seconds: float = 60.0  # stop early (with fewer runs) past this
    xnnpack: bool = True
    runtime: str | None = None
    seed: int = 0


def random_inputs(interpreter, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for detail in interpreter.get_input_details():
        shape, dtype = detail["shape"], detail["dtype"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arrays.append(rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype))
        else:
            arrays.append(rng.uniform(0, 255, size=shape).astype(dtype))
    return arrays


def summarize_ms(times_ms: list[float]) -> dict:
    a = np.asarray(times_ms)
    return {
        "median_ms": float(np.median(a)), "p5_ms": float(np.percentile(a, 5)), "p95_ms": float(np.percentile(a, 95)),
        "mean_ms": float(a.mean()), "std_ms": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        "min_ms": float(a.min()), "max_ms": float(a.max()), "count": int(len(a)),
    }


def peak_rss_mb() -> float:
    # ru_maxrss is kilobytes on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_invokes(interpreter, settings: BenchSettings) -> list[float]:
    """The timed loop: warm-up, then runs until min count and min time are both met (or max_seconds passes)."""
    for _ in range(settings.warmup):
        interpreter.invoke()
    times = []
    clock = time.perf_counter
    start = clock()
    while True:
        t0 = clock()
        interpreter.invoke()
        times.append((clock() - t0) * 1e3)
        elapsed = clock() - start
        if (len(times) >= settings.runs and elapsed >= settings.min_seconds) or elapsed > settings.max_seconds:
            return times


def bench_model(path, settings: BenchSettings = BenchSettings()) -> BenchResult:
    path = check_tflite_file(path)
    runtime = resolve_runtime(settings.runtime)
    result = BenchResult(model=path.name, target="host", runtime=runtime, device=cpu_name(),
                         threads=settings.threads, delegate="xnnpack" if settings.xnnpack else "cpu",
                         size_bytes=path.stat().st_size)
    t0 = time.perf_counter()
    interpreter = load_interpreter(path, threads=settings.threads, xnnpack=settings.xnnpack, runtime=runtime)
    result.init_ms = (time.perf_counter() - t0) * 1e3
    for detail, array in zip(interpreter.get_input_details(), random_inputs(interpreter, settings.seed)):
        interpreter.set_tensor(detail["index"], array)
    t0 = time.perf_counter()
    try:
        interpreter.invoke()
    except RuntimeError as exc:
        result.status, result.message = "invoke_failed", str(exc).strip().splitlines()[0]
        return result
    result.first_ms = (time.perf_counter() - t0) * 1e3
    for key, value in summarize_ms(time_invokes(interpreter, settings)).items():
        setattr(result, key, value)
    result.peak_memory_mb = peak_rss_mb()
    return result


def bench_models(paths, threads=(1,), settings: BenchSettings = BenchSettings(), with_macs: bool = True,
                 log=None) -> list[BenchResult]:
    """Every model at every thread count; a model that fails is a row with its status, the rest go on."""
    from dataclasses import replace

    results = []
    for path in paths:
        macs = None
        if with_macs:
            from converters.macs import count_macs

            try:
                macs = count_macs(path).macs
            except TflkitError:
                macs = None
        for n in threads:
            try:
                result = bench_model(path, replace(settings, threads=n))
            except TflkitError as exc:
                result = BenchResult(model=Path(path).name, target="host", runtime=settings.runtime or "",
                                     threads=n, status="load_failed", message=str(exc))
            result.macs = macs
            results.append(result)
            if log:
                log(format_result_line(result))
    return results


def format_result_line(r: BenchResult) -> str:
    if not r.ok:
        return f"bench    {r.model}  threads={r.threads}  {r.status}: {r.message}"
    return (f"bench    {r.model}  threads={r.threads}  median {r.median_ms:.3f} ms  p95 {r.p95_ms:.3f} ms  "
            f"(n={r.count}, init {r.init_ms:.1f} ms, first {r.first_ms:.2f} ms)")
