"""`python -m tflkit.study.worker`: run one cell's unfinished stages in a process of its own.

Each cell gets a fresh interpreter: TensorFlow state (graphs, memory, thread pools) never leaks from one model to
the next, a crash costs only its cell, and parallel cells are separate processes. Stage records go to the file
descriptor the driver passes (TFLKIT_STUDY_FD) as JSON lines; everything else the cell prints goes to its log.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tflkit.core.errors import TflkitError
from tflkit.core.process import die_with_parent

RECORD_FD = "TFLKIT_STUDY_FD"
THREADS = "TFLKIT_STUDY_THREADS"  # the cell's thread budget (--jobs N on C cores: C // N each)
PARENT = "TFLKIT_STUDY_PARENT"
NODE = "TFLKIT_STUDY_NODE"  # the Ray node a cell runs on (recorded in its stages' provenance)


def _limit_threads() -> None:
    budget = os.environ.get(THREADS)
    if not budget:
        return
    n = max(1, int(budget))
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(min(2, n))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tflkit.study.worker")
    parser.add_argument("--out", required=True)
    parser.add_argument("--cell", required=True)
    parser.add_argument("--done", default="", help="comma-separated finished stages")
    args = parser.parse_args(argv)
    # A worker whose driver was killed (SIGKILL) must not go on writing into the run directory that the resumed
    # study will use.
    die_with_parent(int(os.environ[PARENT]) if PARENT in os.environ else None)

    from tflkit.study.schema import build
    from tflkit.study.spec import StudySpec, build_cells
    from tflkit.study.stages import run_cell

    with open(os.path.join(args.out, "study.spec.json")) as f:
        spec = build(StudySpec, json.load(f), "")
    cell = next(c for c in build_cells(spec) if c.id == args.cell)
    records = os.fdopen(int(os.environ[RECORD_FD]), "w", buffering=1)

    def emit(record: dict) -> None:
        records.write(json.dumps(record) + "\n")

    from tflkit.core.tfenv import quiet_tensorflow

    quiet_tensorflow()
    _limit_threads()
    try:
        if os.environ.get(NODE):
            print(f"worker   {cell.id} on Ray node {os.environ[NODE]}", flush=True)
        run_cell(spec, cell, args.out, set(filter(None, args.done.split(","))), emit,
                 log=lambda line: print(line, flush=True), node=os.environ.get(NODE))
    except TflkitError as exc:  # before any stage: the dataset cannot be read, ...
        print(f"tflkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        records.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
