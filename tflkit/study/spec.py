"""The study file: which models, datasets, training regimes and recipes to measure, and how.

A study is a grid of cells (model x dataset x regime); every cell is trained once, converted under every recipe,
and each .tflite is evaluated and benchmarked. Everything is checked when the file loads (names, types, data
directories, every cell's training config), so a typo is one line before any training starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from converters.recipes import RECIPES
from tflkit.core.config import from_dict, read_yaml, to_plain
from tflkit.core.errors import UsageError
from tflkit.core.trainconfig import TrainConfig
from tflkit.data import SOURCES, parse_spec
from tflkit.mcu.boards import resolve_boards
from tflkit.mcu.vela import VelaTarget
from tflkit.models import get_spec, train_config

# TrainConfig keys a study sets per cell itself (from the cell's model, dataset and regime)
CELL_KEYS = ("model", "dataset", "data_dir", "pretrained")


@dataclass(frozen=True)
class DatasetEntry:
    spec: str  # a --dataset spec: shapes, cifar10, cifar100[:coarse], tiny_imagenet, folder:PATH
    data_dir: str | None = None  # where its files are (relative paths are relative to the study file)
    name: str | None = None  # short name in cell ids and reports (default: the spec, made id-safe)

    @property
    def key(self) -> str:
        return self.name or re.sub(r"[^A-Za-z0-9_-]+", "-", self.spec).strip("-")


@dataclass(frozen=True)
class Regime:
    """How a cell's model starts: `none` (from scratch), `imagenet`, or a weights file; optionally per model."""

    pretrained: str = "none"
    weights: dict[str, str] = field(default_factory=dict)  # model -> weights file, overriding `pretrained`
    models: tuple[str, ...] | None = None  # the models this regime applies to (default: all)
    training: dict = field(default_factory=dict)  # TrainConfig overrides for this regime (e.g. finetune_epochs)

    def pretrained_for(self, model: str) -> str:
        return self.weights.get(model, self.pretrained)

    def applies_to(self, model: str) -> bool:
        return self.models is None or model in self.models


@dataclass(frozen=True)
class HostBench:
    threads: tuple[int, ...] = (1,)
    runs: int = 50
    warmup: int = 5
    min_seconds: float = 0.0
    input_data: bool = False  # feed the dataset's test images instead of random inputs


@dataclass(frozen=True)
class Phone:
    serial: str
    delegates: tuple[str, ...] = ("cpu",)
    threads: tuple[int, ...] = (1, 4)
    runs: int = 50


@dataclass(frozen=True)
class Mcu:
    """Microcontroller figures for every int8/float file (tflkit.mcu): TFLite Micro's arena and top-1, Vela per
    Ethos-U target, and the fit on each board. Needs the `mcu` extra."""

    boards: tuple[str, ...] = ()  # built-in board names, or names from boards_file
    ethos_u: tuple[str, ...] = ()  # Vela targets ACCELERATOR[:SYSTEM_CONFIG[:MEMORY_MODE]]
    boards_file: str | None = None  # a user's boards (relative to the study file)
    eval_limit: int | None = 1000  # top-1 under TFLM on a stratified subset (its reference kernels are slow)
    sram_reserve_kb: float = 32.0
    flash_reserve_kb: float = 128.0


