"""tflkit's Python API: a trained run and every step on its files, a study, a pick, a look inside a .tflite.

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

Every function here is what the matching `tflkit` command calls; the settings are the commands' flags as keyword
arguments (`tflkit train --help`), checked the same way.
"""

from __future__ import annotations

from pathlib import Path

from tflkit.bench.host import BenchSettings
from tflkit.core.results import BenchResult, EvalResult, ExportResult
from tflkit.core.run import Run as RunDirectory
from tflkit.models import train_config
from tflkit.pipeline import stages
from tflkit.pipeline.report import write_report


class Run(RunDirectory):
    """A trained run directory (tflkit.core.run.Run: its paths, config and records) and the steps on its files."""

    def __init__(self, path):
        super().__init__(path)
        self.require()

    def convert(self, recipes=None, *, force: bool = False, log=None, **options) -> list[ExportResult]:
        """Convert, validate and document `recipes` (names from `tflkit recipes`; default: the four main ones).
        `force`: convert again recipes already converted with the same settings. `options`:
        converters.export.export_run's (calib_samples, fine_tune, validate_samples, tensor_samples)."""
        from converters.recipes import DEFAULT_RECIPES

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
        from tflkit.pipeline.rows import run_rows

        return run_rows(self)


def train(model: str, dataset: str = "shapes", out=None, *, resume: bool = False, verbose: int = 0, log=None,
          **settings) -> Run:
    """Train `model` (a registry name, `tflkit models`) on `dataset` into `out` (default runs/<model>) and return
    its Run. `settings`: TrainConfig's fields (epochs, batch_size, lr, image_size, data_dir, pretrained, ...), over
    the architecture's training defaults. `resume`: continue the run in `out` from its last finished epoch."""
    out = RunDirectory(out or Path("runs") / model)
    config = None if resume else train_config(model, dataset=dataset, **settings)
    stages.train(out, config, resume=resume, verbose=verbose, log=log or _quiet)
    return Run(out.path)


class Study:
    """A study file (models x datasets x regimes x recipes), checked when loaded."""

    def __init__(self, path, spec):
        self.path, self.spec = Path(path), spec

    @classmethod
    def load(cls, path) -> Study:
        from tflkit.study.spec import load_study

        return cls(path, load_study(path))

    def __repr__(self) -> str:
        return f"Study({str(self.path)!r}, name={self.spec.name!r})"

    def run(self, out, *, executor: str = "local", jobs: int = 1, ray_address: str | None = None, log=None,
            **options):
        """Run (or resume) the study into `out`; returns its StudySummary. `options`: tflkit.study.runner.RunOptions'
        other fields (retry_failed, remeasure, cells, max_steps, allow_changes)."""
        from tflkit.study.runner import RunOptions, run_study

        run_options = RunOptions(executor=executor, jobs=jobs, ray_address=ray_address, **options)
        return run_study(self.path, out, run_options, log=log or _quiet)

    @staticmethod
    def report(out, *, log=None) -> dict:
        """Write the study's report.html/.md/.csv/.json into `out`; returns their paths by kind."""
        from tflkit.study.report import write_study_report

        return write_study_report(out, log=log or _quiet)


def pick(study_dir, **constraints) -> dict:
    """`tflkit pick` on a study directory: {"feasible" (best first), "pareto", "excluded"}. `constraints`:
    tflkit.study.pick.pick's (target, threads, delegate, max_latency_ms, max_size_mb, min_top1, max_arena_kb,
    max_rss_mb, max_flash_kb, dataset, recipes, boards)."""
    from tflkit.study.pick import pick as pick_rows
    from tflkit.study.report import load_rows

    return pick_rows(load_rows(study_dir), **constraints)


def inspect(path, layers: bool = False) -> dict:
    """What `tflkit inspect` shows of a .tflite: ops and dtypes, I/O quantization, size, MACs, parameters,
    XNNPACK partitions, planned arena (`layers`: MACs per node)."""
    from tflkit.tflite.describe import describe

    return describe(path, layers=layers)


def _quiet(*_) -> None:
    pass
