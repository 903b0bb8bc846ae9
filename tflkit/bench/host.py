"""Time a .tflite on this machine with the TFLite runtime, the way benchmark_model does.

Per model and thread count: interpreter init time, the first inference, then warm-up runs, then timed runs until
both a minimum count and a minimum time are reached. Reports median, p5, p95, mean, std, min, max, count, the
peak resident memory of the process across the run, and what XNNPACK took (partitions, delegated and total nodes,
op types left on the built-in kernels). Per file, once: MACs, the planned activation arena (tflkit.tflite.arena)
and the resident memory the model adds in a fresh runtime-only process (tflkit.bench.memprobe).

Inputs are random (the default, like benchmark_model; no TensorFlow import) or images of a dataset's test split
(`InputImages`), preprocessed exactly as `tflkit eval` feeds them and cycled through, one per invoke: resized by the
same pipeline, normalized as the model expects (`--input-range` / `--mean` / `--std`, else the model card, TFLite
metadata or input quantization, else assumed and said once: `tflkit.data.preprocess.for_model`, eval's own code
path), then quantized with the input tensor's scale and zero point. As in benchmark_model, setting the next input
happens between timed invokes, never inside one.
"""

from __future__ import annotations

import platform
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tflkit.bench.memprobe import rss_delta_mb
from tflkit.core import isolate
from tflkit.core.errors import DatasetError, TflkitError, UsageError, unknown_choice
from tflkit.core.machine import cpu_name
from tflkit.core.results import BenchResult
from tflkit.data import SOURCES, load_dataset, parse_spec
from tflkit.data.preprocess import for_model
from tflkit.tflite.arena import arena_bytes
from tflkit.tflite.macs import count_macs
from tflkit.tflite.model import quantize
from tflkit.tflite.runtime import (
    XnnpackRefusedError,
    check_tflite_file,
    delegation_of,
    load_interpreter,
    preflight,
    random_inputs,
    resolve_runtime,
)

RANDOM_INPUTS = "random"  # BenchResult.inputs of random inputs; otherwise the dataset spec
DEFAULT_INPUT_IMAGES = 256  # distinct test images a dataset-fed benchmark cycles through


@dataclass(frozen=True)
class BenchSettings:
    threads: int = 1
    runs: int = 50  # minimum timed runs
    warmup: int = 5
    min_seconds: float = 0.0  # keep running until this much time has passed as well
    max_seconds: float = 60.0  # stop early (with fewer runs) past this
    xnnpack: bool = True
    runtime: str | None = None
    seed: int = 0


