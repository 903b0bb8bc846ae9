"""One result format for every latency measurement, host or phone.

Plain dataclass with no heavy imports: the Android side (which never imports TensorFlow) and the host harness both
produce it, and `tflkit report` puts their columns side by side. Times are milliseconds, memory megabytes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

STATUS_OK = "ok"


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
    from tflkit.core.fileio import atomic_write_text

    atomic_write_text(path, json.dumps([r.to_dict() for r in results], indent=2) + "\n")


def load_results(path: str | Path) -> list[BenchResult]:
    return [BenchResult.from_dict(d) for d in json.loads(Path(path).read_text())]
