"""tflkit's Python API: what every `tflkit` command calls, with the commands' flags as keyword arguments.

    import tflkit

    run = tflkit.train("mobilenetv3_small_100", dataset="cifar10", out="runs/m3", epochs=2, train_limit=5000,
                       image_size=64, small_input=False)
    run.convert(["fp32", "static_wi8_ai8"])     # -> [ExportResult]: the .tflite files, validated
    run.evaluate()                              # -> [EvalResult]: top-1/top-5 of the model and each file
    run.bench(threads=[1, 2])                   # -> [BenchResult]: latency, memory, partitions
    print(run.report())                         # the markdown table (report.md/.csv/.json written beside)

    study = tflkit.Study.load("benchmarks/studies/smoke.yaml")
    summary = study.run("runs/smoke")           # -> StudySummary; the same command again resumes
    best = tflkit.pick("runs/smoke", max_latency_ms=1.0)["feasible"][0]

Functions over several files (evaluate, bench, mcu) go on past a file that fails: it is a `Failed` item in the
returned list (what the CLI reports as that item's error, exit 1), never an exception that loses the others.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from converters.recipes import DEFAULT_RECIPES
from tflkit.bench.host import BenchSettings, bench_models, open_input_data
from tflkit.core.errors import ModelFileError, UsageError
from tflkit.core.fileio import atomic_path, atomic_write_text
from tflkit.core.results import BenchResult, EvalResult, ExportResult
from tflkit.core.run import Run as RunDirectory
from tflkit.core.trainconfig import TrainConfig
from tflkit.data import default_data_dir, load_dataset
from tflkit.data.check import check_dataset
from tflkit.data.prepare import prepare as fetch
from tflkit.mcu.boards import BOARDS, read_boards, resolve_boards
from tflkit.mcu.fit import FLASH_RESERVE_KB, SRAM_RESERVE_KB
from tflkit.mcu.measure import measure
from tflkit.mcu.tflm import require_tflm
from tflkit.mcu.vela import VelaTarget, require_vela
from tflkit.models import get_spec, train_config
from tflkit.models.summary import describe_models
from tflkit.pipeline import stages
from tflkit.pipeline.demo import DemoSettings, StageTimer
from tflkit.pipeline.demo import demo as run_demo
from tflkit.pipeline.report import write_report
from tflkit.pipeline.rows import run_rows
from tflkit.study.pick import pick as pick_rows
from tflkit.study.report import write_study_report
from tflkit.study.rows import study_rows
from tflkit.study.runner import RunOptions, run_study
from tflkit.study.spec import EXAMPLE, load_study
from tflkit.study.store import STUDY_DB, open_store
from tflkit.tflite.describe import describe
from tflkit.tune.search import TuneSettings, run_search


@dataclass
class Failed:
    """One item (a file, a recipe) that could not be measured, and why, in one line."""

    item: str
    message: str


class Run(RunDirectory):
    """A trained run directory (tflkit.core.run.Run: its paths, config and records) and the steps on its files."""

    def __init__(self, path):
        super().__init__(path)
        self.require()

    def convert(self, recipes=None, *, force: bool = False, log=None, **options) -> list[ExportResult]:
        """Convert, validate and document `recipes` (names from `tflkit recipes`; default: the four main ones).
        `force`: convert again recipes already converted with the same settings. `options`:
        converters.export.export_run's (calib_samples, fine_tune, validate_samples, tensor_samples)."""
        return stages.convert(self, list(recipes or DEFAULT_RECIPES), skip_done=not force, log=log, **options)

    def evaluate(self, files=None, *, split: str = "test", limit: int | None = None, log=None) -> list[EvalResult]:
        """Top-1/top-5 of `files` (default: model.keras and every .tflite) on `split` of the run's dataset."""
        return stages.evaluate(self, files, split=split, limit=limit, log=log)

    def bench(self, threads=(1,), *, files=None, runs: int = 50, warmup: int = 5, min_seconds: float = 0.0,
              xnnpack: bool = True, runtime: str | None = None, input_data: str | None = None, data_dir=None,
              log=None) -> list[BenchResult]:
        """Host latency of `files` (default: every .tflite) with LiteRT at each thread count, in a fresh process
        that never imported TensorFlow, as benchmark_model runs."""
        settings = BenchSettings(runs=runs, warmup=warmup, min_seconds=min_seconds, xnnpack=xnnpack, runtime=runtime)
        return stages.bench_host(self, files, threads=tuple(threads), settings=settings, input_data=input_data,
                                 data_dir=data_dir, log=log)

    def report(self, measure: bool = False, *, log=None) -> str:
        """Write report.md/.csv/.json for the run and return the markdown. `measure`: first evaluate and benchmark
        the files that have no figures yet (converted later, or by a run killed midway)."""
        if measure:
            if files := self.unevaluated():
                stages.evaluate(self, files, log=log)
            if files := self.unbenched():
                stages.bench_host(self, files, log=log)
        return write_report(self)[1]

    def rows(self) -> list[dict]:
        """The report's rows (tflkit.pipeline.rows: the columns a study's results have too)."""
        return run_rows(self)


