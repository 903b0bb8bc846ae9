"""`tflkit study run`: the driver. It plans the cells, hands unfinished ones to an executor, and records every
stage result in study.db the moment a worker reports it.

Resume is by storage: the same command again skips every finished stage (ok or failed: a failure is a result);
a stage left `running` by a killed run is redone. A study file whose cells changed since the first run is refused
unless `--allow-changes` names the cells to redo (or `all`); new cells and recipes are simply added.
"""

from __future__ import annotations

import fcntl
import fnmatch
import json
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tflkit.core.errors import UsageError
from tflkit.core.fileio import atomic_write_text
from tflkit.core.run import Run
from tflkit.study.executors import run_local, run_ray
from tflkit.study.spec import (
    Cell,
    StudySpec,
    build_cells,
    cell_dir,
    config_fingerprint,
    load_study,
    spec_digest,
    with_max_steps,
)
from tflkit.study.store import StudyStore, open_store

REMEASURABLE = ("convert", "eval", "bench_host", "bench_phone", "mcu")


@dataclass(frozen=True)
class RunOptions:
    executor: str = "local"  # local, ray
    jobs: int = 1  # local: cells in parallel
    ray_address: str | None = None  # ray: an existing cluster ("auto", "ray://host:10001"); None starts one here
    allow_changes: tuple[str, ...] = ()  # cell ids to redo after a change of the study file, or ("all",)
    retry_failed: bool = False  # run failed stages again (a failure is otherwise a finished result)
    remeasure: tuple[str, ...] = ()  # stage kinds to measure again: convert, eval, bench_host, bench_phone, mcu
    cells: tuple[str, ...] = ()  # remeasure (or, with max_steps, run) only the cells matching these patterns
    max_steps: int | None = None  # every cell cut to N steps (tflkit.study.spec.with_max_steps): a runnability check


@dataclass
class StudySummary:
    out_dir: Path
    cells: int
    stages_ok: int = 0
    stages_failed: int = 0
    failed: list[dict] = field(default_factory=list)  # {cell, stage, message}
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.stages_failed == 0


def planned_stages(spec: StudySpec, cell: Cell) -> list[str]:
    stages = ["train"]
    for recipe in spec.recipes:
        stages += [f"convert/{recipe}", f"eval/{recipe}", f"bench_host/{recipe}"]
        stages += [f"bench_phone/{p.serial}/{recipe}" for p in spec.phones]
        stages += [f"mcu/{recipe}"] if spec.mcu is not None else []
    return stages


def _set_aside_export_record(run_dir: Path) -> None:
    record = Run(run_dir).exports_path
    if record.is_file():
        record.replace(record.with_name("exports.before-reconvert.json"))


def _matching(cells: list[Cell], patterns: tuple[str, ...]) -> list[Cell]:
    """The cells whose id matches a pattern (every cell without patterns); a pattern matching none is an error."""
    if not patterns:
        return list(cells)
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(c.id, pattern) for c in cells):
            raise UsageError(f"--cells {pattern!r} matches no cell of this study; cells: "
                             + ", ".join(c.id for c in cells))
    return [c for c in cells if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]


