"""What the study machinery costs: a tiny study run by `tflkit study run` against the same stages called directly.

    python -m benchmarks.archive.study_overhead [--rounds 3] [--study benchmarks/studies/smoke.yaml]

Per round, in alternating order, both in fresh processes:
  study:  `tflkit study run STUDY --out NEW_DIR` (driver, one worker process per cell, study.db, provenance with
          dataset and file checksums, one fresh benchmark process per .tflite)
  direct: one `python -c` per cell calling tflkit.training.loop.train, converters.export.export_run,
          tflkit.pipeline.stages.evaluate on every file and tflkit.pipeline.stages.bench_host (a fresh process):
          the work without the machinery
The overhead is study / direct - 1 per round (paired), reported as the median and range over rounds, with the
medians of both walls. Writes benchmarks/results/study_overhead.{md,json}.

Archived (issue 22): what the study machinery costs against its stages called directly was answered (median +3.1%:
benchmarks/results/study_overhead.md); benchmarks/study_stages.py measures each stage against its floor. Kept as the
record of how that result was made, and runnable: from the repository root, `python -m
benchmarks.archive.study_overhead` (benchmarks.harness puts the checkout on the path).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import harness
from benchmarks.harness import RESULTS, ROOT

DIRECT = """
import sys
from tflkit.core.tfenv import quiet_tensorflow
quiet_tensorflow()
from tflkit.study.spec import load_study, build_cells
from tflkit.core.config import from_dict
from tflkit.core.trainconfig import TrainConfig
from tflkit.core.run import Run
from tflkit.pipeline import stages
from tflkit.data import load_dataset
from tflkit.bench.host import BenchSettings

spec = load_study(sys.argv[1])
cell = [c for c in build_cells(spec) if c.id == sys.argv[3]][0]
entry = [d for d in spec.datasets if d.key == cell.dataset][0]
config = from_dict(TrainConfig, cell.config)
source = load_dataset(entry.spec, data_dir=entry.data_dir, seed=config.seed)
run = Run(sys.argv[2])
stages.train(run, config, source)
kwargs = {"calib_samples": spec.calib_samples} if spec.calib_samples else {}
stages.convert(run, list(spec.recipes), source, **kwargs)
stages.evaluate(run, run.tflite_files(), source)
stages.bench_host(run, threads=spec.host_bench.threads,
                  settings=BenchSettings(runs=spec.host_bench.runs, warmup=spec.host_bench.warmup))
"""


def timed(command) -> float:
    return harness.run(command)[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--study", default=str(ROOT / "benchmarks" / "studies" / "smoke.yaml"))
    args = parser.parse_args()
    from tflkit.study.spec import build_cells, load_study

    cells = [c.id for c in build_cells(load_study(args.study))]
    rounds = []
    with tempfile.TemporaryDirectory(prefix="study-overhead-") as tmp:
        for i in range(args.rounds):
            def study(i=i):
                return timed([sys.executable, "-m", "tflkit", "study", "run", args.study, "--out",
                              f"{tmp}/study{i}"])

            def direct(i=i):
                return sum(timed([sys.executable, "-c", DIRECT, args.study, f"{tmp}/direct{i}/{c}", c])
                           for c in cells)

            order = [("study", study), ("direct", direct)] if i % 2 == 0 else [("direct", direct), ("study", study)]
            walls = {name: fn() for name, fn in order}
            walls["overhead"] = walls["study"] / walls["direct"] - 1
            walls["first"] = order[0][0]
            rounds.append(walls)
            print(f"round {i + 1}: study {walls['study']:.1f}s  direct {walls['direct']:.1f}s  "
                  f"overhead {100 * walls['overhead']:+.1f}%  (first: {walls['first']})", flush=True)
    overheads = [r["overhead"] for r in rounds]
    result = {
        "command": f"python -m benchmarks.archive.study_overhead --rounds {args.rounds} --study "
                   f"{Path(args.study).resolve().relative_to(ROOT)}",
        "date": time.strftime("%Y-%m-%d %H:%M"), "cpu": platform.processor() or platform.machine(),
        "rounds": rounds, "median_overhead": statistics.median(overheads),
        "min_overhead": min(overheads), "max_overhead": max(overheads),
        "median_study_s": statistics.median(r["study"] for r in rounds),
        "median_direct_s": statistics.median(r["direct"] for r in rounds),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "study_overhead.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# The study machinery's own cost", "",
        f"Command: `{result['command']}` ({result['date']}).", "",
        "Per round, alternating which goes first: `tflkit study run` on the study against the same stages called "
        "directly (train, export_run, evaluate every file, bench_host in a fresh process), each in fresh processes.",
        "",
        "| round | first | study s | direct s | overhead |", "|---|---|---|---|---|",
        *[f"| {i + 1} | {r['first']} | {r['study']:.1f} | {r['direct']:.1f} | {100 * r['overhead']:+.1f}% |"
          for i, r in enumerate(rounds)],
        "",
        f"**Median overhead {100 * result['median_overhead']:+.1f}%** (range {100 * result['min_overhead']:+.1f}% "
        f"to {100 * result['max_overhead']:+.1f}%); median walls: study {result['median_study_s']:.1f} s, direct "
        f"{result['median_direct_s']:.1f} s.", "",
    ]
    (RESULTS / "study_overhead.md").write_text("\n".join(lines))
    print("\n".join(lines[-2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
