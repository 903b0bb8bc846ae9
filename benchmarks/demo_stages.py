"""Where `tflkit demo`'s time goes: wall seconds per stage (data, train, export, each recipe, eval, bench, report).

    python benchmarks/demo_stages.py [--out DIR] [--repeat N] [--results PREFIX]

Runs the real demo (tflkit.api.demo) N times in fresh directories and prints the median and spread per stage, then
writes benchmarks/results/demo_stages.{md,json} (benchmarks/harness.py's writer: the CPU, its features, the versions
and the load beside the numbers). `--out DIR` keeps the runs there instead of a temporary folder.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

import harness

from tflkit import api
from tflkit.pipeline.demo import DemoSettings

NAME = "demo_stages"


def run_once(out_dir: Path) -> tuple[dict, str]:
    lines = []

    def log(line):
        lines.append(line)
        print(line, flush=True)

    start = time.perf_counter()
    markdown, _, seconds = api.demo(out_dir, log=log)
    stages = dict(seconds)
    # split the convert and eval stages from the log lines: the one export, each recipe, each model's evaluation
    for line in lines:
        if m := re.match(r"(export|convert)\s+(\S+)\s+([\d.]+)s", line):
            stages[f"  {m.group(1)} {m.group(2)}"] = float(m.group(3))
        elif m := re.match(r"eval\s+(\S+)\s.*, ([\d.]+)s\)$", line):
            stages[f"  eval {m.group(1)}"] = float(m.group(2))
    stages["total"] = time.perf_counter() - start
    return stages, markdown


def main(argv=None) -> int:
    parser = harness.arguments(__doc__, NAME, out_flag="--results")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--out", help="keep the runs here instead of a temporary folder")
    args, results = parser.start(argv)
    runs, markdown = [], ""
    for i in range(args.repeat):
        base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="tflkit-demo-"))
        stages, markdown = run_once(base / f"run{i}")
        runs.append(stages)
    top = [k for k in runs[0] if not k.startswith("  ")]
    parent = {"export": "convert", "convert": "convert", "eval": "eval"}
    keys = [row for key in top
            for row in [key] + [k for k in runs[0] if k.startswith("  ") and parent.get(k.split()[0]) == key]]
    per_stage = {key: harness.spread(r.get(key, 0.0) for r in runs) for key in keys}
    total = per_stage["total"]["median"]
    lines = ["# tflkit demo: where the time goes", "",
             f"{args.repeat} run(s); settings {DemoSettings()}", "",
             *harness.table(["stage", "median s", "min s", "max s", "share of total"],
                            [[key, f"{s['median']:.1f}", f"{s['min']:.1f}", f"{s['max']:.1f}",
                              f"{100 * s['median'] / total:.0f}%"] for key, s in per_stage.items()]),
             "", "Indented rows split a stage (from the log lines). Recipes convert two at a time in worker processes "
             "while the finished ones validate, so their seconds add up to more than the convert stage.", "",
             "Last run's report:", "", markdown]
    text = "\n".join(lines)
    print(text)
    results.write(text, summary={key.strip(): s for key, s in per_stage.items()}, raw=runs,
                  settings={"repeat": args.repeat, "demo": str(DemoSettings())})
    print(f"written: {results.md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