@dataclass(frozen=True)
class Resources:
    """What one cell asks of an executor: Ray's num_cpus/num_gpus per task; the local thread budget."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass(frozen=True)
class StudySpec:
    name: str
    models: tuple[str, ...]
    datasets: tuple[DatasetEntry, ...]
    recipes: tuple[str, ...] = ("fp32", "fp16", "dynamic_wi8_afp32", "static_wi8_ai8")
    regimes: dict[str, Regime] = field(default_factory=lambda: {"scratch": Regime()})
    training: dict = field(default_factory=dict)  # TrainConfig keys shared by every cell
    overrides: dict[str, dict] = field(default_factory=dict)  # model -> TrainConfig keys for that model
    calib_samples: int | None = None
    finetune_steps: int | None = None  # QAT / pruning fine-tune length (None: the converter's default)
    eval_limit: int | None = None  # evaluate on a stratified subset of N test images (None: the whole split)
    host_bench: HostBench = HostBench()
    phones: tuple[Phone, ...] = ()
    mcu: Mcu | None = None
    resources: Resources = Resources()
    seed: int = 0
    # Several seeds: every cell trains once per seed (ids end in .s<seed>); rows, claims, pick and plots use the
    # mean top-1 and its spread (tflkit.study.rows.merge_seeds). Empty: one cell per grid point, at `seed`.
    seeds: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        return to_plain(self)


@dataclass(frozen=True)
class Cell:
    """One trained model of the study: a model on a dataset under a regime, with its resolved TrainConfig."""

    id: str
    model: str
    dataset: str  # the dataset entry's key
    regime: str
    config: dict  # the TrainConfig as a dict (JSON-able), everything resolved but the image size

    def fingerprint(self) -> str:
        return config_fingerprint(self.config)


def cell_dir(out_dir, cell_id: str) -> Path:
    """Where a cell's run lives inside the study directory."""
    return Path(out_dir) / "cells" / cell_id


# Settings of the fine-tuning phase: they shape a cell only when it starts from pretrained weights and fine-tunes.
_FINETUNE_KEYS = ("finetune_epochs", "finetune_lr", "finetune_bn")


def _train_defaults() -> dict:
    return {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}


def config_fingerprint(config: dict) -> str:
    """A hash of the settings that shape the cell's training. Settings with no effect on it (fine-tuning ones
    without pretrained weights or fine-tuning epochs) are left out, so that a TrainConfig setting added later does
    not make every earlier scratch cell look changed."""
    effective = dict(config)
    if effective.get("pretrained") in (None, "", "none"):
        inert = _FINETUNE_KEYS
    elif not effective.get("finetune_epochs"):
        inert = ("finetune_lr", "finetune_bn")
    else:
        inert = ()
    for key in inert:
        effective.pop(key, None)
    # A setting at its default counts as absent: a TrainConfig field added later (with the behaviour that was
    # there before as its default) leaves every recorded cell's fingerprint as it was.
    defaults = _train_defaults()
    effective = {k: v for k, v in effective.items() if k not in defaults or v != defaults[k]}
    return hashlib.sha256(json.dumps(effective, sort_keys=True).encode()).hexdigest()[:16]


def load_study(path) -> StudySpec:
    path = Path(path)
    data = read_yaml(path, what="study file", expected="a study: name, models, datasets, ...")
    spec = from_dict(StudySpec, data, source=str(path))
    spec = _resolve_paths(spec, path.parent)
    check_study(spec, where=str(path))
    return spec


def _resolve_paths(spec: StudySpec, base: Path) -> StudySpec:
    """Data directories and weights files relative to the study file, as a reader of the file expects."""

    def resolve(value):
        if value is None or value in ("none", "imagenet"):
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (base / path).resolve())

    datasets = tuple(dataclasses.replace(d, data_dir=resolve(d.data_dir)) for d in spec.datasets)
    regimes = {}
    for name, regime in spec.regimes.items():
        regimes[name] = dataclasses.replace(
            regime, pretrained=resolve(regime.pretrained), weights={m: resolve(w) for m, w in regime.weights.items()})
    mcu = spec.mcu and dataclasses.replace(spec.mcu, boards_file=resolve(spec.mcu.boards_file))
    return dataclasses.replace(spec, datasets=datasets, regimes=regimes, mcu=mcu)


