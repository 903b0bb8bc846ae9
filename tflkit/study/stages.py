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
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from tflkit.core import isolate
from tflkit.core.benchresult import BenchResult
from tflkit.core.errors import TflkitError
from tflkit.core.machine import environment
from tflkit.study.provenance import dataset_checksum, sha256_file
from tflkit.study.spec import Cell, StudySpec, cell_dir

if TYPE_CHECKING:
    from tflkit.bench.host import BenchSettings

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
        if exc_type is not None and not issubclass(exc_type, (TflkitError, ValueError, RuntimeError, OSError)):
            return False  # a bug or an interrupt: not a result; the stage stays `running` and is redone
        if exc_type is not None:
            self.status, self.message = "failed", _one_line(exc)
        self.emit({"kind": "stage", "cell": self.cell, "stage": self.stage, "status": self.status,
                   "message": self.message, "wall_s": time.perf_counter() - self.wall,
                   "cpu_s": _cpu_seconds() - self.cpu, "result": self.result, "provenance": self.provenance})
        return True


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _one_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def run_cell(spec: StudySpec, cell: Cell, out_dir, done: set[str], emit: Emit, log=print,
             node: str | None = None) -> None:
    """`node`: the Ray node running the cell, recorded with every stage beside the host."""
    from tflkit.core.tfenv import quiet_tensorflow

    quiet_tensorflow()
    from tflkit.data import load_dataset

    run_dir = cell_dir(out_dir, cell.id)
    entry = next(d for d in spec.datasets if d.key == cell.dataset)
    base = {**environment(), "seed": cell.config["seed"], "cell": cell.id, **({"ray_node": node} if node else {})}
    source = load_dataset(entry.spec, data_dir=entry.data_dir, seed=cell.config["seed"])
    base["dataset"] = {**dataset_checksum(source, Path(out_dir) / "datasets"), "data_dir": entry.data_dir}

    if "train" not in done:
        with _Stage(emit, cell.id, "train", base) as stage:
            stage.result = _train(cell, run_dir, source, log)
        if stage.status != "ok":
            for recipe in spec.recipes:  # every file this cell would have made is a row with the reason
                emit({"kind": "file", "cell": cell.id, "recipe": recipe,
                      "values": {"status": "train_failed", "message": stage.message}})
            return
    elif not (run_dir / "model.keras").is_file():
        return  # recorded as failed before: nothing to convert

    todo = [r for r in spec.recipes if f"convert/{r}" not in done]
    if todo:
        _convert(spec, cell, run_dir, source, todo, emit, base, log)
    files = _converted_files(run_dir)
    for recipe in spec.recipes:
        path = files.get(recipe)
        if path is None:
            continue
        if f"eval/{recipe}" not in done:
            with _Stage(emit, cell.id, f"eval/{recipe}", {**base, "file_sha256": sha256_file(path)}) as stage:
                stage.result = _evaluate(path, source, cell, recipe, emit, log, spec.eval_limit)
        if f"bench_host/{recipe}" not in done:
            with _Stage(emit, cell.id, f"bench_host/{recipe}", {**base, "file_sha256": sha256_file(path)}) as stage:
                stage.result = _bench_host(spec, path, cell, recipe, source, entry, out_dir, emit, log)
                if stage.result["failed"]:
                    stage.fail("failed", stage.result["failed"][0])
        for phone in spec.phones:
            name = f"bench_phone/{phone.serial}/{recipe}"
            if name not in done:
                with _Stage(emit, cell.id, name, {**base, "file_sha256": sha256_file(path)}) as stage:
                    stage.result = _bench_phone(phone, path, cell, recipe, out_dir, emit, log)
                    if stage.result["failed"]:
                        stage.fail("failed", stage.result["failed"][0])
        if spec.mcu is not None and f"mcu/{recipe}" not in done:
            with _Stage(emit, cell.id, f"mcu/{recipe}", {**base, "file_sha256": sha256_file(path),
                                                          "vela_version": _vela_version()}) as stage:
                stage.result = _mcu(spec.mcu, path, source, log)
                if not stage.result["runs"]:  # a measured fact about the file, not a failure of the stage
                    stage.message = f"does not run under TFLite Micro: {stage.result['reason']}"


