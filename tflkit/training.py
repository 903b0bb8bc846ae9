"""Training: build a registered model, fit it on a dataset source, checkpoint every epoch, resume after a kill.

A run directory holds everything a later step needs:
  config.yaml        the resolved TrainConfig
  model.keras        the final model (the best validation epoch)
  checkpoints/       last.keras (with optimizer state, for --resume) and best.keras
  history.json       per-epoch metrics; state.json, the last finished epoch
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from tflkit.config import from_dict, save_yaml
from tflkit.errors import UsageError, unknown_choice
from tflkit.fileio import atomic_path, atomic_write_text

OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    model: str
    dataset: str = "shapes"
    data_dir: str | None = None
    image_size: int | None = None  # None: the dataset's native size
    small_input: bool | None = None  # None: on for inputs of 64x64 and below (the CIFAR adaptation)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    bn_momentum: float | None = None  # None: the architecture's reference value; 0.9 suits short runs
    seed: int = 0

    def check(self) -> "TrainConfig":
        if self.optimizer not in OPTIMIZERS:
            raise unknown_choice("optimizer", self.optimizer, OPTIMIZERS)
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise UsageError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.lr <= 0:
            raise UsageError(f"lr must be positive, got {self.lr}")
        if self.bn_momentum is not None and not 0.0 <= self.bn_momentum < 1.0:
            raise UsageError(f"bn_momentum must be in [0, 1), got {self.bn_momentum}")
        if self.image_size is not None and self.image_size < 32:
            raise UsageError(f"image_size must be at least 32, got {self.image_size}")
        return self


@dataclass
class RunFiles:
    root: Path

    @property
    def config(self):
        return self.root / "config.yaml"

    @property
    def model(self):
        return self.root / "model.keras"

    @property
    def last(self):
        return self.root / "checkpoints" / "last.keras"

    @property
    def best(self):
        return self.root / "checkpoints" / "best.keras"

    @property
    def history(self):
        return self.root / "history.json"

    @property
    def state(self):
        return self.root / "state.json"


def load_run_config(run_dir) -> TrainConfig:
    import yaml

    files = RunFiles(Path(run_dir))
    if not files.config.is_file():
        raise UsageError(f"{run_dir} is not a tflkit run directory (no config.yaml)")
    return from_dict(TrainConfig, yaml.safe_load(files.config.read_text()), source=str(files.config))


def _resolve(config: TrainConfig, source) -> TrainConfig:
    image_size = config.image_size or source.image_size
    small_input = config.small_input if config.small_input is not None else image_size <= 64
    return replace(config, image_size=image_size, small_input=small_input)


def _optimizer(config: TrainConfig, keras):
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay or None)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(config.lr, weight_decay=config.weight_decay or 0.004)
    return keras.optimizers.Adam(config.lr, weight_decay=config.weight_decay or None)


def set_bn_momentum(model, momentum: float | None) -> None:
    """A training choice, not architecture: reference values (0.99 for torchvision's 0.01) lag for hundreds of
    steps, so a short run's validation sits at chance while its moving statistics catch up."""
    if momentum is None:
        return
    for layer in model.layers:
        if hasattr(layer, "moving_mean"):
            layer.momentum = momentum


def compile_for_training(model, config: TrainConfig, num_classes: int, keras):
    metrics = [keras.metrics.SparseCategoricalAccuracy(name="top1")]
    if num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"))
    model.compile(
        optimizer=_optimizer(config, keras),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=metrics,
    )


def train(config: TrainConfig, run_dir, resume: bool = False, verbose: int = 1, source=None) -> dict:
    """Train and return the history (a dict of metric name -> per-epoch values)."""
    from tflkit.tfenv import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from tflkit.data import load_dataset
    from tflkit.data.pipeline import make_dataset
    from tflkit.models import create_model

    config.check()
    files = RunFiles(Path(run_dir))
    if resume:
        if not files.config.is_file():
            raise UsageError(f"nothing to resume in {run_dir} (no config.yaml)")
        config = load_run_config(run_dir)
    source = source or load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed)
    config = _resolve(config, source)

    history, initial_epoch, best = {}, 0, -1.0
    keras.utils.set_random_seed(config.seed)
    if resume and files.last.is_file():
        state = json.loads(files.state.read_text())
        initial_epoch, best = state["epochs_done"], state["best_val_top1"]
        history = json.loads(files.history.read_text())
        model = keras.models.load_model(files.last)
    else:
        if files.model.exists() and not resume:
            raise UsageError(f"{run_dir} already holds a trained model; pass --resume or choose another --out")
        model = create_model(config.model, num_classes=source.num_classes, input_size=config.image_size,
                             small_input=config.small_input)
        set_bn_momentum(model, config.bn_momentum)
        compile_for_training(model, config, source.num_classes, keras)
    files.root.mkdir(parents=True, exist_ok=True)
    save_yaml(config, files.config)

    train_split = source.split("train")
    steps = max(1, len(train_split) // config.batch_size)
    train_ds = make_dataset(train_split, config.image_size, config.batch_size, shuffle=True, seed=config.seed,
                            epochs=config.epochs, initial_epoch=initial_epoch, drop_remainder=True)
    val_ds = None
    if "val" in source.splits:
        val_ds = make_dataset(source.split("val"), config.image_size, config.batch_size)

    checkpoint = _Checkpoint(files, history, best)
    if initial_epoch < config.epochs:
        model.fit(train_ds, epochs=config.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                  validation_data=val_ds, callbacks=[checkpoint], verbose=verbose)
    final = files.best if files.best.is_file() else files.last
    with atomic_path(files.model) as tmp:
        shutil.copyfile(final, tmp)
    from tflkit.models import count_params
    from tflkit.runrecords import record_model_info

    record_model_info(files.root, {"params": count_params(model), "input_size": config.image_size,
                                   "num_classes": source.num_classes, "class_names": list(source.class_names),
                                   "dataset_label": source.label})
    return checkpoint.history


class _Checkpoint:
    """Keras callback (duck-typed to stay importable without keras) writing last/best models and the history."""

    def __new__(cls, *args, **kwargs):
        import keras

        class Checkpoint(keras.callbacks.Callback):
            def __init__(self, files: RunFiles, history: dict, best: float):
                super().__init__()
                self.files, self.history, self.best = files, history, best

            def on_epoch_end(self, epoch, logs=None):
                for key, value in (logs or {}).items():
                    self.history.setdefault(key, []).append(float(value))
                score = (logs or {}).get("val_top1", (logs or {}).get("top1", 0.0))
                with atomic_path(self.files.last) as tmp:
                    self.model.save(tmp)
                if score > self.best:
                    self.best = float(score)
                    with atomic_path(self.files.best) as tmp:
                        self.model.save(tmp)
                atomic_write_text(self.files.history, json.dumps(self.history, indent=1) + "\n")
                # state.json last: a kill before this line replays the epoch rather than skipping it
                atomic_write_text(self.files.state, json.dumps({"epochs_done": epoch + 1, "best_val_top1": self.best}))

        return Checkpoint(*args, **kwargs)
