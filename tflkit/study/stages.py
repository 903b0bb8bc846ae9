"""One cell's stages, run in a worker process: train, convert every recipe, evaluate, benchmark on host and phones.

Every finished stage is sent to the driver as a record (`emit`) the moment it finishes; the driver writes it to
study.db. Stages already finished (`done`) are skipped, so a cell killed midway resumes: training continues from
its last finished epoch (tflkit.training.loop's exact resume), conversions and measurements not recorded are redone.
A failed stage is a record with its reason; later stages that need its output are not run, and the files they
would have made are rows with the failed stage's status.

Record kinds: {"kind": "start", cell, stage}, {"kind": "stage", cell, stage, status, message, wall_s, cpu_s,
result, provenance}, {"kind": "file", cell, recipe, values}, {"kind": "latency", cell, recipe, target, delegate,
threads, values}.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from converters.recipes import FineTuneSettings
from tflkit.bench.host import BenchSettings
from tflkit.core.config import from_dict
from tflkit.core.fileio import sha256_file
from tflkit.core.machine import environment
from tflkit.core.results import BenchResult, ExportResult
from tflkit.core.run import Run
from tflkit.core.tfenv import quiet_tensorflow
from tflkit.core.trainconfig import TrainConfig
from tflkit.data import load_dataset
from tflkit.mcu.vela import vela_version
from tflkit.pipeline import stages
from tflkit.pipeline.stages import STAGE_ERRORS, one_line
from tflkit.study.provenance import dataset_checksum
from tflkit.study.spec import Cell, StudySpec, cell_dir

Emit = Callable[[dict], None]


class _Stage:
    """Times a stage (wall and CPU, children included) and emits its record, failed or not."""

    def __init__(self, emit: Emit, cell: str, stage: str, provenance: dict):
        self.emit, self.cell, self.stage, self.provenance = emit, cell, stage, provenance
        self.result, self.status, self.message = None, "ok", ""

    def __enter__(self):
        self.emit({"kind": "start", "cell": self.cell, "stage": self.stage})
        self.wall, self.cpu = time.perf_counter(), _cpu_seconds()
        return self

    def fail(self, status: str, message: str) -> None:
        self.status, self.message = status, message

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not issubclass(exc_type, STAGE_ERRORS):
            return False  # a bug or an interrupt: not a result; the stage stays `running` and is redone
        if exc_type is not None:
            self.status, self.message = "failed", one_line(exc)
        self.emit({"kind": "stage", "cell": self.cell, "stage": self.stage, "status": self.status,
                   "message": self.message, "wall_s": time.perf_counter() - self.wall,
                   "cpu_s": _cpu_seconds() - self.cpu, "result": self.result, "provenance": self.provenance})
        return True


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_cell(spec: StudySpec, cell: Cell, out_dir, done: set[str], emit: Emit, log=print,
             node: str | None = None) -> None:
    """`node`: the Ray node running the cell, recorded with every stage beside the host."""
    quiet_tensorflow()

    run = Run(cell_dir(out_dir, cell.id))
    entry = next(d for d in spec.datasets if d.key == cell.dataset)
    base = {**environment(), "seed": cell.config["seed"], "cell": cell.id, **({"ray_node": node} if node else {})}
    source = load_dataset(entry.spec, data_dir=entry.data_dir, seed=cell.config["seed"])
    base["dataset"] = {**dataset_checksum(source, Path(out_dir) / "datasets"), "data_dir": entry.data_dir}

    if "train" not in done:
        with _Stage(emit, cell.id, "train", base) as stage:
            config = from_dict(TrainConfig, cell.config, source=cell.id)
            log(f"train    {cell.id}" + ("  (resuming)" if run.resumable else ""))
            stage.result = {**stages.train(run, config, source, verbose=2).to_dict(), "run_dir": str(run.path)}
        if stage.status != "ok":
            for recipe in spec.recipes:  # every file this cell would have made is a row with the reason
                emit({"kind": "file", "cell": cell.id, "recipe": recipe,
                      "values": {"status": "train_failed", "message": stage.message}})
            return
    elif not run.trained:
        return  # recorded as failed before: nothing to convert

    todo = [r for r in spec.recipes if f"convert/{r}" not in done]
    if todo:
        _convert(spec, cell, run, source, todo, emit, base, log)
    files = run.converted()
    for recipe in spec.recipes:
        path = files.get(recipe)
        if path is None:
            continue
        provenance = {**base, "file_sha256": sha256_file(path)}
        if f"eval/{recipe}" not in done:
            with _Stage(emit, cell.id, f"eval/{recipe}", provenance) as stage:
                [result] = stages.evaluate(run, [path], source, limit=spec.eval_limit, log=log)
                emit({"kind": "file", "cell": cell.id, "recipe": recipe,
                      "values": {"top1": result.top1, "top5": result.top5, "eval_images": result.count}})
                # the class count tells a top-1 from guessing (tflkit.study.rows.at_chance)
                stage.result = {**result.to_dict(), "classes": source.num_classes}
        if f"bench_host/{recipe}" not in done:
            with _Stage(emit, cell.id, f"bench_host/{recipe}", provenance) as stage:
                settings = spec.host_bench
                with _bench_lock(out_dir):
                    results = stages.bench_host(
                        run, [path], threads=settings.threads, log=log,
                        settings=BenchSettings(runs=settings.runs, warmup=settings.warmup,
                                               min_seconds=settings.min_seconds),
                        input_data=entry.spec if settings.input_data else None,
                        data_dir=entry.data_dir if settings.input_data else None)
                stage.result = _latencies(emit, cell.id, recipe, results)
                if stage.result["failed"]:
                    stage.fail("failed", stage.result["failed"][0])
        for phone in spec.phones:
            name = f"bench_phone/{phone.serial}/{recipe}"
            if name not in done:
                with _Stage(emit, cell.id, name, provenance) as stage:
                    results = stages.bench_phone(run, [path], phone.serial, threads=phone.threads,
                                                 delegates=phone.delegates, runs=phone.runs, log=log,
                                                 logs_dir=Path(out_dir) / "phone_logs" / cell.id)
                    stage.result = _latencies(emit, cell.id, recipe, results)
                    if stage.result["failed"]:
                        stage.fail("failed", stage.result["failed"][0])
        if spec.mcu is not None and f"mcu/{recipe}" not in done:
            with _Stage(emit, cell.id, f"mcu/{recipe}", {**provenance, "vela_version": _vela_version()}) as stage:
                # the whole record is the stage's result, which tflkit.study.rows flattens into columns
                [stage.result] = stages.measure_mcu(run, [path], spec.mcu, source, log=log)
                if not stage.result["runs"]:  # a measured fact about the file, not a failure of the stage
                    stage.message = f"does not run under TFLite Micro: {stage.result['reason']}"


def _convert(spec, cell, run: Run, source, recipes, emit, base, log) -> None:
    """Convert `recipes` in one export (one SavedModel for all); each recipe is its own stage, recorded when its
    file is written and validated."""
    params = run.model_info().get("params")
    reported = set()
    clock = {"wall": time.perf_counter(), "cpu": _cpu_seconds()}

    def on_result(result: ExportResult) -> None:
        emit({"kind": "start", "cell": cell.id, "stage": f"convert/{result.recipe}"})
        values = {"status": result.status, "message": result.message, "path": result.path,
                  "size_bytes": result.size_bytes, "gzip_bytes": result.gzip_bytes, "params": params,
                  "macs": result.macs, "arena_bytes": result.arena_bytes}
        if result.validation:
            values["agreement"] = result.validation.get("agreement")
        if result.status == "ok" and result.path:
            values["sha256"] = sha256_file(result.path)
        values["extra"] = {"export": asdict(result)}  # the whole record: the rows read it as a run report does
        emit({"kind": "file", "cell": cell.id, "recipe": result.recipe, "values": values})
        now_wall, now_cpu = time.perf_counter(), _cpu_seconds()
        emit({"kind": "stage", "cell": cell.id, "stage": f"convert/{result.recipe}",
              "status": "ok" if result.status == "ok" else "failed", "message": result.message,
              "wall_s": result.seconds if result.seconds is not None else now_wall - clock["wall"],
              "cpu_s": now_cpu - clock["cpu"], "result": {"status": result.status, "seconds": result.seconds},
              "provenance": {**base, "file_sha256": values.get("sha256")}})
        clock.update(wall=now_wall, cpu=now_cpu)
        reported.add(result.recipe)

    options = {}
    if spec.calib_samples is not None:
        options["calib_samples"] = spec.calib_samples
    if spec.finetune_steps is not None:
        options["fine_tune"] = FineTuneSettings(steps=spec.finetune_steps)
    try:
        results = stages.convert(run, recipes, source, log=log, on_result=on_result, **options)
    except STAGE_ERRORS as exc:
        for recipe in recipes:
            if recipe not in reported:
                message = one_line(exc)
                emit({"kind": "file", "cell": cell.id, "recipe": recipe,
                      "values": {"status": "convert_failed", "message": message}})
                emit({"kind": "stage", "cell": cell.id, "stage": f"convert/{recipe}", "status": "failed",
                      "message": message, "wall_s": None, "cpu_s": None, "result": None, "provenance": base})
        return
    for result in results:  # recipes the export found already converted report here, not through the callback
        if result.recipe not in reported:
            on_result(result)


@contextlib.contextmanager
def _bench_lock(out_dir):
    """One benchmark at a time per study directory: cells training in parallel still load the CPU, but two
    benchmarks never time each other."""
    path = Path(out_dir) / ".bench.lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _latencies(emit, cell_id: str, recipe: str, results: list[BenchResult]) -> dict:
    """Each measurement as a latency record (its file's planned arena too, for files converted before the export
    kept it); the stage's result: how many, and the failed ones."""
    failed = []
    arena = next((r.arena_bytes for r in results if r.target == "host" and r.arena_bytes is not None), None)
    if arena is not None:
        emit({"kind": "file", "cell": cell_id, "recipe": recipe, "values": {"arena_bytes": arena}})
    for r in results:
        values = {"device": r.device, "status": r.status, "message": r.message or "", "median_ms": r.median_ms,
                  "p95_ms": r.p95_ms, "mean_ms": r.mean_ms, "std_ms": r.std_ms, "count": r.count,
                  "init_ms": r.init_ms, "partitions": r.partitions, "rss_delta_mb": r.rss_delta_mb,
                  "peak_memory_mb": r.peak_memory_mb, "inputs": r.inputs}
        emit({"kind": "latency", "cell": cell_id, "recipe": recipe, "target": r.target,
              "delegate": r.delegate or "unknown", "threads": r.threads or 0, "values": values})
        if not r.ok:
            where = f"t{r.threads}" if r.target == "host" else f"{r.delegate} t{r.threads}"
            failed.append(f"{where}: {r.status} {r.message or ''}".strip())
    return {"measurements": len(results), "failed": failed}


def _vela_version() -> str:
    return vela_version()

