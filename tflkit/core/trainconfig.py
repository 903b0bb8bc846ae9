"""TrainConfig: everything a training run depends on, the one config of a run.

`tflkit train`'s flags are generated from its fields (tflkit.core.config.add_flags), a YAML --config and the saved
config.yaml are read into it, a study's `training:` and a search's settings are this same dataclass's keys. The
architecture's own training defaults are laid under a user's settings by tflkit.models.train_config.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tflkit.core.config import changed_fields, flag_name
from tflkit.core.errors import UsageError, unknown_choice

OPTIMIZERS = ("adam", "adamw", "sgd")
STRATEGIES = ("default", "mirrored", "multi_worker")
SCHEDULES = ("constant", "step", "cosine")
AUGMENT_PRESETS = ("none", "basic", "randaugment", "mixup", "cutmix", "paper")
PRECISIONS = ("float32", "mixed_bfloat16")


def _setting(default, help_text: str, choices=None):
    """A TrainConfig field: its default, the help of its `tflkit train` flag and its valid values."""
    metadata = {"help": help_text, **({"choices": choices} if choices else {})}
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on: `tflkit train`'s flags, a YAML --config and the saved config.yaml."""

    model: str = field(metadata={"help": "registered architecture (see `tflkit models`)"})
    dataset: str = _setting("shapes", "shapes, cifar10, cifar100[:coarse], tiny_imagenet, folder:PATH or auto")
    data_dir: str | None = _setting(None, "where the dataset's files are (official downloads read directly)")
    image_size: int | None = _setting(None, "input size in pixels (default: the dataset's native size)")
    small_input: bool | None = _setting(None, "CIFAR-style stem without early downsampling "
                                              "(default: on for inputs of 64x64 and below)")
    epochs: int = _setting(10, "training epochs; with --pretrained, the head-only phase")
    batch_size: int = _setting(128, "global batch size (split across replicas)")
    lr: float = _setting(1e-3, "learning rate")
    optimizer: str = _setting("adam", "optimizer", OPTIMIZERS)
    weight_decay: float = _setting(0.0, "weight decay (0: none; adamw uses 0.004 when 0)")
    bn_momentum: float | None = _setting(None, "BatchNorm moving-average momentum (default: the architecture's "
                                               "reference value; 0.9 below 50 steps an epoch when "
                                               "--bn-stats-batches is 0)")
    bn_stats_batches: int = _setting(16, "recompute BatchNorm statistics from N training batches before each "
                                         "validation and saved model (tflkit.training.bn_stats; 0: the moving "
                                         "averages)")
    seed: int = _setting(0, "seed of the data order, augmentation and initialization")
    lr_schedule: str = _setting("constant", "learning-rate schedule", SCHEDULES)
    warmup_epochs: float = _setting(0.0, "linear lr warm-up, in epochs (fractions allowed)")
    step_epochs: int = _setting(30, "step schedule: multiply the lr by --step-gamma every N epochs")
    step_gamma: float = _setting(0.1, "step schedule: decay factor")
    label_smoothing: float = _setting(0.0, "label smoothing in [0, 1)")
    augment: str = _setting("none", "augmentation preset", AUGMENT_PRESETS)
    patience: int | None = _setting(None, "early stopping: stop after N epochs without a better val top-1")
    pretrained: str = _setting("none", "none, imagenet, a weights file (.h5/.weights.h5/.keras) or a tflkit run "
                                       "directory")
    finetune_epochs: int = _setting(0, "with --pretrained: epochs training all layers after the head phase")
    finetune_lr: float | None = _setting(None, "learning rate of the fine-tuning phase (default: lr / 10)")
    finetune_bn: str = _setting("frozen", "BatchNorm in the fine-tuning phase: frozen (inference mode, the "
                                          "pretrained statistics; Keras' transfer-learning advice) or train",
                                ("frozen", "train"))
    train_limit: int | None = _setting(None, "train on a stratified, seeded subset of N images")
    strategy: str = _setting("default", "tf.distribute strategy: mirrored uses all local devices, multi_worker "
                                        "reads TF_CONFIG", STRATEGIES)
    strict: bool = _setting(False, "image folders: stop at the first unreadable image (default: skip it, counted)")
    deterministic: bool = _setting(False, "bit-identical weights from run to run on one machine: TensorFlow op "
                                          "determinism and one inter-op thread (slower; see docs/training.md)")
    precision: str = _setting("float32", "compute precision: mixed_bfloat16 computes in bf16 with float32 weights "
                                         "(faster only on some CPUs and models: see benchmarks/train_throughput.py); "
                                         "the saved model.keras is float32 either way", PRECISIONS)
    jit_compile: bool = _setting(False, "XLA-compile the train step (Keras' own default on a CPU is off; see "
                                        "benchmarks/train_throughput.py for what it costs)")

    # What --resume may change: more epochs continue the run; anything else would silently mix two settings.
    RESUMABLE = ("epochs",)

    def resumed_with(self, requested: dict, run_dir, hint: str = "start a new run with another --out"
                     ) -> TrainConfig:
        """This saved run's config with the `requested` settings (None: not asked) applied for a resume: `epochs`
        is applied (more epochs continue the run), any other changed setting is refused with one line."""
        changed = changed_fields(self, requested)
        refused = [k for k in changed if k not in self.RESUMABLE]
        if refused:
            was, asked = changed[refused[0]]
            raise UsageError(f"{run_dir} holds a run with {flag_name(refused[0])} {was}, not {asked}; only "
                             f"{', '.join(map(flag_name, self.RESUMABLE))} can change when it resumes ({hint})")
        if "epochs" in changed and changed["epochs"][1] < self.epochs:
            raise UsageError(f"{run_dir} was set to {self.epochs} epochs; --epochs can only grow when it resumes, "
                             f"not to {changed['epochs'][1]} ({hint})")
        if "epochs" in changed and self.total_epochs != self.epochs:
            raise UsageError(f"{run_dir} has a fine-tuning phase after its {self.epochs} head epochs; --epochs "
                             f"cannot change when it resumes ({hint})")
        if "epochs" in changed and self.lr_schedule == "cosine":
            raise UsageError(f"{run_dir} uses a cosine schedule spread over {self.epochs} epochs; --epochs "
                             f"cannot change when it resumes ({hint})")
        return replace(self, **{k: asked for k, (_, asked) in changed.items()})

    def check(self) -> TrainConfig:
        if self.optimizer not in OPTIMIZERS:
            raise unknown_choice("optimizer", self.optimizer, OPTIMIZERS)
        for key, choices in (("lr_schedule", SCHEDULES), ("augment", AUGMENT_PRESETS), ("strategy", STRATEGIES),
                             ("precision", PRECISIONS)):
            if getattr(self, key) not in choices:
                raise unknown_choice(key.replace("_", " "), getattr(self, key), choices)
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise UsageError(f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("finetune_epochs", "warmup_epochs"):
            if getattr(self, key) < 0:
                raise UsageError(f"{key} must not be negative, got {getattr(self, key)}")
        if self.lr <= 0 or (self.finetune_lr is not None and self.finetune_lr <= 0):
            raise UsageError(f"learning rates must be positive, got {self.lr} / {self.finetune_lr}")
        if self.bn_momentum is not None and not 0.0 <= self.bn_momentum < 1.0:
            raise UsageError(f"bn_momentum must be in [0, 1), got {self.bn_momentum}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UsageError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.image_size is not None and self.image_size < 32:
            raise UsageError(f"image_size must be at least 32, got {self.image_size}")
        if self.patience is not None and self.patience < 1:
            raise UsageError(f"patience must be at least 1, got {self.patience}")
        if self.train_limit is not None and self.train_limit < self.batch_size:
            raise UsageError(f"train_limit {self.train_limit} is below one batch ({self.batch_size})")
        if self.finetune_epochs and self.pretrained in ("none", ""):
            raise UsageError("finetune_epochs needs --pretrained (without it, all layers train from the start)")
        return self

    @property
    def soft_labels(self) -> bool:
        """One-hot labels and a categorical loss: mixup/cutmix mix labels, label smoothing needs them too."""
        return self.augment in ("mixup", "cutmix", "paper") or self.label_smoothing > 0

    @property
    def total_epochs(self) -> int:
        return self.epochs + (self.finetune_epochs if self.pretrained not in ("none", "") else 0)