def _train(cell: Cell, run_dir: Path, source, log) -> dict:
    from tflkit.core.config import from_dict
    from tflkit.training.loop import RunFiles, TrainConfig, train

    config = from_dict(TrainConfig, cell.config, source=cell.id)
    files = RunFiles(run_dir)
    resume = files.state.is_file() and files.config.is_file()
    log(f"train    {cell.id}" + ("  (resuming)" if resume else ""))
    history = train(config, run_dir, resume=resume, verbose=2, source=source)
    state = json.loads(files.state.read_text()) if files.state.is_file() else {}
    return {"history": history, "epochs": state.get("epochs_done"), "best_val_top1": state.get("best_val_top1"),
            "stopped": bool(state.get("stopped")), "run_dir": str(run_dir), "model_sha256": sha256_file(files.model)}


def _convert(spec, cell, run_dir, source, recipes, emit, base, log) -> None:
    """Convert `recipes` in one export (one SavedModel for all); each recipe is its own stage, recorded when its
    file is written and validated."""
    from converters.export import export_run
    from tflkit.core.runrecords import load_model_info

    params = load_model_info(run_dir).get("params")
    reported = set()
    clock = {"wall": time.perf_counter(), "cpu": _cpu_seconds()}

    def on_result(result) -> None:
        emit({"kind": "start", "cell": cell.id, "stage": f"convert/{result.recipe}"})
        values = {"status": result.status, "message": result.message, "path": result.path,
                  "size_bytes": result.size_bytes, "gzip_bytes": result.gzip_bytes, "params": params}
        extra = {k: v for k, v in asdict(result).items()
                 if k not in ("recipe", "status", "message", "path", "size_bytes", "gzip_bytes", "validation",
                              "seconds") and isinstance(v, (int, float, str))}
        if result.validation:
            values["agreement"] = result.validation.get("agreement")
        if result.status == "ok" and result.path:
            values["sha256"] = sha256_file(result.path)
            values.update(_file_figures(result.path))
        values["extra"] = extra
        emit({"kind": "file", "cell": cell.id, "recipe": result.recipe, "values": values})
        now_wall, now_cpu = time.perf_counter(), _cpu_seconds()
        emit({"kind": "stage", "cell": cell.id, "stage": f"convert/{result.recipe}",
              "status": "ok" if result.status == "ok" else "failed", "message": result.message,
              "wall_s": result.seconds if result.seconds is not None else now_wall - clock["wall"],
              "cpu_s": now_cpu - clock["cpu"], "result": {"status": result.status, "seconds": result.seconds},
              "provenance": {**base, "file_sha256": values.get("sha256")}})
        clock.update(wall=now_wall, cpu=now_cpu)
        reported.add(result.recipe)

    kwargs = {}
    if spec.calib_samples is not None:
        kwargs["calib_samples"] = spec.calib_samples
    if spec.finetune_steps is not None:
        from converters.qat import FineTuneSettings

        kwargs["fine_tune"] = FineTuneSettings(steps=spec.finetune_steps)
    try:
        results = export_run(run_dir, list(recipes), source=source, log=log, on_result=on_result, **kwargs)
    except (TflkitError, ValueError, RuntimeError, OSError) as exc:
        for recipe in recipes:
            if recipe not in reported:
                message = _one_line(exc)
                emit({"kind": "file", "cell": cell.id, "recipe": recipe,
                      "values": {"status": "convert_failed", "message": message}})
                emit({"kind": "stage", "cell": cell.id, "stage": f"convert/{recipe}", "status": "failed",
                      "message": message, "wall_s": None, "cpu_s": None, "result": None, "provenance": base})
        return
    for result in results:  # recipes the export found already converted report here, not through the callback
        if result.recipe not in reported:
            on_result(result)


def _file_figures(path) -> dict:
    """Figures read from the .tflite itself: MACs, and the activation arena TFLite's planner lays out for it. A
    figure that cannot be read stays unknown (None), never 0."""
    from tflkit.tflite.arena import arena_bytes
    from tflkit.tflite.macs import count_macs

    figures = {}
    with contextlib.suppress(TflkitError, ValueError, RuntimeError):
        figures["macs"] = int(count_macs(path).macs)
    with contextlib.suppress(TflkitError, ValueError, RuntimeError):
        figures["arena_bytes"] = int(arena_bytes(path))
    return figures


def _converted_files(run_dir: Path) -> dict[str, Path]:
    from converters.export import load_export_record

    return {r["recipe"]: Path(r["path"]) for r in load_export_record(run_dir)
            if r["status"] == "ok" and r.get("path") and Path(r["path"]).is_file()}


def _evaluate(path, source, cell, recipe, emit, log, limit: int | None = None) -> dict:
    from tflkit.training.evaluation import evaluate

    start = time.perf_counter()
    result = evaluate(path, source, limit=limit)
    log(f"eval     {path.name}  top1 {100 * result.top1:.2f}%  ({result.count} images, "
        f"{time.perf_counter() - start:.1f}s)")
    emit({"kind": "file", "cell": cell.id, "recipe": recipe,
          "values": {"top1": result.top1, "top5": result.top5, "eval_images": result.count}})
    # the class count tells a top-1 from guessing (tflkit.study.rows.at_chance)
    return {**result.to_dict(), "classes": source.num_classes}


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


