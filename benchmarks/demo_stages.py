"""Where `tflkit demo`'s time goes: wall seconds per stage (data, train, export, each recipe, eval, bench, report).

    python benchmarks/demo_stages.py [--out DIR] [--repeat N]

Runs the real demo N times in fresh directories and prints the median and spread per stage, then writes
benchmarks/results/demo_stages.md. Conditions (CPU, cores, load) are printed beside the numbers.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tflkit.core.fileio import atomic_write_text
from tflkit.core.machine import cpu_name
from tflkit.pipeline.demo import DemoSettings, StageTimer, demo

RESULTS = Path(__file__).resolve().parent / "results" / "demo_stages.md"


def run_once(out_dir: Path) -> tuple[dict, str]:
    timer = StageTimer()
    lines = []

    def log(line):
        lines.append(line)
        print(line, flush=True)

    start = time.perf_counter()
    markdown = demo(out_dir, DemoSettings(), log=log, timer=timer)
    stages = dict(timer.seconds)
    # split the convert and eval stages from the log lines: the one export, each recipe, each model's evaluation
    for line in lines:
        if m := re.match(r"(export|convert)\s+(\S+)\s+([\d.]+)s", line):
            stages[f"  {m.group(1)} {m.group(2)}"] = float(m.group(3))
        elif m := re.match(r"eval\s+(\S+)\s.*, ([\d.]+)s\)$", line):
            stages[f"  eval {m.group(1)}"] = float(m.group(2))
    stages["total"] = time.perf_counter() - start
    return stages, markdown


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", help="keep the runs here instead of a temporary folder")
    args = parser.parse_args()
    runs, markdown = [], ""
    for i in range(args.repeat):
        base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="tflkit-demo-"))
        stages, markdown = run_once(base / f"run{i}")
        runs.append(stages)
    top = [k for k in runs[0] if not k.startswith("  ")]
    parent = {"export": "convert", "convert": "convert", "eval": "eval"}
    keys = [row for key in top
            for row in [key] + [k for k in runs[0] if k.startswith("  ") and parent.get(k.split()[0]) == key]]
    load = os.getloadavg()[0]
    lines = ["# tflkit demo: where the time goes", "",
             f"CPU: {cpu_name()}, {os.cpu_count()} cores, load average at the end {load:.2f}; "
             f"{args.repeat} run(s); settings {DemoSettings()}", "",
             f"Command: `python benchmarks/demo_stages.py {shlex.join(sys.argv[1:])}`", "",
             "| stage | median s | min s | max s | share of total |", "|---|---|---|---|---|"]
    total = statistics.median(r["total"] for r in runs)
    for key in keys:
        values = [r.get(key, 0.0) for r in runs]
        med = statistics.median(values)
        lines.append(f"| {key} | {med:.1f} | {min(values):.1f} | {max(values):.1f} | {100 * med / total:.0f}% |")
    lines += ["", "Indented rows split a stage (from the log lines). Recipes "
              "convert two at a time in worker processes while the finished ones validate, so their seconds add "
              "up to more than the convert stage.", "", "Last run's report:", "", markdown]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, text)
    print(f"written: {RESULTS}")


if __name__ == "__main__":
    main()
