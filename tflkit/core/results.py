"""What the stages return and a run records: typed results, with no heavy imports (the Android side, which never
imports TensorFlow, makes BenchResults too).

  ExportResult   one recipe's conversion: the .tflite, its size, validation against the float model
  EvalResult     top-1/top-5 of a model file on a dataset split
  BenchResult    one latency measurement, host or phone (times in milliseconds, memory in megabytes)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from tflkit.core.fileio import atomic_write_text

STATUS_OK = "ok"


@dataclass
class ExportResult:
    recipe: str
    status: str  # ok, qat_failed, prune50_failed, convert_failed, run_failed
    path: str | None = None
    size_bytes: int | None = None
    seconds: float | None = None
    message: str = ""
    gzip_bytes: int | None = None
    weight_sparsity: float | None = None  # zeros in CONV_2D/FULLY_CONNECTED weights, read from the .tflite
    macs: int | None = None  # read from the .tflite (tflkit.tflite.macs); None where it could not be read
    arena_bytes: int | None = None  # the activation arena TFLite's planner lays out for it (tflkit.tflite.arena)
    float_ops: str | None = None  # float ops left in an integer file, comma-separated ("" for none or a float file)
    validation: dict | None = None  # Validation.summary(); the full record is <artifact>.validation.json
    fine_tune: dict | None = None  # the extra training a QAT / pruning recipe had (steps, images, seconds)
    settings: dict | None = None  # what was asked for (calibration samples, fine-tune), to tell a rerun what is done

    @classmethod
    def from_record(cls, row: dict) -> ExportResult:
        return cls(**{k: row.get(k) for k in cls.__dataclass_fields__ if k in row})


@dataclass
class EvalResult:
    model: str
    dataset: str
    split: str
    count: int
    top1: float
    top5: float | None
    preprocessing: str = ""  # how pixels were fed, and where that came from (flags, model card, metadata, assumed)
    limit: int | None = None  # --limit: a stratified subset of the split
    # what top-1 means when the model has more outputs than the dataset classes (an ImageNet model on Tiny ImageNet)
    scoring: str = ""
    runtime: str = ""  # "" the host's LiteRT (or Keras for .keras); "tflm" TensorFlow Lite Micro's reference kernels
    # with `compare`: LiteRT's top-1 on the same images and the fraction whose top-1 class both runtimes agree on
    reference_top1: float | None = None
    agreement: float | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class BenchResult:
    model: str  # the .tflite file name (not the full path, so host and device rows join on it)
    target: str  # "host" or "android:<serial>"
    runtime: str  # "ai_edge_litert", "tflite_runtime", "tf.lite", "benchmark_model"
    device: str = ""  # CPU model / phone model, for the reader
    threads: int | None = 1  # None: a parsed log that does not state it
    delegate: str | None = "cpu"  # cpu, xnnpack, gpu, nnapi; None: a parsed log that does not show it
    inputs: str = "random"  # "random" (benchmark_model's default too), or the dataset spec whose test images were fed
    input_images: int | None = None  # how many distinct dataset images were cycled through
    status: str = STATUS_OK  # ok, or a short failure code such as delegate_failed, timeout, not_executable
    message: str = ""  # the one-line reason when status is not ok
    init_ms: float | None = None
    first_ms: float | None = None
    warmup_mean_ms: float | None = None
    median_ms: float | None = None
    p5_ms: float | None = None
    p95_ms: float | None = None
    mean_ms: float | None = None
    std_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    count: int | None = None
    peak_memory_mb: float | None = None
    init_memory_mb: float | None = None
    size_bytes: int | None = None
    macs: int | None = None
    delegated_ops: int | None = None  # nodes the delegate took, when the log says
    cpu_ops: int | None = None  # nodes left on the CPU
    # Host: what XNNPACK took (tflkit.tflite.runtime.delegation_of), as benchmark_model's "Replacing N out of M node(s)"
    partitions: int | None = None  # delegate partitions (one DELEGATE node each); 1 = the whole graph in one run
    delegated_nodes: int | None = None
    total_nodes: int | None = None
    reference_ops: dict | None = None  # op type -> nodes left on the built-in kernels
    arena_bytes: int | None = None  # activation arena planned from the .tflite's tensor lifetimes (tflite_arena.py)
    rss_delta_mb: float | None = None  # resident memory added by load + allocate + invoke, fresh runtime-only process
    op_profile: list[dict] = field(default_factory=list)  # per node type: {"node_type", "avg_ms", "percent", "count"}
    raw_log: str | None = None  # path of the saved tool output

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BenchResult:
        """Unknown keys are ignored and missing ones take their defaults, so older result files still load."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def save_results(results: list[BenchResult], path: str | Path) -> None:
    atomic_write_text(path, json.dumps([r.to_dict() for r in results], indent=2) + "\n")


def load_results(path: str | Path) -> list[BenchResult]:
    return [BenchResult.from_dict(d) for d in json.loads(Path(path).read_text())]