def check_study(spec: StudySpec, where: str = "study") -> None:
    """Everything that can be checked before training: names, data directories, weights files, cell configs."""
    if not spec.models:
        raise UsageError(f"{where}: models: the list is empty")
    if not spec.datasets:
        raise UsageError(f"{where}: datasets: the list is empty")
    if not spec.regimes:
        raise UsageError(f"{where}: regimes: the mapping is empty")
    for model in spec.models:
        try:
            get_spec(model)
        except UsageError as exc:
            raise UsageError(f"{where}: models: {exc}") from None
    for recipe in spec.recipes:
        if recipe not in RECIPES:
            raise UsageError(f"{where}: recipes: unknown recipe {recipe!r}; choose from: {', '.join(RECIPES)}")
    keys = [d.key for d in spec.datasets]
    if len(set(keys)) != len(keys):
        raise UsageError(f"{where}: datasets: two entries share the name {keys[0]!r}; give each a `name`")
    for entry in spec.datasets:
        if entry.data_dir is not None and not Path(entry.data_dir).is_dir():
            raise UsageError(f"{where}: datasets: data_dir of {entry.spec!r} not found: {entry.data_dir}")
        _check_dataset_name(entry, where)
    for name, regime in spec.regimes.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise UsageError(f"{where}: regimes: name {name!r} must be letters, digits, '_' or '-'")
        for model in (regime.models or ()):
            if model not in spec.models:
                raise UsageError(f"{where}: regimes.{name}.models: {model!r} is not in the study's models")
        for model in regime.weights:
            if model not in spec.models:
                raise UsageError(f"{where}: regimes.{name}.weights: {model!r} is not in the study's models")
        for model in spec.models:
            source = regime.pretrained_for(model)
            if regime.applies_to(model) and source not in ("none", "imagenet") and not Path(source).exists():
                raise UsageError(f"{where}: regimes.{name}: weights for {model} not found: {source}")
    for model in spec.overrides:
        if model not in spec.models:
            raise UsageError(f"{where}: overrides: {model!r} is not in the study's models")
    if not spec.host_bench.threads or any(t < 1 for t in spec.host_bench.threads):
        raise UsageError(f"{where}: host_bench.threads: thread counts must be 1 or more")
    if spec.host_bench.runs < 1:
        raise UsageError(f"{where}: host_bench.runs must be at least 1")
    if spec.mcu is not None:
        _check_mcu(spec.mcu, where)
    cells = build_cells(spec, where)
    if not cells:
        raise UsageError(f"{where}: no cell: no regime applies to any model")


def mcu_boards(settings: Mcu) -> list:
    return resolve_boards(settings.boards, settings.boards_file)


def _check_mcu(settings: Mcu, where: str) -> None:
    try:
        mcu_boards(settings)
        for target in settings.ethos_u:
            VelaTarget.parse(target)
    except UsageError as exc:
        raise UsageError(f"{where}: mcu: {exc}") from None
    if settings.eval_limit is not None and settings.eval_limit < 1:
        raise UsageError(f"{where}: mcu.eval_limit must be 1 or more (or null: the whole test split)")


def _check_dataset_name(entry: DatasetEntry, where: str) -> None:
    name, _ = parse_spec(entry.spec)
    if name not in SOURCES:
        raise UsageError(f"{where}: datasets: unknown dataset {entry.spec!r}; choose from: {', '.join(SOURCES)}")


def build_cells(spec: StudySpec, where: str = "study") -> list[Cell]:
    """The grid, each cell with its TrainConfig checked: the architecture's training defaults < study training <
    regime < per-model overrides."""

    if len(set(spec.seeds)) != len(spec.seeds):
        raise UsageError(f"{where}: seeds: each seed once, got {list(spec.seeds)}")
    cells = []
    grid = ((m, e, name, r, seed) for m in spec.models for e in spec.datasets for name, r in spec.regimes.items()
            for seed in (spec.seeds or (None,)))
    for model, entry, regime_name, regime, seed in grid:
        if not regime.applies_to(model):
            continue
        keys = {"seed": spec.seed, **spec.training, **regime.training, **spec.overrides.get(model, {})}
        bad = sorted(set(keys) & set(CELL_KEYS))
        if bad:
            raise UsageError(f"{where}: training: {bad[0]!r} is set by the cell itself (models, datasets, "
                             "regimes), not in training/overrides")
        keys.update(model=model, dataset=entry.spec, data_dir=entry.data_dir, pretrained=regime.pretrained_for(model))
        if seed is not None:
            keys["seed"] = seed
        cell_id = f"{model}.{entry.key}.{regime_name}" + (f".s{seed}" if seed is not None else "")
        try:
            # under the architecture's training defaults; coerces YAML's 1e-3
            config = train_config(source=f"{where}: {cell_id}", **keys)
            config.check()
        except UsageError as exc:
            message = str(exc)
            raise UsageError(message if message.startswith(where) else f"{where}: {cell_id}: {message}") from None
        cells.append(Cell(cell_id, model, entry.key, regime_name, dataclasses.asdict(config)))
    return cells


