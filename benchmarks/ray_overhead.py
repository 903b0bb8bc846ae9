"""What the Ray executor costs against the local one, on the same cores and the same study.

    python benchmarks/ray_overhead.py [--rounds 3] [--study benchmarks/studies/smoke.yaml]

Per round, in alternating order, each a fresh `tflkit study run` into a new directory:
  local: `--executor local --jobs C` (C: this machine's cores; one worker process per cell, C at once)
  ray:   `--executor ray` (a Ray instance started by tflkit on this machine with C CPUs; each cell one CPU, so C at
         once as well: the same worker processes, plus Ray's start, its scheduling and the records' queue actor)
The overhead is ray / local - 1 per round (paired); reported as the median and range over rounds, with both
walls and the CPU. The same rows come out of both (tests/test_study_run.py, tests/test_ray_cluster.py). Writes
benchmarks/results/ray_overhead.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def timed(command) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **RAY_ENV})
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, command))}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--study", default=str(ROOT / "benchmarks" / "studies" / "smoke.yaml"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tflkit.core.fileio import atomic_write_text
    from tflkit.core.machine import cpu_features, cpu_name

    cores = os.cpu_count() or 1
    rounds = []
    with tempfile.TemporaryDirectory(prefix="ray-overhead-") as tmp:
        study = Path(tmp) / Path(args.study).name  # the study with one CPU per cell, for Ray's scheduler
        study.write_text(Path(args.study).read_text() + "\nresources: {num_cpus: 1}\n")
        for i in range(args.rounds):
            sides = {
                "local": [sys.executable, "-m", "tflkit", "study", "run", study, "--out", f"{tmp}/local{i}",
                          "--executor", "local", "--jobs", str(cores)],
                "ray": [sys.executable, "-m", "tflkit", "study", "run", study, "--out", f"{tmp}/ray{i}",
                        "--executor", "ray"],
            }
            order = ["local", "ray"] if i % 2 == 0 else ["ray", "local"]
            walls = {name: timed(sides[name]) for name in order}
            walls["overhead"] = walls["ray"] / walls["local"] - 1
            walls["first"] = order[0]
            rounds.append(walls)
            print(f"round {i + 1}: local {walls['local']:.1f}s  ray {walls['ray']:.1f}s  "
                  f"overhead {100 * walls['overhead']:+.1f}%  (first: {walls['first']})", flush=True)
    overheads = [r["overhead"] for r in rounds]
    result = {
        "command": f"python benchmarks/ray_overhead.py --rounds {args.rounds} --study "
                   f"{Path(args.study).resolve().relative_to(ROOT)}",
        "date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu_name(), "cpu_features": cpu_features(), "cores": cores,
        "rounds": rounds, "median_overhead": statistics.median(overheads), "min_overhead": min(overheads),
        "max_overhead": max(overheads), "median_local_s": statistics.median(r["local"] for r in rounds),
        "median_ray_s": statistics.median(r["ray"] for r in rounds),
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "ray_overhead.json", json.dumps(result, indent=2) + "\n")
    lines = [
        "# The Ray executor's cost against the local one", "",
        f"Command: `{result['command']}` ({result['date']}); CPU {result['cpu']}, {cores} cores, features "
        f"{' '.join(result['cpu_features'])}.", "",
        f"Per round, alternating which goes first: `tflkit study run --executor local --jobs {cores}` against "
        f"`--executor ray` (Ray started by tflkit on this machine, one CPU per cell), each into a new directory.", "",
        "| round | first | local s | ray s | overhead |", "|---|---|---|---|---|",
        *[f"| {i + 1} | {r['first']} | {r['local']:.1f} | {r['ray']:.1f} | {100 * r['overhead']:+.1f}% |"
          for i, r in enumerate(rounds)],
        "",
        f"**Median overhead {100 * result['median_overhead']:+.1f}%** (range {100 * result['min_overhead']:+.1f}% "
        f"to {100 * result['max_overhead']:+.1f}%); median walls: local {result['median_local_s']:.1f} s, ray "
        f"{result['median_ray_s']:.1f} s.", "",
    ]
    atomic_write_text(RESULTS / "ray_overhead.md", "\n".join(lines))
    print("\n".join(lines[-2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
