"""Overhead of the host harness: its reported median against a bare loop around invoke() on the same interpreter.

    python benchmarks/host_harness_overhead.py MODEL.tflite [--rounds 15] [--runs 200] [--threads 1]

Alternates the two in each round (so drift and load hit both alike), prints per-round medians, the median and
spread of the per-round ratio harness/bare, and writes benchmarks/results/host_harness_overhead.md. Goal: < 2%.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from tflkit.hostbench import BenchSettings, cpu_name, random_inputs, time_invokes
from tflkit.runtime import load_interpreter

RESULTS = Path(__file__).resolve().parent / "results" / "host_harness_overhead.md"


def bare_loop(interpreter, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    interpreter = load_interpreter(args.model, threads=args.threads)
    for detail, array in zip(interpreter.get_input_details(), random_inputs(interpreter)):
        interpreter.set_tensor(detail["index"], array)
    settings = BenchSettings(threads=args.threads, runs=args.runs, warmup=0)
    bare_loop(interpreter, 50)  # warm-up for both
    rows, ratios = [], []
    for i in range(args.rounds):
        bare = bare_loop(interpreter, args.runs)
        harness = statistics.median(time_invokes(interpreter, settings))
        ratios.append(harness / bare)
        rows.append(f"| {i} | {bare:.4f} | {harness:.4f} | {harness / bare:.4f} |")
    q = statistics.quantiles(ratios, n=4)
    summary = (f"median ratio harness/bare {statistics.median(ratios):.4f} (quartiles {q[0]:.4f}..{q[2]:.4f}, "
               f"min {min(ratios):.4f}, max {max(ratios):.4f}) over {args.rounds} rounds of {args.runs} runs")
    text = "\n".join([
        "# Host harness overhead", "",
        f"Model {Path(args.model).name}, {args.threads} thread(s), CPU {cpu_name()}.", "",
        f"Command: `python benchmarks/host_harness_overhead.py {args.model} --rounds {args.rounds} "
        f"--runs {args.runs} --threads {args.threads}`", "",
        "| round | bare median ms | harness median ms | ratio |", "|---|---|---|---|", *rows, "", summary, ""])
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
