"""The stages of a run, the one place they are chained: train, convert, evaluate, bench on the host, bench on phones,
measure for microcontrollers. The demo, a study's cells and a search's trials all call these functions.

Each stage takes a Run (tflkit.core.run), records what it measured in the run directory the moment it is measured
(so `tflkit report RUN` shows it, whoever ran the stage) and returns typed results (tflkit.core.results), which a
study also stores in study.db and a search in Optuna. A file that fails is a result with its status, not an
exception; an exception means the stage itself could not run (no data, no trained model).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from android_bench.runner import bench
from tflkit.bench.host import BenchSettings, bench_files
from tflkit.core import isolate
from tflkit.core.errors import TflkitError
from tflkit.core.fileio import sha256_file
from tflkit.core.results import BenchResult, EvalResult, ExportResult
from tflkit.core.run import Run
from tflkit.core.trainconfig import TrainConfig
from tflkit.data import load_dataset
from tflkit.mcu.boards import resolve_boards
from tflkit.mcu.measure import measure
from tflkit.mcu.vela import VelaTarget

Log = Callable[[str], None]


def _quiet(*_) -> None:
    pass


@dataclass
class Trained:
    """What a finished training stage returns: the history, how far it got, the saved model's checksum."""

    history: dict
    epochs: int | None
    best_val_top1: float | None
    stopped: bool
    model_sha256: str

    def to_dict(self) -> dict:
        return asdict(self)


def train(run: Run, config: TrainConfig | None = None, source=None, *, resume: bool | None = None,
          verbose: int = 0, log: Log | None = None, callbacks=None) -> Trained:
    """Train `config` into `run` (None: resume the run's own config). `resume` None: resume when the run has
    finished epochs, else start fresh."""
    from tflkit.training.loop import train as fit  # TensorFlow: loaded by the stages that need it, never a bench

    resume = run.resumable if resume is None else resume
    history = fit(config or run.config, run.path, resume=resume, verbose=verbose, source=source, log=log,
                  callbacks=callbacks)
    state = run.state()
    return Trained(history=history, epochs=state.get("epochs_done"), best_val_top1=state.get("best_val_top1"),
                   stopped=bool(state.get("stopped")), model_sha256=sha256_file(run.model_path))


def convert(run: Run, recipes, source=None, *, log: Log | None = None, **options) -> list[ExportResult]:
    """Convert, validate and document `recipes` (converters.export.export_run's options: calib_samples, fine_tune,
    validate_samples, tensor_samples, on_result, skip_done)."""
    from converters.export import export_run  # TensorFlow

    run.require(trained=True)
    return export_run(run, list(recipes), source=source, log=log or _quiet, **options)


def evaluate(run: Run, files=None, source=None, *, split: str = "test", limit: int | None = None,
             log: Log | None = None) -> list[EvalResult]:
    """Top-1/top-5 of `files` (default: model.keras and every .tflite of the run) on `split` of the run's dataset
    (`source`: already loaded). A whole test-split score is recorded in the run; a subset's or another split's is
    not (it is not the file's figure)."""
    from tflkit.training.evaluation import evaluate as score  # TensorFlow

    log = log or _quiet
    files = [run.model_path, *run.tflite_files()] if files is None else [Path(f) for f in files]
    if not files:
        return []
    source = source or _source(run)
    results = []
    for path in files:
        start = time.perf_counter()
        result = score(path, source, split=split, limit=limit, log=log)
        if split == "test" and limit is None:
            run.record_eval(result)
        top5 = f"  top5 {100 * result.top5:.2f}%" if result.top5 is not None else ""
        log(f"eval     {path.name}  top1 {100 * result.top1:.2f}%{top5}  ({result.count} {split} images, "
            f"{time.perf_counter() - start:.1f}s)")
        results.append(result)
    return results


def bench_host(run: Run, files=None, *, threads=(1,), settings: BenchSettings = BenchSettings(),
               input_data: str | None = None, data_dir=None, log: Log | None = None) -> list[BenchResult]:
    """Latency of `files` (default: every .tflite of the run) at each thread count, with LiteRT in a fresh process
    that imports no TensorFlow, as benchmark_model runs (after training in the same process, TensorFlow's idle thread
    pools slowed LiteRT's median 1.4x here). Recorded in the run's bench/host.json."""
    files = run.tflite_files() if files is None else [Path(f) for f in files]
    if not files:
        return []
    results = isolate.call(bench_files, [str(f) for f in files], tuple(threads), settings, input_data, data_dir,
                           on_message=log or _quiet)
    run.record_host_bench(results)
    return results


def bench_phone(run: Run, files, serial: str, *, threads=(1, 4), delegates=("cpu",), runs: int = 50,
                logs_dir=None, log: Log | None = None) -> list[BenchResult]:
    """benchmark_model on the phone `serial` over adb (android_bench), each file at each thread count and
    delegate; recorded in the run's bench/android.json."""
    results = bench([str(f) for f in files], [serial], threads=threads, delegates=delegates, runs=runs,
                    logs_dir=logs_dir, progress=log or _quiet)
    run.record_phone_bench(results)
    return results


def measure_mcu(run: Run, files, settings, source=None, *, log: Log | None = None) -> list[dict]:
    """TFLite Micro (exact arena, top-1 under its reference kernels), Vela per Ethos-U target and the fit on every
    board (tflkit.mcu.measure), for each file; `settings` a study's Mcu block. Recorded in the run's mcu.json."""
    boards = resolve_boards(settings.boards, settings.boards_file)
    targets = [VelaTarget.parse(t) for t in settings.ethos_u]
    results = []
    for path in files:
        record = measure(path, boards, targets, source=source, limit=settings.eval_limit,
                         sram_reserve_kb=settings.sram_reserve_kb, flash_reserve_kb=settings.flash_reserve_kb,
                         log=log).to_dict()
        run.record_mcu(record)
        results.append(record)
    return results


def _source(run: Run):
    config = run.config
    return load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed)


def one_line(exc: BaseException) -> str:
    """An exception as the one line a failed stage records."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


STAGE_ERRORS = (TflkitError, ValueError, RuntimeError, OSError)  # a failed stage; anything else is a bug
