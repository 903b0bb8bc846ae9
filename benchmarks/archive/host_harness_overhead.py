"""Overhead of the host harness: its reported median against a bare loop around invoke() on the same interpreter.

    python -m benchmarks.archive.host_harness_overhead MODEL.tflite [--rounds 15] [--runs 200] [--threads 1]

Each round times `--runs` invokes with a bare loop and `--runs` with the harness (`tflkit.bench.host.time_invokes`,
reduced by `summarize_ms` exactly as `tflkit bench` reports), on one interpreter with the same random inputs. The
order alternates from round to round (bare first in even rounds, harness first in odd ones), so drift, load and any
advantage of going second hit both alike. Prints and writes the per-round medians, the median and spread of each
side's per-round medians, and the median and spread of the per-round ratio harness/bare, with the load average
before and after (a loaded machine makes the spread, not the ratio, grow). Goal: median ratio within 2% of 1.

Writes benchmarks/results/host_harness_overhead.{md,json} (`--out PREFIX` writes PREFIX.md and PREFIX.json instead,
e.g. for a smoke run that must not replace the recorded result).

Archived (issue 22): whether tflkit's timing loop adds to a bare invoke loop was answered (median ratio 0.9997,
within the 2% goal: benchmarks/results/host_harness_overhead.md); every live benchmark now times through that loop
(benchmarks/harness.py host_latency). Kept as the record of how that result was made, and runnable: from the
repository root, `python -m benchmarks.archive.host_harness_overhead` (benchmarks.harness puts the checkout on the
path).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from benchmarks.harness import RESULTS as RESULTS_DIR
from tflkit.bench.host import BenchSettings, summarize_ms, time_invokes
from tflkit.core.fileio import atomic_write_text
from tflkit.core.machine import cpu_name
from tflkit.tflite.runtime import load_interpreter, random_inputs, resolve_runtime

RESULTS = RESULTS_DIR / "host_harness_overhead"
GOAL = 0.02


def bare_loop(interpreter, runs: int) -> float:
    """The least a timing loop can do: the clock bound to a local, no bookkeeping but one append."""
    invoke, clock = interpreter.invoke, time.perf_counter
    times = []
    for _ in range(runs):
        t0 = clock()
        invoke()
        times.append((clock() - t0) * 1e3)
    return statistics.median(times)


def harness(interpreter, settings: BenchSettings) -> float:
    return summarize_ms(time_invokes(interpreter, settings))["median_ms"]


def spread(values: list[float]) -> dict:
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": statistics.median(values), "q1": q1, "q3": q3, "min": min(values), "max": max(values)}


def _fmt(s: dict, digits: int = 4) -> str:
    f = f"{{:.{digits}f}}"
    return (f"median {f.format(s['median'])} (quartiles {f.format(s['q1'])}..{f.format(s['q3'])}, "
            f"min {f.format(s['min'])}, max {f.format(s['max'])})")


def measure(model: str, rounds: int, runs: int, threads: int) -> dict:
    interpreter = load_interpreter(model, threads=threads)
    for detail, array in zip(interpreter.get_input_details(), random_inputs(interpreter)):
        interpreter.set_tensor(detail["index"], array)
    settings = BenchSettings(threads=threads, runs=runs, warmup=0)
    load_before = os.getloadavg()
    bare_loop(interpreter, 50)  # warm-up for both
    per_round = []
    for i in range(rounds):
        if i % 2 == 0:
            bare, timed = bare_loop(interpreter, runs), harness(interpreter, settings)
        else:
            timed, bare = harness(interpreter, settings), bare_loop(interpreter, runs)
        per_round.append({"round": i, "first": "bare" if i % 2 == 0 else "harness", "bare_median_ms": bare,
                          "harness_median_ms": timed, "ratio": timed / bare})
    return {
        "model": Path(model).name, "threads": threads, "rounds": rounds, "runs": runs,
        "cpu": cpu_name(), "cpu_count": os.cpu_count(), "runtime": resolve_runtime(None),
        "python": platform.python_version(),
        "load_average_before": list(load_before), "load_average_after": list(os.getloadavg()),
        "command": f"python -m benchmarks.archive.host_harness_overhead {model} --rounds {rounds} --runs {runs} "
                   f"--threads {threads}",
        "bare_median_ms": spread([r["bare_median_ms"] for r in per_round]),
        "harness_median_ms": spread([r["harness_median_ms"] for r in per_round]),
        "ratio": spread([r["ratio"] for r in per_round]),
        "per_round": per_round,
    }


def to_markdown(result: dict) -> str:
    ratio = result["ratio"]["median"]
    verdict = "within" if abs(ratio - 1) <= GOAL else "outside"
    rows = [f"| {r['round']} | {r['first']} | {r['bare_median_ms']:.4f} | {r['harness_median_ms']:.4f} | "
            f"{r['ratio']:.4f} |" for r in result["per_round"]]
    load = (f"{', '.join(f'{x:.2f}' for x in result['load_average_before'])} before, "
            f"{', '.join(f'{x:.2f}' for x in result['load_average_after'])} after")
    return "\n".join([
        "# Host harness overhead", "",
        f"Model {result['model']}, {result['threads']} thread(s), {result['runtime']}, CPU {result['cpu']} "
        f"({result['cpu_count']} cores), Python {result['python']}. Load average (1, 5, 15 min): {load}.", "",
        f"Command: `{result['command']}`", "",
        f"- bare median ms: {_fmt(result['bare_median_ms'])}",
        f"- harness median ms: {_fmt(result['harness_median_ms'])}",
        f"- ratio harness/bare: {_fmt(result['ratio'])}: {verdict} the {100 * GOAL:g}% goal",
        f"  ({result['rounds']} rounds of {result['runs']} runs, order alternating per round)", "",
        "| round | first | bare median ms | harness median ms | ratio |", "|---|---|---|---|---|", *rows, ""])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS, metavar="PREFIX",
                        help="write PREFIX.md and PREFIX.json (default: benchmarks/results/host_harness_overhead)")
    args = parser.parse_args(argv)
    if args.rounds < 2 or args.runs < 1 or args.threads < 1:
        parser.error("--rounds must be 2 or more (a spread needs two), --runs and --threads 1 or more")
    result = measure(args.model, args.rounds, args.runs, args.threads)
    markdown = to_markdown(result)
    print(markdown)
    md, js = Path(f"{args.out}.md"), Path(f"{args.out}.json")
    atomic_write_text(md, markdown)
    atomic_write_text(js, json.dumps(result, indent=1) + "\n")
    print(f"written: {md}, {js}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
