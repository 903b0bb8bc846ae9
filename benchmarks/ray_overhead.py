"""What the Ray executor costs against the local one, on the same cores and the same study.

    python benchmarks/ray_overhead.py [--rounds 3] [--study benchmarks/studies/smoke.yaml] [--out PREFIX]

Per round, in alternating order (benchmarks/harness.py side_by_side), each a fresh `tflkit study run` into a new
directory:
  local: `--executor local --jobs C` (C: this machine's cores; one worker process per cell, C at once)
  ray:   `--executor ray` (a Ray instance started by tflkit on this machine with C CPUs; each cell one CPU, so C at
         once as well: the same worker processes, plus Ray's start, its scheduling and the records' queue actor)
The overhead is ray / local - 1 per round (paired); reported as the median and range over rounds, with both
walls and the CPU. The same rows come out of both (tests/test_study_run.py, tests/test_ray_cluster.py). Writes
benchmarks/results/ray_overhead.{md,json}.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import harness

NAME = "ray_overhead"
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def main(argv=None) -> int:
    parser = harness.arguments(__doc__, NAME)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--study", default=str(harness.STUDIES / "smoke.yaml"))
    args, results = parser.start(argv)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="ray-overhead-") as tmp:
        study = Path(tmp) / Path(args.study).name  # the study with one CPU per cell, for Ray's scheduler
        study.write_text(Path(args.study).read_text() + "\nresources: {num_cpus: 1}\n")
        sides = {
            "local": lambda i: harness.run(harness.tflkit("study", "run", study, "--out", f"{tmp}/local{i}",
                                                          "--executor", "local", "--jobs", cores), env=RAY_ENV)[0],
            "ray": lambda i: harness.run(harness.tflkit("study", "run", study, "--out", f"{tmp}/ray{i}",
                                                        "--executor", "ray"), env=RAY_ENV)[0],
        }
        rounds = harness.side_by_side(sides, args.rounds, on_round=lambda r: print(
            f"round {r['round'] + 1}: local {r['local']:.1f}s  ray {r['ray']:.1f}s  overhead "
            f"{100 * (r['ray'] / r['local'] - 1):+.1f}%  (first: {r['order'][0]})", flush=True))
    overhead = harness.spread(ratio - 1 for ratio in harness.ratios(rounds, "ray", "local"))
    local, ray = (harness.spread(harness.column(rounds, side)) for side in ("local", "ray"))
    lines = [
        "# The Ray executor's cost against the local one", "",
        f"Per round, alternating which goes first: `tflkit study run --executor local --jobs {cores}` against "
        f"`--executor ray` (Ray started by tflkit on this machine, one CPU per cell), each into a new directory.", "",
        *harness.table(["round", "first", "local s", "ray s", "overhead"],
                       [[r["round"] + 1, r["order"][0], f"{r['local']:.1f}", f"{r['ray']:.1f}",
                         f"{100 * (r['ray'] / r['local'] - 1):+.1f}%"] for r in rounds]),
        "",
        f"**Median overhead {100 * overhead['median']:+.1f}%** (range {100 * overhead['min']:+.1f}% "
        f"to {100 * overhead['max']:+.1f}%); median walls: local {local['median']:.1f} s, ray {ray['median']:.1f} s.",
    ]
    results.write("\n".join(lines), summary={"overhead": overhead, "local_s": local, "ray_s": ray}, raw=rounds,
                  settings={"rounds": args.rounds, "study": args.study, "jobs": cores})
    print("\n".join(lines[-1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