def train(model: str | None = None, dataset: str = "shapes", out=None, *, config: TrainConfig | None = None,
          resume: bool = False, verbose: int = 0, log=None, **settings) -> Run:
    """Train `model` (a registry name, `tflkit models`) on `dataset` into `out` (default runs/<model>) and return
    its Run. `settings`: TrainConfig's fields (epochs, batch_size, lr, image_size, data_dir, pretrained, ...), over
    the architecture's training defaults; or a whole `config`. `resume`: continue the run in `out` from its last
    finished epoch (a larger `epochs` in `config` trains that many in all)."""
    if config is None and model is None:
        raise UsageError("give a model (see `tflkit models`) or a config")
    config = config or train_config(model, dataset=dataset, **settings)
    run = RunDirectory(out or Path("runs") / config.model)
    if resume:  # training resumes from the run's own config.yaml, with the applied epochs
        run.save_config(config)
    stages.train(run, config, resume=resume, verbose=verbose, log=log or _quiet)
    return Run(run.path)


def resume_config(out, **requested) -> TrainConfig:
    """The saved config of the run in `out` with `requested` settings applied for a resume: more epochs continue
    it, any other change is refused in one line."""
    run = RunDirectory(out)
    if not run.exists:
        raise UsageError(f"nothing to resume in {out} (no config.yaml)")
    return run.config.resumed_with(requested, out)


def evaluate(paths, dataset: str, *, data_dir=None, split: str = "test", seed: int = 0, limit: int | None = None,
             preprocessing=None, labels=None, strict: bool = False, log=None) -> list[EvalResult | Failed]:
    """Top-1/top-5 of any .keras or .tflite files (tflkit's or anyone's) on a dataset split. A file inside a run has
    its whole test-split score recorded there. `preprocessing`: tflkit.data.preprocess.from_flags' (None: each
    model's own, from its card or metadata, else assumed and said)."""
    from tflkit.training.evaluation import evaluate as score  # TensorFlow (Keras files are scored too): loaded here

    source = load_dataset(dataset, data_dir=data_dir, seed=seed)  # a bad dataset name first: it is the usual typo
    _require_files(paths)
    results = []
    for path in paths:
        try:
            result = score(path, source, split=split, limit=limit, preprocessing=preprocessing, labels=labels,
                           strict=strict, seed=seed, log=log)
        except ModelFileError as exc:  # a corrupt file: this item failed, the others are still evaluated
            results.append(Failed(str(path), str(exc)))
            continue
        run = RunDirectory.of_file(path)
        if run is not None and split == "test" and limit is None:  # a subset's score is not the file's
            run.record_eval(result)
        results.append(result)
    return results


def bench(paths, threads=(1,), *, runs: int = 50, warmup: int = 5, min_seconds: float = 0.0, xnnpack: bool = True,
          runtime: str | None = None, input_data: str | None = None, data_dir=None, input_images: int | None = None,
          preprocessing=None, log=None) -> list[BenchResult]:
    """Latency of any .tflite files with LiteRT in this process (a file that fails is a row with its status). A file
    inside a run has its figures recorded there."""
    _require_files(paths)  # a typo in a path: nothing to measure. A corrupt file is a failed row.
    settings = BenchSettings(runs=runs, warmup=warmup, min_seconds=min_seconds, xnnpack=xnnpack, runtime=runtime)
    images = open_input_data(input_data, data_dir=data_dir, count=input_images, preprocessing=preprocessing, log=log)
    results = bench_models(paths, threads=tuple(threads), settings=settings, log=log, images=images)
    for path in paths:
        run = RunDirectory.of_file(path)
        if run is not None:
            run.record_host_bench([r for r in results if r.model == Path(path).name])
    return results


