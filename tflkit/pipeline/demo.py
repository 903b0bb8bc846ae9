"""Whole-run steps that chain the API: evaluate and benchmark every artifact of a run, and the demo."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tflkit.bench.host import BenchSettings, bench_models
from tflkit.core.errors import TflkitError
from tflkit.core.runrecords import load_bench, record_eval, record_host_bench


def run_artifacts(run_dir) -> list[Path]:
    """Every .tflite of the run that can be measured: the recorded ok ones, then files in tflite/ with no record
    (a convert killed after writing them); failed recipes' leftovers are skipped."""
    from converters.export import load_export_record, tflite_dir

    records = load_export_record(run_dir)
    paths = [Path(r["path"]) for r in records if r["status"] == "ok" and Path(r["path"]).is_file()]
    recorded = {Path(r["path"]).name for r in records if r.get("path")}
    return paths + [p for p in sorted(tflite_dir(run_dir).glob("*.tflite")) if p.name not in recorded]


def evaluate_run(run_dir, source=None, include_keras: bool = True, log=print, only_missing: bool = False) -> list:
    """Evaluate the run's model and every artifact; `only_missing`: only files with no eval.json record yet."""
    from tflkit.core.runrecords import load_evals
    from tflkit.data import load_dataset
    from tflkit.training.evaluation import evaluate
    from tflkit.training.loop import RunFiles, load_run_config

    config = load_run_config(run_dir)
    paths = ([RunFiles(Path(run_dir)).model] if include_keras else []) + run_artifacts(run_dir)
    if only_missing:
        done = load_evals(run_dir)
        paths = [p for p in paths if p.name not in done]
    if not paths:
        return []
    source = source or load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed)
    results = []
    for path in paths:
        start = time.perf_counter()
        result = evaluate(path, source, log=log)
        record_eval(run_dir, result)
        top5 = f"  top5 {100 * result.top5:.2f}%" if result.top5 is not None else ""
        log(f"eval     {path.name}  top1 {100 * result.top1:.2f}%{top5}  ({result.count} test images, "
            f"{time.perf_counter() - start:.1f}s)")
        results.append(result)
    return results


def bench_run(run_dir, threads=(1,), settings: BenchSettings = BenchSettings(), log=print,
              fresh_process: bool = False, only_missing: bool = False):
    """Time every artifact of the run (`only_missing`: those with no host benchmark yet). `fresh_process`: in a
    new interpreter process, as benchmark_model runs; after training in the same process, TensorFlow's idle thread
    pools slowed LiteRT's median 1.4x here."""
    paths = run_artifacts(run_dir)
    if only_missing:
        timed = {r.model for r in load_bench(run_dir) if r.target == "host"}
        paths = [p for p in paths if p.name not in timed]
    if not paths:
        return []
    if not fresh_process:
        results = bench_models(paths, threads=threads, settings=settings, log=log)
        record_host_bench(run_dir, results)
        return results
    command = [sys.executable, "-m", "tflkit", "bench", *map(str, paths), "--threads", *map(str, threads),
               "--runs", str(settings.runs), "--warmup", str(settings.warmup),
               "--min-seconds", str(settings.min_seconds)]
    if settings.runtime:
        command += ["--runtime", settings.runtime]
    if not settings.xnnpack:
        command.append("--no-xnnpack")
    done = subprocess.run(command, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("bench "):
            log(line)
    if done.returncode not in (0, 1):  # 1: some model failed, which is a row; anything else is a broken run
        raise TflkitError(f"benchmark process failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    names = {p.name for p in paths}
    return [r for r in load_bench(run_dir) if r.target == "host" and r.model in names]


@dataclass
class StageTimer:
    """Wall time per named stage, for `tflkit demo` and benchmarks/demo_stages.py."""

    seconds: dict = field(default_factory=dict)

    def __call__(self, name):
        timer = self

        class _Stage:
            def __enter__(self):
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[name] = timer.seconds.get(name, 0.0) + time.perf_counter() - self.start

        return _Stage()


@dataclass(frozen=True)
class DemoSettings:
    model: str = "mobilenetv3_small_050"
    epochs: int = 5  # 87.65% float; 6 gave 88.9% but put the demo at 181 s, on its 3-minute limit
    batch_size: int = 64
    lr: float = 3e-3
    # 4 epochs at lr, the last at 0.3x: the final weights settle, and int8 follows them. Measured on the AMX CPU,
    # seeds 1/0/2: 87.90/88.85/92.60% float, int8 0.15/-0.05/0.25 points below, against 85.50/87.15/92.70% and
    # 1.10/0.55/0.45 points with a constant lr; cosine gave seed 0 83.40% (it lowers the lr from the first epoch).
    lr_schedule: str = "step"
    step_epochs: int = 4
    step_gamma: float = 0.3
    bn_momentum: float | None = None  # moot: statistics are recomputed before each validation (training.bn_stats)
    recipes: tuple = ("fp32", "fp16", "dynamic_wi8_afp32", "static_wi8_ai8")
    threads: tuple = (1, 2)
    runs: int = 100
    warmup: int = 10
    seed: int = 0
    image_size: int | None = None  # None: the dataset's own (32)
    small_input: bool | None = None  # None: the CIFAR stem at 64 px and below
    augment: str = "none"  # the shapes are drawn at random positions, sizes, angles and colours already


def demo(out_dir, settings: DemoSettings = DemoSettings(), log=print, timer: StageTimer | None = None) -> str:
    """Train on the embedded shapes dataset, convert under every recipe, evaluate, benchmark, report."""
    from converters.export import export_run
    from tflkit.data import load_dataset
    from tflkit.pipeline.report import write_report
    from tflkit.training.loop import TrainConfig, train

    timer = timer or StageTimer()
    out_dir = Path(out_dir)
    with timer("data"):
        source = load_dataset("shapes", seed=settings.seed)
    from tflkit.models import get_spec

    # the demo's lr suits its MobileNetV3; another --model trains with its architecture's own defaults
    fields = dict(dataset="shapes", epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                  lr_schedule=settings.lr_schedule, step_epochs=settings.step_epochs, step_gamma=settings.step_gamma,
                  bn_momentum=settings.bn_momentum, seed=settings.seed,
                  image_size=settings.image_size, small_input=settings.small_input, augment=settings.augment)
    config = TrainConfig.for_model(settings.model, **{**fields, **get_spec(settings.model).train_defaults})
    resume = (out_dir / "state.json").is_file()
    if resume:  # only this demo's own run resumes: a larger --epochs trains more, other settings are refused
        from dataclasses import asdict

        from tflkit.core.config import save_yaml
        from tflkit.training.loop import load_run_config

        config = load_run_config(out_dir).resumed_with(asdict(config), out_dir, hint="--fresh starts over")
        save_yaml(config, out_dir / "config.yaml")  # train() resumes from it, with the applied --epochs
    log(f"train    {settings.model} on shapes ({len(source.split('train'))} images, {settings.epochs} epochs)"
        + ("  resuming" if resume else ""))
    with timer("train"):
        train(config, out_dir, resume=resume, verbose=2, source=source)
    with timer("convert"):
        export_run(out_dir, settings.recipes, source=source, log=log)
    with timer("eval"):
        evaluate_run(out_dir, source=source, log=log)
    with timer("bench"):
        bench_run(out_dir, threads=settings.threads,
                  settings=BenchSettings(runs=settings.runs, warmup=settings.warmup), log=log, fresh_process=True)
    with timer("report"):
        _, markdown = write_report(out_dir)
    return markdown
