"""The same .tflite timed the three ways the product times it: `tflkit bench`, `tflkit report` and the demo.

    python -m benchmarks.archive.latency_paths RUN_DIR [--files fp32,static_wi8_ai8] [--rounds 5]

`tflkit bench FILE` (its defaults), what `tflkit report` runs for a file with no figures yet
(tflkit.pipeline.stages.bench_host with default settings) and what the demo runs
(bench_host with the demo's runs and warm-up, tflkit.pipeline.demo.DemoSettings), each in a copy of the run directory
so that nothing recorded is replaced. The three are called in turn, in a rotating order, round after round, so that
they see the same machine load; per path, the median of the per-round medians and the range over rounds, and the
ratio of each path's to `tflkit bench`'s. Writes benchmarks/results/latency_paths.md and .json.

Archived (issue 22): whether `tflkit bench`, `tflkit report` and the demo time a file alike was answered (ratios
0.996-1.000: benchmarks/results/latency_paths.md, cited by docs/pipeline.md); report and demo have since been one
path, tflkit.pipeline.stages.bench_host. Kept as the record of how that result was made, and runnable: from the
repository root, `python -m benchmarks.archive.latency_paths` (benchmarks.harness puts the checkout on the path).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import RESULTS, ROOT


def via_bench(path: Path) -> float:
    done = subprocess.run([sys.executable, "-m", "tflkit", "bench", str(path), "--threads", "1", "--json"],
                          capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout)["results"][0]["median_ms"]


def via_bench_run(run_copy: Path, path: Path, settings) -> float:
    from tflkit.core.run import Run
    from tflkit.pipeline import stages

    results = stages.bench_host(Run(run_copy), threads=(1,), settings=settings)
    return next(r.median_ms for r in results if r.model == path.name)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a converted run directory (e.g. a demo's)")
    parser.add_argument("--files", default="fp32,static_wi8_ai8", help="recipes whose files are timed")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "latency_paths")
    args = parser.parse_args(argv)
    from tflkit.bench.host import BenchSettings
    from tflkit.core.fileio import atomic_write_text
    from tflkit.pipeline.demo import DemoSettings

    demo = DemoSettings()
    paths = {"tflkit bench": None, "tflkit report": BenchSettings(),
             "demo": BenchSettings(runs=demo.runs, warmup=demo.warmup)}
    rows, load_before = [], os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tflkit-paths-") as tmp:
        for recipe in args.files.split(","):
            source = next((args.run / "tflite").glob(f"*.{recipe}.tflite"))
            medians = {name: [] for name in paths}
            for r in range(args.rounds):
                order = list(paths)[r % 3:] + list(paths)[:r % 3]
                for name in order:
                    if paths[name] is None:
                        medians[name].append(via_bench(source))
                        continue
                    copy = Path(tmp) / f"{recipe}.{name.replace(' ', '_')}.{r}"
                    shutil.copytree(args.run, copy, ignore=shutil.ignore_patterns("checkpoints", "bench"))
                    for other in (copy / "tflite").glob("*.tflite"):
                        if other.name != source.name:
                            other.unlink()
                    medians[name].append(via_bench_run(copy, copy / "tflite" / source.name, paths[name]))
            base = float(np.median(medians["tflkit bench"]))
            for name, values in medians.items():
                rows.append({"file": source.name, "path": name, "median_ms": float(np.median(values)),
                             "min_ms": float(min(values)), "max_ms": float(max(values)), "rounds": values,
                             "ratio_to_bench": float(np.median(values)) / base})
                print(f"{source.name:<48} {name:<14} {rows[-1]['median_ms']:.3f} ms  "
                      f"({rows[-1]['min_ms']:.3f}-{rows[-1]['max_ms']:.3f})  x{rows[-1]['ratio_to_bench']:.3f}",
                      flush=True)
    command = "python -m benchmarks.archive.latency_paths " + " ".join(argv if argv is not None else sys.argv[1:])
    load = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]}
    lines = ["# One file, three ways of timing it: tflkit bench, tflkit report, the demo", "",
             f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores; "
             f"load average 1/5/15 min {load['before']} before, {load['after']} after)", "",
             "Each path runs the file in a fresh process through tflkit.bench.host (report and demo through "
             "tflkit.pipeline.stages.bench_host, a fresh process); they differ only in runs and warm-up "
             f"(bench and report: 50 and 5, demo: {demo.runs} and {demo.warmup}). Median of {args.rounds} "
             "per-round medians, range over rounds, and the ratio to `tflkit bench`'s.", "",
             "| file | path | median ms | range over rounds | ratio to tflkit bench |", "|---|---|---|---|---|"]
    lines += [f"| {r['file']} | {r['path']} | {r['median_ms']:.3f} | {r['min_ms']:.3f}-{r['max_ms']:.3f} | "
              f"{r['ratio_to_bench']:.3f} |" for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"),
                      json.dumps({"command": command, "load": load, "rows": rows}, indent=2) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(f"wrote {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