def demo(out="runs/demo", *, fresh: bool = False, log=print, **settings):
    """The whole pipeline on the embedded shapes dataset (tflkit.pipeline.demo); `settings`: DemoSettings' fields.
    Returns (the report's markdown, its rows, seconds per stage)."""
    import json


    settings = replace(DemoSettings(), **settings)
    get_spec(settings.model)  # a typo must not cost the old run
    if fresh and RunDirectory(out).exists:  # only a run directory is removed, never another folder
        shutil.rmtree(out)
    timer = StageTimer()
    markdown = run_demo(out, settings, log=log, timer=timer)
    rows = json.loads(RunDirectory(out).report_path("json").read_text())
    return markdown, rows, timer.seconds


def models(include_test: bool = False, macs: bool = True) -> list[dict]:
    """Every registered architecture: input size, parameters, MACs, and the reference they are checked against."""
    return describe_models(include_test=include_test, compute_macs=macs)


def dataset(spec: str, *, data_dir=None, seed: int = 0, check: bool = False, prepare: bool = False,
            archive=None, log=None) -> dict:
    """What a dataset source holds (splits, classes, image size, notes). `prepare`: download the official archive
    (or unpack `archive`) into `data_dir` first. `check`: decode every image; the result's `check` lists unreadable
    files and empty classes."""
    if prepare:
        data_dir = data_dir or default_data_dir()
        fetch(spec, Path(data_dir), source=archive, log=log or _quiet)
    elif archive:
        raise UsageError("--from gives the archive to --prepare; add --prepare")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir: no such directory: {data_dir}")
    source = load_dataset(spec, data_dir=data_dir, seed=seed, allow_empty_classes=check)
    info = source.describe()
    if check:
        info["check"] = check_dataset(source, log=log or _quiet)
    return info


def import_weights(path, model: str, out, *, image_size: int | None = None, num_classes: int | None = None) -> dict:
    """Map a weights file (.tflite, torchvision .pth, .h5/.weights.h5/.keras) onto registry model `model` and save
    it as `out` (.keras); returns the import report."""
    from tflkit.weights.load import import_weights as build  # TensorFlow: builds a Keras model

    out = Path(out)
    if out.suffix != ".keras":
        raise UsageError(f"--out {out}: must end in .keras")
    keras_model, report = build(path, model, image_size=image_size, num_classes=num_classes)
    with atomic_path(out) as tmp:
        keras_model.save(tmp)
    return {"model": model, "source": report["source"], "out": str(out), "status": "ok",
            "num_classes": int(keras_model.output_shape[-1]), "image_size": int(keras_model.input_shape[1]),
            "layers_loaded": len(report["loaded_layers"]), "layers_skipped": report["skipped_layers"]}


def boards(boards_file=None) -> list[dict]:
    """The microcontroller boards tflkit fits files to (built-in, plus a user's YAML), with a source per figure."""
    extra = read_boards(boards_file) if boards_file else {}
    return [b.to_dict() for b in {**BOARDS, **extra}.values()]


def mcu(paths, *, boards=None, boards_file=None, ethos_u=(), dataset: str | None = None, data_dir=None,
        split: str = "test", limit: int | None = None, seed: int = 0, sram_reserve_kb: float | None = None,
        flash_reserve_kb: float | None = None, log=None) -> list:
    """Each .tflite under TensorFlow Lite Micro (refusal named, or its exact arena; top-1 with `dataset`), Vela for
    each Ethos-U target, the fit on each board (tflkit.mcu.measure): McuResult per file, Failed for an unreadable
    one. A file inside a run has its record kept there (unless scored on a subset)."""
    chosen = resolve_boards(boards or (), boards_file)
    targets = [VelaTarget.parse(spec) for spec in ethos_u]
    require_tflm()
    if targets or any(b.ethos_u for b in chosen):
        require_vela()
    _require_files(paths)
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir: no such directory: {data_dir}")
    source = None
    if dataset:
        source = load_dataset(dataset, data_dir=data_dir, seed=seed)
    results = []
    for path in paths:
        try:
            result = measure(path, chosen, targets, source=source, split=split, limit=limit, seed=seed, log=log,
                             sram_reserve_kb=SRAM_RESERVE_KB if sram_reserve_kb is None else sram_reserve_kb,
                             flash_reserve_kb=FLASH_RESERVE_KB if flash_reserve_kb is None else flash_reserve_kb)
        except ModelFileError as exc:
            results.append(Failed(str(path), str(exc)))
            continue
        run = RunDirectory.of_file(path)
        if run is not None and (limit is None or source is None):
            run.record_mcu(result.to_dict())
        results.append(result)
    return results