@dataclass
class InputImages:
    """The first `count` images of a dataset's test split, as each model's input tensor takes them.

    Per input size the images are resized and kept as float32 0..255 pixels by the same pipeline `tflkit eval` uses
    (`tflkit.data.pipeline.load_images`); per model they are normalized by the preprocessing eval would use for it
    (`preprocessing`, the flags, or else what `tflkit.data.preprocess.for_model` finds), and per input tensor
    quantized with its own scale and zero point (`tflkit.tflite.model.quantize`): exactly what evaluation feeds the
    interpreter.
    """

    source: object  # a tflkit.data.DatasetSource
    spec: str  # what BenchResult.inputs records, e.g. "shapes", "cifar100:coarse", "folder:/data/flowers"
    count: int = DEFAULT_INPUT_IMAGES
    split: str = "test"
    preprocessing: object = None  # a tflkit.data.preprocess.Preprocessing from the flags; None: the model's own
    log: Callable[[str], None] | None = None  # where notes go (an assumed preprocessing), once per model
    _pixels: dict = field(default_factory=dict, init=False, repr=False)  # size -> float32 (N, S, S, 3), last only
    _preps: dict = field(default_factory=dict, init=False, repr=False)  # model path -> its Preprocessing

    def __post_init__(self):
        if self.count < 1:
            raise UsageError(f"--input-images must be 1 or more, got {self.count}")
        if len(self.source.split(self.split)) == 0:
            raise DatasetError(f"dataset {self.spec!r} has no images in its {self.split} split")

    def pixels(self, image_size: int) -> np.ndarray:
        if image_size not in self._pixels:
            from tflkit.data.pipeline import load_images  # TensorFlow: only a dataset-fed bench decodes images

            data = self.source.split(self.split)
            self._pixels = {image_size: load_images(data, image_size, indices=np.arange(min(self.count, len(data))))}
        return self._pixels[image_size]

    def preprocessing_for(self, path):
        """The Preprocessing `tflkit eval` would use for the model at `path` (resolved, and any note said, once)."""
        key = str(Path(path).resolve())
        if key not in self._preps:
            self._preps[key] = for_model(path, self.preprocessing, log=self.log or (lambda *_: None))
        return self._preps[key]

    def batches(self, detail: dict, preprocessing=None) -> list[np.ndarray]:
        """One array per invoke for this input tensor (batches of its fixed batch size, wrapping around), normalized
        by `preprocessing` (a Preprocessing; None: raw 0..255 pixels) and quantized as the tensor takes them."""
        shape = [int(d) for d in detail["shape"]]
        if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
            raise UsageError(f"input {detail['name']!r} of shape {shape} is not a square RGB image batch "
                             f"(N, S, S, 3); use random inputs")

        images = self.pixels(shape[1])
        if preprocessing is not None:
            images = preprocessing.apply(images)
        batch, n = shape[0], len(images)
        return [quantize(images[np.arange(i * batch, (i + 1) * batch) % n], detail)
                for i in range(max(1, n // batch))]


def open_input_data(spec: str | None, data_dir=None, seed: int = 0, count: int | None = None,
                    split: str = "test", preprocessing=None, log=None) -> InputImages | None:
    """None for random inputs; else the dataset named by `spec` (any `--dataset` spec), loaded once.

    `count` (default DEFAULT_INPUT_IMAGES) caps how many test images are preprocessed and cycled through.
    `preprocessing`: what `tflkit.data.preprocess.from_flags` made of --input-range / --mean / --std (None: each
    model's own, as eval finds it); `log` gets the notes eval would print (an assumed preprocessing), once a model.
    """
    if spec in (None, "", RANDOM_INPUTS):
        for flag, value in (("--data-dir", data_dir), ("--input-images", count),
                            ("--input-range / --mean / --std", preprocessing)):
            if value is not None:
                raise UsageError(f"{flag} is only read with --input-data DATASET (the inputs are random)")
        return None
    count = DEFAULT_INPUT_IMAGES if count is None else count

    name, _ = parse_spec(spec)
    if name not in SOURCES and name != "auto":
        raise unknown_choice("input data", spec, [RANDOM_INPUTS, *SOURCES, "auto"])
    if count < 1:
        raise UsageError(f"--input-images must be 1 or more, got {count}")
    source = load_dataset(spec, data_dir=data_dir, seed=seed)
    # name: "auto" resolved, folder absolute
    return InputImages(source, spec=source.name, count=count, split=split, preprocessing=preprocessing, log=log)


def summarize_ms(times_ms: list[float]) -> dict:
    a = np.asarray(times_ms)
    return {
        "median_ms": float(np.median(a)), "p5_ms": float(np.percentile(a, 5)), "p95_ms": float(np.percentile(a, 95)),
        "mean_ms": float(a.mean()), "std_ms": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
        "min_ms": float(a.min()), "max_ms": float(a.max()), "count": int(len(a)),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory. On Linux from VmHWM (the peak of the current address space): ru_maxrss
    survives exec, so a benchmark process started by one that had loaded TensorFlow reported TensorFlow's 1.8 GB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    # ru_maxrss is kilobytes on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def time_invokes(interpreter, settings: BenchSettings, feed: Callable[[], None] | None = None) -> list[float]:
    """The timed loop: warm-up, then runs until min count and min time are both met (or max_seconds passes).

    `feed`, when given, sets the next inputs before every invoke (warm-up and timed), outside the timed span.
    """
    for _ in range(settings.warmup):
        if feed is not None:
            feed()
        interpreter.invoke()
    times = []
    clock = time.perf_counter
    start = clock()
    while True:
        if feed is not None:
            feed()
        t0 = clock()
        interpreter.invoke()
        times.append((clock() - t0) * 1e3)
        elapsed = clock() - start
        if (len(times) >= settings.runs and elapsed >= settings.min_seconds) or elapsed > settings.max_seconds:
            return times


def _feeder(interpreter, images: InputImages, preprocessing=None) -> Callable[[], None]:
    """A callable that sets the next dataset batch on every input tensor, cycling through them."""
    inputs = [(detail["index"], images.batches(detail, preprocessing)) for detail in interpreter.get_input_details()]
    state = {"i": 0}

    def feed():
        i = state["i"]
        for index, arrays in inputs:
            interpreter.set_tensor(index, arrays[i % len(arrays)])
        state["i"] = i + 1

    return feed


def bench_model(path, settings: BenchSettings = BenchSettings(), images: InputImages | None = None) -> BenchResult:
    """One model at settings.threads, on random inputs or, with `images`, on a dataset's test images."""
    path = check_tflite_file(path)
    runtime = resolve_runtime(settings.runtime)
    result = BenchResult(model=path.name, target="host", runtime=runtime, device=cpu_name(),
                         threads=settings.threads, delegate="xnnpack" if settings.xnnpack else "cpu",
                         size_bytes=path.stat().st_size, inputs=images.spec if images else RANDOM_INPUTS)
    preflight(path, xnnpack=settings.xnnpack, runtime=runtime)  # the child-process check: not part of init_ms
    t0 = time.perf_counter()
    interpreter = load_interpreter(path, threads=settings.threads, xnnpack=settings.xnnpack, runtime=runtime)
    result.init_ms = (time.perf_counter() - t0) * 1e3
    delegation = delegation_of(interpreter)
    result.partitions, result.delegated_nodes = delegation.partitions, delegation.delegated_nodes
    result.total_nodes, result.reference_ops = delegation.total_nodes, delegation.reference_ops
    feed = None
    if images is None:
        for detail, array in zip(interpreter.get_input_details(), random_inputs(interpreter, settings.seed)):
            interpreter.set_tensor(detail["index"], array)
    else:
        try:
            feed = _feeder(interpreter, images, images.preprocessing_for(path))
        except UsageError as exc:  # this model cannot take these images; the other models go on
            result.status, result.message = "inputs_mismatch", str(exc)
            return result
        result.input_images = min(images.count, len(images.source.split(images.split)))
        feed()
    t0 = time.perf_counter()
    try:
        interpreter.invoke()
    except RuntimeError as exc:
        result.status, result.message = "invoke_failed", str(exc).strip().splitlines()[0]
        return result
    result.first_ms = (time.perf_counter() - t0) * 1e3
    for key, value in summarize_ms(time_invokes(interpreter, settings, feed)).items():
        setattr(result, key, value)
    result.peak_memory_mb = peak_rss_mb()
    return result


def _model_figures(path, settings: BenchSettings, with_macs: bool, with_memory: bool) -> dict:
    """Per-file figures that do not depend on the thread count: MACs, planned arena, resident memory added."""
    figures = {}
    if with_macs:
        try:
            figures["macs"] = count_macs(path).macs
        except TflkitError:
            pass

    try:
        figures["arena_bytes"] = arena_bytes(path)
    except TflkitError:
        pass
    if with_memory:
        xnnpack = _probe_delegate(path, settings)
        if xnnpack is not None:
            figures["rss_delta_mb"] = rss_delta_mb(path, xnnpack=xnnpack, runtime=settings.runtime)
    return figures


def _probe_delegate(path, settings: BenchSettings) -> bool | None:
    """Whether the memory probe loads `path` with XNNPACK, from the child-process check (remembered, so the
    benchmark's own check is free); None when neither loads. The probe's process has no other guard: a mutant
    whose static shape claimed 4.5 GB, refused by the check, took 17 GB of resident memory in it."""
    runtime = resolve_runtime(settings.runtime)  # as bench_model names it: the same remembered check
    try:
        preflight(path, xnnpack=settings.xnnpack, runtime=runtime)
        return settings.xnnpack
    except XnnpackRefusedError:
        try:
            preflight(path, xnnpack=False, runtime=runtime)
        except TflkitError:
            return None
        return False  # what the built-in kernels' row measures
    except TflkitError:
        return None


def bench_models(paths, threads=(1,), settings: BenchSettings = BenchSettings(), with_macs: bool = True,
                 log=None, images: InputImages | None = None, with_memory: bool = True) -> list[BenchResult]:
    """Every model at every thread count; a model that fails is a row with its status, the rest go on.

    Inputs are random unless `images` (see `open_input_data`) is given. A model XNNPACK refuses is a row with
    status `xnnpack_failed` and XNNPACK's reason, followed by the built-in kernels' figures (delegate `cpu`).
    `with_memory`: `rss_delta_mb` measured once per file in a fresh runtime-only process (tflkit.bench.memprobe).
    """
    from dataclasses import replace

    results = []
    for path in paths:
        figures = _model_figures(path, settings, with_macs, with_memory) if Path(path).is_file() else {}
        for n in threads:
            rows = []
            try:
                rows.append(bench_model(path, replace(settings, threads=n), images=images))
            except XnnpackRefusedError as exc:
                rows.append(_failed_row(path, n, settings, images, "xnnpack_failed", str(exc), "xnnpack"))
                try:
                    rows.append(bench_model(path, replace(settings, threads=n, xnnpack=False), images=images))
                except TflkitError as builtin_exc:
                    rows.append(_failed_row(path, n, settings, images, "load_failed", str(builtin_exc), "cpu"))
            except TflkitError as exc:
                rows.append(_failed_row(path, n, settings, images, "load_failed", str(exc),
                                        "xnnpack" if settings.xnnpack else "cpu"))
            fed = next((r for r in rows if r.ok), None)
            if log and images is not None and n == threads[0] and fed is not None:  # once a model: what it was fed
                log(f"inputs   {fed.model}  {fed.input_images} {images.spec} {images.split} images, "
                    f"{images.preprocessing_for(path).describe()}")
            for result in rows:
                for key, value in figures.items():
                    setattr(result, key, value)
                results.append(result)
                if log:
                    log(format_result_line(result))
                    if (warning := delegation_warning(result)) and result.threads == threads[0]:
                        log(warning)
    return results


def bench_files(paths, threads=(1,), settings: BenchSettings = BenchSettings(), input_data: str | None = None,
                data_dir=None) -> list[BenchResult]:
    """bench_models with random inputs or the test images of the dataset `input_data`, its lines sent to the caller as
    they come: what a fresh benchmark process runs (tflkit.pipeline.stages.bench_host, through tflkit.core.isolate)."""
    images = open_input_data(input_data, data_dir=data_dir, log=isolate.send)
    return bench_models(paths, threads=threads, settings=settings, images=images, log=isolate.send)


def _failed_row(path, threads, settings, images, status, message, delegate) -> BenchResult:
    return BenchResult(model=Path(path).name, target="host", runtime=settings.runtime or "", threads=threads,
                       delegate=delegate, status=status, message=message,
                       inputs=images.spec if images else RANDOM_INPUTS)


def format_result_line(r: BenchResult) -> str:
    if not r.ok:
        return f"bench    {r.model}  threads={r.threads}  {r.status}: {r.message}"
    inputs = "" if r.inputs == RANDOM_INPUTS else f", {r.input_images} {r.inputs} images"
    return (f"bench    {r.model}  threads={r.threads}  median {r.median_ms:.3f} ms  p95 {r.p95_ms:.3f} ms  "
            f"(n={r.count}, init {r.init_ms:.1f} ms, first {r.first_ms:.2f} ms{inputs})  "
            f"{format_delegation(r)}{format_memory(r)}")


def format_delegation(r: BenchResult) -> str:
    """benchmark_model's wording: 'xnnpack 151/151 nodes, 1 partition', and what stayed on the built-in kernels."""
    if r.total_nodes is None:
        return ""
    if r.delegate != "xnnpack":
        return f"built-in kernels, {r.total_nodes} nodes"
    text = (f"xnnpack {r.delegated_nodes}/{r.total_nodes} nodes, {r.partitions} "
            f"partition{'s' if r.partitions != 1 else ''}")
    if r.reference_ops:
        text += " (left: " + ", ".join(f"{op} {n}" for op, n in sorted(r.reference_ops.items())) + ")"
    return text


def delegation_warning(r: BenchResult) -> str | None:
    """A slow path said out loud: most of the graph left on LiteRT's reference kernels (e.g. int16 activations:
    0 of 145 nodes on XNNPACK, 12.97 ms against the float file's 0.57 ms)."""
    if r.delegate != "xnnpack" or not r.total_nodes or r.delegated_nodes is None:
        return None
    if r.delegated_nodes >= r.total_nodes / 2:
        return None
    return (f"warning: {r.model}: XNNPACK runs only {r.delegated_nodes} of {r.total_nodes} nodes; the rest run on "
            f"LiteRT's reference kernels, typically many times slower (a phone's or board's runtime may differ)")


def format_memory(r: BenchResult) -> str:
    parts = []
    if r.arena_bytes is not None:
        parts.append(f"arena {r.arena_bytes / 1024:.0f} KiB")
    if r.rss_delta_mb is not None:
        parts.append(f"rss +{r.rss_delta_mb:.1f} MB")
    return ("  " + ", ".join(parts)) if parts else ""
