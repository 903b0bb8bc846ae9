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

from tflkit.core.errors import UsageError


class Run:
    """A run directory as `train` wrote it, and the steps that work on it: convert, evaluate, bench, report."""

    def __init__(self, path):
        from tflkit.training.loop import RunFiles

        self.path = Path(path)
        self.files = RunFiles(self.path)
        if not self.files.config.is_file():
            raise UsageError(f"{self.path} is not a tflkit run directory (no config.yaml)")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def config(self):
        """The run's resolved TrainConfig (as saved in config.yaml)."""
        from tflkit.training.loop import load_run_config

        return load_run_config(self.path)

    @property
    def tflite_files(self) -> list[Path]:
        from tflkit.pipeline.demo import run_artifacts

        return run_artifacts(self.path)

    def convert(self, recipes=None, *, log=None, **options) -> list:
        """Convert, validate and document `recipes` (names from `tflkit recipes`; default: the four main ones).
        `options`: converters.export.export_run's (calib_samples, validate_samples, fine_tune, ...)."""
        from converters.export import DEFAULT_RECIPES, export_run

        return export_run(self.path, list(recipes or DEFAULT_RECIPES), log=log or _quiet, **options)

    def evaluate(self, include_keras: bool = True, *, log=None) -> list:
        """Top-1/top-5 of model.keras (unless `include_keras` is False) and every .tflite on the test split."""
        from tflkit.pipeline.demo import evaluate_run

        return evaluate_run(self.path, include_keras=include_keras, log=log or _quiet)

    def bench(self, threads=(1,), *, runs: int = 50, warmup: int = 5, fresh_process: bool = True, log=None) -> list:
        """Host latency of every .tflite with LiteRT at each thread count (in a fresh process, as benchmark_model
        runs, unless `fresh_process` is False)."""
        from tflkit.bench.host import BenchSettings
        from tflkit.pipeline.demo import bench_run

        return bench_run(self.path, threads=tuple(threads), settings=BenchSettings(runs=runs, warmup=warmup),
                         log=log or _quiet, fresh_process=fresh_process)

    def report(self) -> str:
        """Write report.md/.csv/.json for the run; returns the markdown."""
        from tflkit.pipeline.report import write_report

        return write_report(self.path)[1]


def train(model: str, dataset: str = "shapes", out=None, *, resume: bool = False, verbose: int = 0, log=None,
          **settings) -> Run:
    """Train `model` (a registry name, `tflkit models`) on `dataset` into `out` (default runs/<model>) and return
    its Run. `settings`: TrainConfig's fields (epochs, batch_size, lr, image_size, data_dir, pretrained, ...), over
    the architecture's training defaults. `resume`: continue the run in `out` from its last finished epoch."""
    from tflkit.training import loop as training

    out = Path(out or Path("runs") / model)
    config = training.TrainConfig.for_model(model, dataset=dataset, **settings)
    training.train(config, out, resume=resume, verbose=verbose, log=log or _quiet)
    return Run(out)


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