class Study:
    """A study file (models x datasets x regimes x recipes), checked when loaded."""

    def __init__(self, path, spec):
        self.path, self.spec = Path(path), spec

    @classmethod
    def load(cls, path) -> Study:
        return cls(path, load_study(path))

    @staticmethod
    def init(path, force: bool = False) -> Path:
        """Write a commented example study file to `path`."""
        path = Path(path)
        if path.exists() and not force:
            raise UsageError(f"{path} exists; pass --force to overwrite it")
        atomic_write_text(path, EXAMPLE)
        return path

    def __repr__(self) -> str:
        return f"Study({str(self.path)!r}, name={self.spec.name!r})"

    def run(self, out, *, executor: str = "local", jobs: int = 1, ray_address: str | None = None, log=None,
            **options):
        """Run (or resume) the study into `out`; returns its StudySummary. `options`: tflkit.study.runner.RunOptions'
        other fields (retry_failed, remeasure, cells, max_steps, allow_changes)."""
        run_options = RunOptions(executor=executor, jobs=jobs, ray_address=ray_address, **options)
        return run_study(self.path, out, run_options, log=log or _quiet)

    @staticmethod
    def report(out, *, more=(), into=None, log=None) -> dict:
        """Write the study's report.html/.md/.csv/.json into `out` (with `more` study directories, one report of
        them all into `into`); returns their paths by kind."""
        for study_dir in (out, *more):
            _require_study_dir(study_dir)
        return write_study_report(out, log=log or _quiet, more=tuple(more), into=into)


def pick(study_dir, **constraints) -> dict:
    """`tflkit pick` on a study directory: {"feasible" (best first), "pareto", "excluded", "constraints"}.
    `constraints`: tflkit.study.pick.pick's (target, threads, delegate, max_latency_ms, max_size_mb, min_top1,
    max_arena_kb, max_rss_mb, max_flash_kb, dataset, recipes, boards)."""
    _require_study_dir(study_dir)
    with open_store(study_dir) as store:
        return pick_rows(study_rows(store), **constraints)


def tune(model: str, dataset: str, out, *, log=print, **settings):
    """An Optuna search over `model`'s hyperparameters and augmentation (tflkit.tune): returns the Optuna study.
    `settings`: tflkit.tune.search.TuneSettings' fields (trials, space, storage, objective, prune, study_name) and
    the TrainConfig fields every trial starts from (epochs, default 3; train_limit, image_size, pretrained, ...)."""
    return run_search(TuneSettings.of(model, dataset, out, **settings), log=log)


def inspect(path, layers: bool = False) -> dict:
    """What `tflkit inspect` shows of a .tflite: ops and dtypes, I/O quantization, size, MACs, parameters,
    XNNPACK partitions, planned arena (`layers`: MACs per node)."""
    if not Path(path).is_file():  # a missing input is a usage error (exit 2); a corrupt file is exit 1
        raise UsageError(f"model file not found: {path}")
    return describe(path, layers=layers)


def _require_files(paths, what: str = "model file") -> None:
    """A path that is not there is a missing input (exit 2); a corrupt file is a failed item later."""
    for path in paths:
        if not Path(path).is_file():
            raise UsageError(f"{what} not found: {path}")


def _require_study_dir(path) -> None:
    if not (Path(path) / STUDY_DB).is_file():
        raise UsageError(f"{path} is not a study directory (no {STUDY_DB}); run `tflkit study run STUDY.yaml --out "
                         f"{path}` first")


def _quiet(*_) -> None:
    pass