def _bench_host(spec, path, cell, recipe, source, entry, out_dir, emit, log) -> dict:
    """In a fresh interpreter that imports only the runtime (never one that imported TensorFlow): `bench_file`."""
    from tflkit.bench.host import BenchSettings

    settings = spec.host_bench
    bench = BenchSettings(runs=settings.runs, warmup=settings.warmup, min_seconds=settings.min_seconds)
    inputs = (entry.spec, entry.data_dir) if settings.input_data else (None, None)
    with _bench_lock(out_dir):
        results = [r.to_dict() for r in isolate.call(bench_file, str(path), list(settings.threads), bench, *inputs)]
    failed = []
    arena = next((r["arena_bytes"] for r in results if r.get("arena_bytes") is not None), None)
    if arena is not None:  # the same planner figure as at conversion; files converted before it existed get it here
        emit({"kind": "file", "cell": cell.id, "recipe": recipe, "values": {"arena_bytes": arena}})
    for r in results:
        _emit_latency(emit, cell.id, recipe, r)
        if r["status"] != "ok":
            failed.append(f"t{r['threads']}: {r['status']} {r.get('message', '')}".strip())
        elif r.get("median_ms") is not None:
            log(f"bench    {path.name}  t{r['threads']}  median {r['median_ms']:.3f} ms")
    return {"measurements": len(results), "failed": failed}


def bench_file(path: str, threads: list[int], settings: BenchSettings, input_data: str | None = None,
               data_dir: str | None = None) -> list[BenchResult]:
    """The study's host benchmark of one file (tflkit.bench.host.bench_models: a BenchResult per thread count, a
    failure a row with its status), run by `_bench_host` in a fresh process through tflkit.core.isolate. This
    module imports nothing of TensorFlow, so neither does that process (unless dataset inputs are asked for), as
    benchmark_model runs: after training in the same process TensorFlow's idle thread pools slowed LiteRT's median
    1.4x here."""
    from tflkit.bench.host import bench_models, open_input_data

    images = open_input_data(input_data, data_dir=data_dir) if input_data else None
    return bench_models([path], threads=threads, settings=settings, images=images)


def _emit_latency(emit, cell_id, recipe, r: dict) -> None:
    values = {"device": r.get("device"), "status": r["status"], "message": r.get("message") or "",
              "median_ms": r.get("median_ms"), "p95_ms": r.get("p95_ms"), "mean_ms": r.get("mean_ms"),
              "std_ms": r.get("std_ms"), "count": r.get("count"), "init_ms": r.get("init_ms"),
              "partitions": r.get("partitions"), "rss_delta_mb": r.get("rss_delta_mb"),
              "peak_memory_mb": r.get("peak_memory_mb"), "inputs": r.get("inputs")}
    emit({"kind": "latency", "cell": cell_id, "recipe": recipe, "target": r["target"],
          "delegate": r.get("delegate") or "unknown", "threads": r.get("threads") or 0, "values": values})


def _mcu(settings, path, source, log) -> dict:
    """TFLite Micro, Vela and the boards' fits (tflkit.mcu.measure); the whole record is the stage's result, which
    tflkit.study.rows flattens into columns."""
    from tflkit.mcu.measure import measure
    from tflkit.mcu.vela import VelaTarget
    from tflkit.study.spec import mcu_boards

    result = measure(path, mcu_boards(settings), [VelaTarget.parse(t) for t in settings.ethos_u], source=source,
                     limit=settings.eval_limit, sram_reserve_kb=settings.sram_reserve_kb,
                     flash_reserve_kb=settings.flash_reserve_kb, log=log)
    return result.to_dict()


def _vela_version() -> str:
    from tflkit.mcu.vela import vela_version

    return vela_version()


def _bench_phone(phone, path, cell, recipe, out_dir, emit, log) -> dict:
    from android_bench.runner import bench

    results = bench([path], [phone.serial], threads=phone.threads, delegates=phone.delegates, runs=phone.runs,
                    logs_dir=Path(out_dir) / "phone_logs" / cell.id, progress=log)
    failed = []
    for r in results:
        _emit_latency(emit, cell.id, recipe, r.to_dict())
        if not r.ok:
            failed.append(f"{r.delegate} t{r.threads}: {r.status}")
    return {"measurements": len(results), "failed": failed}