def run_study(study_path, out_dir, options: RunOptions = RunOptions(), log=print) -> StudySummary:
    spec = load_study(study_path)  # every check, before anything is trained
    if options.max_steps is not None:
        spec = with_max_steps(spec, options.max_steps)
    cells = build_cells(spec, str(study_path))
    if options.executor not in ("local", "ray"):
        raise UsageError(f"unknown executor {options.executor!r}; choose from: local, ray")
    if options.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {options.jobs}")
    if options.cells and not (options.remeasure or options.max_steps):
        raise UsageError("--cells chooses the cells to --remeasure (or to run with --max-steps); give one of them")
    targets = _matching(cells, options.cells)  # before anything is written
    if options.max_steps is not None:
        cells = targets
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(out_dir), open_store(out_dir) as store:
        _reconcile(store, spec, cells, options.allow_changes, out_dir, log)
        for kind in options.remeasure:
            if kind not in REMEASURABLE:
                raise UsageError(f"cannot remeasure {kind!r}; choose from: {', '.join(REMEASURABLE)}")
            count = store.forget_measurements(kind, [c.id for c in targets] if options.cells else None)
            log(f"study    measuring again: {count} {kind} stages of {len(targets)} cells")
            if kind == "convert":  # the cells' export records go aside, so that every recipe converts again
                for cell in targets:
                    _set_aside_export_record(cell_dir(out_dir, cell.id))
        if options.retry_failed:
            log(f"study    retrying {store.forget_failed()} failed stages")
        for cell in cells:
            store.put_cell(cell, cell_dir(out_dir, cell.id))
        atomic_write_text(out_dir / "study.spec.json", json.dumps(spec.to_dict(), indent=1) + "\n")
        store.set_meta("name", spec.name)
        store.set_meta("spec", spec.to_dict())
        store.set_meta("digest", spec_digest(spec))
        store.set_meta("study_file", str(Path(study_path).resolve()))
        store.set_meta("max_steps", options.max_steps)
        if store.get_meta("created") is None:
            store.set_meta("created", time.time())

        progress = Progress(store, spec, cells, log)
        todo = [(c, progress.done(c)) for c in cells if not set(planned_stages(spec, c)) <= progress.done(c)]
        log(f"study    {spec.name}: {len(cells)} cells, {progress.total} stages, {progress.finished} finished, "
            f"{len(todo)} cells to run ({options.executor}"
            + (f", {options.jobs} jobs" if options.executor == "local" else "") + f")  -> {out_dir / 'study.db'}")
        start = time.perf_counter()
        recorder = Recorder(store, progress)
        if todo:
            if options.executor == "ray":
                run_ray(todo, out_dir, spec, recorder, options.ray_address, log)
            else:
                run_local(todo, out_dir, recorder, options.jobs, log)
        summary = StudySummary(out_dir, len(cells), wall_s=time.perf_counter() - start)
        current = {c.id for c in cells}
        for stage in store.stages():
            if stage["cell"] not in current:
                continue
            if stage["status"] == "ok":
                summary.stages_ok += 1
            else:
                summary.stages_failed += 1
                summary.failed.append({"cell": stage["cell"], "stage": stage["stage"],
                                       "status": stage["status"], "message": stage["message"]})
        return summary


class _exclusive:
    """One driver per study directory: a second `study run` on the same DIR is refused, not interleaved."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / ".study.lock"

    def __enter__(self):
        self.handle = open(self.path, "a")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise UsageError(f"another `tflkit study run` is using {self.path.parent}") from None

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _reconcile(store: StudyStore, spec: StudySpec, cells: list[Cell], allow: tuple[str, ...], out_dir: Path,
               log) -> None:
    """Refuse a changed study unless told which cells to redo; forget those cells' results and files."""
    old_spec = store.get_meta("spec")
    if old_spec is None:
        return
    known = {c["cell"]: c for c in store.cells()}
    # recomputed from the recorded settings: what counts as a change is today's rule, for old and new alike
    changed = {c.id: "its training settings changed" for c in cells
               if c.id in known and config_fingerprint(known[c.id]["config"]) != c.fingerprint()}
    measuring = ("host_bench", "phones", "calib_samples", "finetune_steps")
    moved = [k for k in measuring if old_spec.get(k) != spec.to_dict().get(k)]
    if moved:  # every finished conversion or measurement of every cell would mean something else
        for c in cells:
            if c.id in known:
                changed.setdefault(c.id, f"{', '.join(moved)} changed")
    if not changed:
        return
    redo = set(changed) if "all" in allow else set(allow) & set(changed)
    refused = sorted(set(changed) - redo)
    if refused:
        first = refused[0]
        raise UsageError(f"the study file changed since {out_dir / 'study.db'} was started: {first} "
                         f"({changed[first]})" + (f" and {len(refused) - 1} more cells" if len(refused) > 1 else "")
                         + "; pass --allow-changes CELL... (or all) to redo them, or use another --out")
    for cell_id in sorted(redo):
        log(f"study    redoing {cell_id}: {changed[cell_id]}")
        store.forget_cell(cell_id)
        shutil.rmtree(cell_dir(out_dir, cell_id), ignore_errors=True)