MAX_STEPS_BATCH = 16


def with_max_steps(spec: StudySpec, steps: int) -> StudySpec:
    """The same study, every cell cut to `steps` optimizer steps of at most MAX_STEPS_BATCH images (one epoch; a
    fine-tune phase of as many), evaluated on as many test images, calibrated on few, benchmarked 3 runs at 1 thread:
    it proves a protocol runs end to end (every model, dataset, regime, recipe) in minutes; its numbers mean
    nothing and its report says so (meta max_steps)."""
    if steps < 1:
        raise UsageError(f"--max-steps must be at least 1, got {steps}")

    def cut(training: dict) -> dict:
        short = {k: v for k, v in training.items() if k not in ("epochs", "train_limit", "patience")}
        if "batch_size" in short:
            short["batch_size"] = min(int(short["batch_size"]), MAX_STEPS_BATCH)
        if training.get("finetune_epochs"):
            short["finetune_epochs"] = 1
        return short

    # A small batch: the check proves every stage runs, and the protocol's batch of 128 at 224 px takes 22 GB for
    # EfficientNetV2-S on a CPU (measured: the study worker's RSS), more than a 24 GB machine has beside a converter.
    batch = min(int(spec.training.get("batch_size", 128)), MAX_STEPS_BATCH)
    training = {**cut(spec.training), "epochs": 1, "train_limit": steps * batch, "batch_size": batch}
    regimes = {name: dataclasses.replace(r, training={**cut(r.training), **({"epochs": 1} if "epochs" in r.training
                                                                             else {})})
               for name, r in spec.regimes.items()}
    overrides = {model: cut(keys) for model, keys in spec.overrides.items()}
    return dataclasses.replace(spec, training=training, regimes=regimes, overrides=overrides,
                               eval_limit=steps * batch, calib_samples=min(spec.calib_samples or 16, 16),
                               finetune_steps=min(spec.finetune_steps or steps, steps),
                               host_bench=dataclasses.replace(spec.host_bench, threads=(1,), runs=3, warmup=1,
                                                              min_seconds=0.0))


def spec_digest(spec: StudySpec) -> str:
    return hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()


EXAMPLE = """\
# A tflkit study: every model x dataset x regime is a cell; each cell is trained, converted under every recipe,
# and every .tflite is evaluated on the whole test split and benchmarked. `tflkit study run THIS.yaml --out DIR`
# records each finished stage in DIR/study.db; run the same command again to resume.
name: my_study
models: [mobilenetv3_small_100, squeezenet1_1]   # see `tflkit models`
datasets:
  - spec: cifar10                  # shapes, cifar10, cifar100[:coarse], tiny_imagenet, folder:PATH
    data_dir: data                 # relative to this file; omit for the embedded `shapes`
regimes:
  scratch: {}                      # from random weights
  imagenet:                        # ImageNet weights: `imagenet` downloads (checksum-verified) where a network
    pretrained: imagenet           # exists; a file path per model works offline
    weights:
      squeezenet1_1: weights/squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5
    models: [squeezenet1_1]        # the models this regime applies to (default: all)
    training: {epochs: 1, finetune_epochs: 2}   # head-only epochs, then all layers
training:                          # any `tflkit train` setting (TrainConfig key), for every cell
  epochs: 3
  batch_size: 64
  lr: 3e-3
  lr_schedule: cosine
  augment: basic
  train_limit: 10000               # a stratified, seeded subset of the training split
overrides:                         # per model
  squeezenet1_1: {lr: 5e-4, warmup_epochs: 0.5}   # no BatchNorm: a gentler start, or it stays at chance
recipes: [fp32, fp16, dynamic_wi8_afp32, static_wi8_ai8]
host_bench: {threads: [1, 2], runs: 50, warmup: 5}
phones: []                         # e.g. [{serial: R5CT12345, delegates: [cpu, gpu], threads: [1, 4]}]
resources: {num_cpus: 1, num_gpus: 0}   # per cell, for --executor ray
seed: 0                            # or seeds: [0, 1, 2]: every cell once per seed, reported as mean and spread
"""
