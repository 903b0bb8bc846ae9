"""One cell's unfinished stages in a process of its own: `run_cell_process`, which the executors
(tflkit.study.executors) run through tflkit.core.isolate, on this machine or inside a Ray task.

Each cell gets a fresh interpreter: TensorFlow state (graphs, memory, thread pools) never leaks from one model to
the next, a crash costs only its cell, and parallel cells are separate processes. Stage records go to the driver as
they happen (isolate.send: the driver's on_message writes them to study.db); everything else the cell prints goes to
its log (cells/<id>/worker.log).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from tflkit.core import isolate
from tflkit.core.config import from_dict
from tflkit.core.errors import TflkitError
from tflkit.core.tfenv import quiet_tensorflow
from tflkit.study.spec import StudySpec, build_cells
from tflkit.study.stages import run_cell


def run_cell_process(out_dir: str, cell_id: str, done: list[str], threads: int | None = None,
                     node: str | None = None) -> None:
    """Run cell `cell_id` of the study in `out_dir` (its study.spec.json), skipping the stages in `done`; every
    record is sent to the caller as it happens. `threads`: the cell's thread budget (--jobs N on C cores: C // N
    each; a Ray task's CPU share), None for TensorFlow's own default. `node`: the Ray node it runs on, recorded in
    every stage's provenance."""
    with open(os.path.join(out_dir, "study.spec.json")) as f:
        spec = from_dict(StudySpec, json.load(f), source="study.spec.json")
    cell = next(c for c in build_cells(spec) if c.id == cell_id)
    _limit_threads(threads)
    try:
        if node:
            print(f"worker   {cell.id} on Ray node {node}", flush=True)
        run_cell(spec, cell, out_dir, set(done), isolate.send, log=lambda line: print(line, flush=True), node=node)
    except TflkitError as exc:  # before any stage: the dataset cannot be read, ...
        print(f"tflkit: error: {exc}", file=sys.stderr, flush=True)
        raise
    except BaseException:
        traceback.print_exc()  # a bug or an interrupt: its traceback in the cell's log, where one looks for it
        raise


def _limit_threads(threads: int | None) -> None:
    """Before TensorFlow starts its thread pools: OMP_NUM_THREADS (also inherited by this cell's own children) and
    TensorFlow's intra-op and inter-op pools."""
    if threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, threads)))
    tf = quiet_tensorflow()
    if threads:
        n = max(1, threads)
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(min(2, n))