class Progress:
    """What runs, what is done, and an estimate of what is left from the mean time of finished stages by kind."""

    def __init__(self, store: StudyStore, spec: StudySpec, cells: list[Cell], log):
        self.store, self.spec, self.log = store, spec, log
        self.planned = {c.id: planned_stages(spec, c) for c in cells}
        self.total = sum(len(s) for s in self.planned.values())
        self.lock = threading.Lock()
        self.finished = sum(len(self.done(c) & set(self.planned[c.id])) for c in cells)

    def done(self, cell: Cell) -> set[str]:
        return self.store.finished(cell.id)

    def stage_finished(self, record: dict) -> None:
        self.finished += 1
        wall = record.get("wall_s")
        took = f"{wall:.1f}s" if wall is not None else "-"
        status = record["status"] + (f" ({record['message']})" if record["message"] else "")
        self.log(f"[{self.finished}/{self.total}] {record['cell']}  {record['stage']}  {status}  {took}"
                 f"  left ~{_duration(self.eta())}")

    def eta(self) -> float:
        means = {}
        for stage in self.store.stages():
            if stage["status"] != "running" and stage["wall_s"] is not None:
                means.setdefault(stage["stage"].split("/")[0], []).append(stage["wall_s"])
        means = {k: sum(v) / len(v) for k, v in means.items()}
        fallback = sum(means.values()) / len(means) if means else 0.0
        left = 0.0
        for cell_id, stages in self.planned.items():
            finished = self.store.finished(cell_id)
            left += sum(means.get(s.split("/")[0], fallback) for s in stages if s not in finished)
        return left


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


class Recorder:
    """Applies worker records to study.db; executors call it from several threads."""

    def __init__(self, store: StudyStore, progress: Progress):
        self.store, self.progress = store, progress
        self.lock = threading.Lock()

    def __call__(self, record: dict) -> None:
        with self.lock:
            kind = record["kind"]
            if kind == "start":
                self.store.start_stage(record["cell"], record["stage"])
            elif kind == "stage":
                self.store.finish_stage(record["cell"], record["stage"], record["status"], record["message"],
                                        record["wall_s"], record["cpu_s"], record["result"], record["provenance"])
                self.progress.stage_finished(record)
            elif kind == "file":
                self.store.put_file(record["cell"], record["recipe"], **record["values"])
            elif kind == "latency":
                self.store.put_latency(record["cell"], record["recipe"], record["target"], record["delegate"],
                                       record["threads"], **record["values"])
            else:
                raise ValueError(f"unknown record kind {kind!r}")

    def finished(self, cell: Cell) -> set[str]:
        with self.lock:
            return self.store.finished(cell.id)

    def worker_failed(self, cell: Cell, reason: str, recipes) -> None:
        """A worker that died (a crash, not a failed stage): its running stages become failed rows, and every
        file it did not get to is a row saying why."""
        with self.lock:
            running = [s for s in self.store.stages(cell.id) if s["status"] == "running"]
            for stage in running:
                self.store.finish_stage(cell.id, stage["stage"], "failed", reason)
            finished = self.store.finished(cell.id)
            if "train" not in finished:
                self.store.finish_stage(cell.id, "train", "failed", reason)
            recorded = {f["recipe"] for f in self.store.files() if f["cell"] == cell.id}
            for recipe in recipes:
                if recipe not in recorded:
                    self.store.put_file(cell.id, recipe, status="worker_failed", message=reason)
                    if f"convert/{recipe}" not in finished:
                        self.store.finish_stage(cell.id, f"convert/{recipe}", "failed", reason)
            self.progress.log(f"study    {cell.id}: worker failed: {reason}")


