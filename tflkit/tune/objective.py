"""What a trial is scored on: the Keras model's val top-1, or the val top-1 of its .tflite under a recipe, with an
optional budget on that .tflite's host latency and size.

The budget goes to Optuna as a constraint (`Trial.set_constraint` in Optuna 5, the TPE sampler's `constraints_func`
in Optuna 4: a value > 0 is a violation), not as a penalty: an infeasible trial keeps its real top-1 in the database
and the CSV, the sampler learns to avoid its region, and the best configuration is chosen among feasible trials.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from converters.recipes import get_recipe
from tflkit.bench.host import BenchSettings
from tflkit.core.errors import UsageError
from tflkit.core.run import Run
from tflkit.pipeline import stages

KERAS = "keras"
TRIAL_VALIDATE_SAMPLES = 32


@dataclass(frozen=True)
class Objective:
    target: str = KERAS  # "keras" or a recipe name (converters/recipes.py)
    max_latency_ms: float | None = None  # host median, 1 thread, XNNPACK, fresh process
    max_size_mb: float | None = None  # the .tflite file, MB = 1e6 bytes
    bench_runs: int = 50

    def check(self) -> Objective:
        if self.target != KERAS:
            get_recipe(self.target)  # UsageError naming the recipes
        if (self.max_latency_ms is not None or self.max_size_mb is not None) and self.target == KERAS:
            raise UsageError("a latency or size budget is measured on a .tflite: give --objective RECIPE "
                             "(e.g. static_wi8_ai8) with --max-latency-ms / --max-size-mb")
        for key in ("max_latency_ms", "max_size_mb"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                raise UsageError(f"--{key.replace('_', '-')} must be positive, got {value}")
        return self

    @property
    def constrained(self) -> bool:
        return self.max_latency_ms is not None or self.max_size_mb is not None

    def describe(self) -> str:
        what = "val top-1 of the Keras model" if self.target == KERAS else f"val top-1 of the {self.target} .tflite"
        budget = []
        if self.max_latency_ms is not None:
            budget.append(f"host median latency <= {self.max_latency_ms:g} ms (1 thread)")
        if self.max_size_mb is not None:
            budget.append(f"size <= {self.max_size_mb:g} MB")
        return what + (f", subject to {' and '.join(budget)}" if budget else "")


@dataclass
class Score:
    """What a finished trial measured. `value` is what the search maximizes."""

    value: float
    keras_val_top1: float
    tflite_val_top1: float | None = None
    size_bytes: int | None = None
    median_ms: float | None = None
    violations: list = field(default_factory=list)  # (name, amount over budget); empty when feasible
    seconds: dict = field(default_factory=dict)

    @property
    def infeasible_reason(self) -> str:
        return "; ".join(text for text, _ in self.violations)

    def constraint_values(self, objective: Objective) -> dict[str, float]:
        """Optuna's constraint convention: one value per budget, <= 0 when met."""
        values = {}
        if objective.max_latency_ms is not None:
            median = self.median_ms if self.median_ms is not None else float("inf")
            values["latency_ms"] = median - objective.max_latency_ms
        if objective.max_size_mb is not None:
            size_mb = self.size_bytes / 1e6 if self.size_bytes is not None else float("inf")
            values["size_mb"] = size_mb - objective.max_size_mb
        return values

    def to_attrs(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("value", "violations")} | {
            "infeasible_reason": self.infeasible_reason}


def score_run(run_dir, history: dict, objective: Objective, source, log=print) -> Score:
    """Score a finished trial run: convert and evaluate its .tflite on the val split when the objective is a
    recipe, and measure it against the budget, through the stages every run uses (tflkit.pipeline.stages)."""
    keras_top1 = max(history.get("val_top1") or [0.0])
    if objective.target == KERAS:
        return Score(value=keras_top1, keras_val_top1=keras_top1)
    run = Run(run_dir)
    seconds = {}
    start = time.perf_counter()
    # Validation against the float model is a report for a person, not the score: a few images, no per-tensor pass
    # (which would convert a scratch fp32 reference for every trial).
    [result] = stages.convert(run, [objective.target], source, log=log, validate_samples=TRIAL_VALIDATE_SAMPLES,
                              tensor_samples=0)
    seconds["convert_s"] = time.perf_counter() - start
    if result.status != "ok":
        raise TrialFailed(f"{objective.target} conversion failed: {result.message}")
    start = time.perf_counter()
    [evaluation] = stages.evaluate(run, [result.path], source, split="val")
    top1 = evaluation.top1
    seconds["eval_s"] = time.perf_counter() - start
    score = Score(value=top1, keras_val_top1=keras_top1, tflite_val_top1=top1, size_bytes=result.size_bytes,
                  seconds=seconds)
    if objective.max_latency_ms is not None:
        score.median_ms = _host_median_ms(run, result.path, objective, log)
        if score.median_ms > objective.max_latency_ms:
            score.violations.append((f"latency {score.median_ms:.3f} ms > {objective.max_latency_ms:g} ms",
                                     score.median_ms - objective.max_latency_ms))
    if objective.max_size_mb is not None and result.size_bytes / 1e6 > objective.max_size_mb:
        score.violations.append((f"size {result.size_bytes / 1e6:.3f} MB > {objective.max_size_mb:g} MB",
                                 result.size_bytes / 1e6 - objective.max_size_mb))
    return score


def _host_median_ms(run: Run, tflite_path, objective: Objective, log) -> float:
    """One thread, in a fresh process (after training, TensorFlow's idle pools slow LiteRT in this one)."""
    results = stages.bench_host(run, [tflite_path], threads=(1,), log=log,
                                settings=BenchSettings(runs=objective.bench_runs, warmup=5))
    for r in results:
        if r.ok and r.median_ms is not None:
            return float(r.median_ms)
    raise TrialFailed(f"host benchmark of {Path(tflite_path).name} gave no latency")


class TrialFailed(Exception):
    """A trial that could not be scored (conversion failed, ...): recorded as a FAIL with this reason."""
