"""Training: build a registered model, fit it on a dataset source, checkpoint every epoch, resume after a kill.

A run directory holds everything a later step needs:
  config.yaml        the resolved TrainConfig
  model.keras        the final model (the best validation epoch)
  checkpoints/       last.keras (with optimizer state, for --resume) and best.keras
  history.json       per-epoch metrics; state.json, the last finished epoch, the best score, early stopping
  pretrained.json    with --pretrained: where the weights came from and which layers took them
  environment.json   per session of the run (a resume may be on another machine): the epoch it started at,
                     tflkit's version and commit, the CPU and its features, the versions that decide a result

Resume is exact: the data order and the stateless augmentations are functions of (seed, epoch, step), the
optimizer state, its step counter (which drives the lr schedule) and every layer's random-generator state are
inside last.keras, and state.json is written last, so a kill at any point replays at most the unfinished epoch.

With --pretrained the run has two phases: `epochs` with the pretrained layers frozen (BatchNorm in inference
mode; only the new classifier learns), then `finetune_epochs` with everything trainable at `finetune_lr`.

Multi-device: `strategy="mirrored"` trains under tf.distribute.MirroredStrategy on all local devices (GPUs, or
the logical CPU devices a test configures); `batch_size` is the global batch. Multi-worker: set `TF_CONFIG` on
every worker and use `strategy="multi_worker"`: start the same command on every machine, each with a `TF_CONFIG`
naming the whole cluster and its own place in it, e.g. on the first of two workers

    export TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
    tflkit train --strategy multi_worker --model resnet18 --dataset cifar10 --data-dir DATA --out runs/r18

and on the second the same with `"index": 1`. Every worker needs the data (same `--data-dir` layout) and the same
flags; `--batch-size` is the global batch. Worker 0 (the chief) writes the run directory; give the others a
scratch `--out`.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from tflkit.core.config import from_dict, save_yaml
from tflkit.core.errors import UsageError, unknown_choice
from tflkit.core.fileio import atomic_path, atomic_write_text

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

    @classmethod
    def for_model(cls, model: str, source: str = "settings", **settings) -> TrainConfig:
        """The config of a run of `model`: tflkit's defaults, then the architecture's training defaults
        (ModelSpec.train_defaults, e.g. SqueezeNet's lower lr and warm-up), then `settings`, which always win.
        What `tflkit train`, a study's cells, a search and the demo all build their runs with."""
        from tflkit.core.config import from_dict
        from tflkit.models import get_spec

        return from_dict(cls, {**get_spec(model).train_defaults, **settings, "model": model}, source=source)

    def resumed_with(self, requested: dict, run_dir, hint: str = "start a new run with another --out"
                     ) -> TrainConfig:
        """This saved run's config with the `requested` settings (None: not asked) applied for a resume: `epochs`
        is applied (more epochs continue the run), any other changed setting is refused with one line."""
        from tflkit.core.config import changed_fields, flag_name

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

    @property
    def pretrained(self):
        return self.root / "pretrained.json"

    @property
    def environment(self):
        return self.root / "environment.json"


def record_environment(files: RunFiles, from_epoch: int, deterministic: bool) -> None:
    """Append this session's machine and versions to environment.json (kept whole: a session per entry)."""
    from tflkit.core.machine import environment

    sessions = json.loads(files.environment.read_text()) if files.environment.is_file() else []
    sessions.append({"from_epoch": from_epoch, "deterministic": deterministic, **environment()})
    atomic_write_text(files.environment, json.dumps(sessions, indent=1) + "\n")


def load_run_config(run_dir) -> TrainConfig:
    import yaml

    files = RunFiles(Path(run_dir))
    if not files.config.is_file():
        raise UsageError(f"{run_dir} is not a tflkit run directory (no config.yaml)")
    return from_dict(TrainConfig, yaml.safe_load(files.config.read_text()), source=str(files.config))


# Below this many optimizer steps per epoch the architectures' reference BatchNorm momentum (0.99: a moving average
# over ~100 steps) lags the weights by epochs, and validation sits at chance: see SMALL_RUN_BN_MOMENTUM.
SMALL_RUN_STEPS_PER_EPOCH = 50
# Measured on shapes, a 1,500-image subset (23 steps an epoch), MobileNetV3-Small 1.0, 5 epochs, batch 64, lr 3e-3,
# seed 0: val top-1 per epoch 10.00% x5 at 0.99; 10.0/10.8/15.2/20.8/25.3% at 0.9; 10.0/10.0/11.3/12.8/24.3% at
# 0.95 (train top-1 identical: 10.7 -> 23.8%). The demo (6,000 images, 93 steps an epoch) keeps the reference
# value: 0.9 cost its int8 file 5 points there (pipeline.DemoSettings).
SMALL_RUN_BN_MOMENTUM = 0.9


def default_bn_momentum(steps_per_epoch: int) -> float | None:
    """The BatchNorm momentum of a run that sets none: the architecture's own (None) unless the run is small."""
    return SMALL_RUN_BN_MOMENTUM if steps_per_epoch < SMALL_RUN_STEPS_PER_EPOCH else None


def _resolve(config: TrainConfig, source) -> TrainConfig:
    image_size = config.image_size or source.image_size
    small_input = config.small_input if config.small_input is not None else image_size <= 64
    bn_momentum = config.bn_momentum
    if bn_momentum is None and not config.bn_stats_batches:  # recomputed statistics make the momentum moot
        train_images = len(source.split("train"))
        if config.train_limit:
            train_images = min(train_images, config.train_limit)
        bn_momentum = default_bn_momentum(max(1, train_images // config.batch_size))
    return replace(config, image_size=image_size, small_input=small_input, bn_momentum=bn_momentum)


def stem_note(config: TrainConfig, model) -> str:
    """One line saying which stem the run trains and what an image costs: the CIFAR-style stem (the default at 64 px
    and below) keeps the early feature maps 4x (SqueezeNet) to 16x larger than the ImageNet stem, and images/s drop
    by about that much (benchmarks/results/train_throughput.md); a user should see it before waiting."""
    from tflkit.models import get_spec
    from tflkit.models.summary import keras_macs

    how = get_spec(config.model).small_input_note.split(":")[0]  # "... (total stride 8 instead of 32)"
    stem = (f"CIFAR-style stem, {how}; --no-small-input: the ImageNet stem"
            if config.small_input else "ImageNet stem")
    return (f"training {config.model} at {config.image_size}x{config.image_size}, {stem}: "
            f"{keras_macs(model) / 1e6:,.1f} M MACs per image")


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def chance_warning(history: dict, num_classes: int, config: TrainConfig) -> str | None:
    """A warning when validation top-1 has sat at chance for the last 2 epochs while training top-1, above chance in
    both, rose: the model learns but its inference-mode outputs do not follow."""
    val, top1 = history.get("val_top1", []), history.get("top1", [])
    if len(val) < 2 or len(top1) < 2 or num_classes < 2:
        return None
    chance = 1.0 / num_classes
    margin = max(0.02, 0.25 * chance)  # 10 classes: 12.5%
    at_chance = all(v <= chance + margin for v in val[-2:])
    # training already above chance in both epochs, and still rising: the weights learn, inference does not
    rising = top1[-1] > top1[-2] and all(t > chance + margin for t in top1[-2:])
    if not (at_chance and rising):
        return None
    start = (f"warning: validation top-1 sits at chance ({100 * val[-1]:.2f}%, {num_classes} classes) for 2 epochs "
             f"while training top-1 rose to {100 * top1[-1]:.2f}%: ")
    if config.bn_stats_batches:  # statistics are current: the weights themselves do not transfer to unseen images
        return start + ("the model does not generalize yet (BatchNorm statistics were recomputed); "
                        "try a lower --lr, --warmup-epochs 1 or more epochs")
    momentum = ("the architecture's reference momentum" if config.bn_momentum is None
                else f"momentum {config.bn_momentum:g}")
    return start + (f"BatchNorm's moving statistics ({momentum}) are likely lagging the weights, so inference-mode "
                    f"outputs are meaningless; recomputed statistics follow them (--bn-stats-batches 16, the default)")


class _ChanceWarning:
    """Keras callback: log `chance_warning` once per run (duck-typed like _Checkpoint)."""

    def __new__(cls, num_classes: int, config: TrainConfig, log):
        import keras

        class ChanceWarning(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.history, self.warned = {}, False

            def on_epoch_end(self, epoch, logs=None):
                for key in ("top1", "val_top1"):
                    if key in (logs or {}):
                        self.history.setdefault(key, []).append(float(logs[key]))
                message = None if self.warned else chance_warning(self.history, num_classes, config)
                if message:
                    self.warned = True
                    log(message)

        return ChanceWarning()


def _schedule(config: TrainConfig, lr: float, epochs: int, steps: int):
    if config.lr_schedule == "constant" and not config.warmup_epochs:
        return lr
    from tflkit.training.schedules import WarmupSchedule

    return WarmupSchedule(config.lr_schedule, lr, total_steps=epochs * steps,
                          warmup_steps=int(round(config.warmup_epochs * steps)),
                          step_size=config.step_epochs * steps, gamma=config.step_gamma)


def _optimizer(config: TrainConfig, keras, lr=None):
    lr = config.lr if lr is None else lr
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay or None)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay or 0.004)
    return keras.optimizers.Adam(lr, weight_decay=config.weight_decay or None)


def set_bn_momentum(model, momentum: float | None) -> None:
    """A training choice, not architecture: reference values (0.99 for torchvision's 0.01) lag for hundreds of
    steps, so a short run's validation sits at chance while its moving statistics catch up."""
    if momentum is None:
        return
    for layer in model.layers:
        if hasattr(layer, "moving_mean"):
            layer.momentum = momentum


def compile_for_training(model, config: TrainConfig, num_classes: int, keras, lr=None):
    """`lr` may be a float or a schedule; default config.lr."""
    if config.soft_labels:
        metrics = [keras.metrics.CategoricalAccuracy(name="top1")]
        if num_classes > 5:
            metrics.append(keras.metrics.TopKCategoricalAccuracy(k=5, name="top5"))
        loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=config.label_smoothing)
    else:
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="top1")]
        if num_classes > 5:
            metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"))
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=_optimizer(config, keras, lr), loss=loss, metrics=metrics,
                  jit_compile=config.jit_compile)
    # Creating the slot variables now, not inside the first traced step, spares tf.function a second trace of the
    # whole train step: 12 of the first step's 25 s for MobileNetV3-Small 0.5 on 2 cores.
    model.optimizer.build(model.trainable_variables)


@contextmanager
def dtype_policy(name: str):
    """Keras' global dtype policy for the layers built inside, restored after (it is process-wide state)."""
    import keras

    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def float32_logits(model):
    """The model with its logits cast to float32 (a weightless layer at the end): the loss, top-k metrics and the
    softmax want float32, as Keras' mixed-precision guide advises for the output layer."""
    import keras

    outputs = keras.layers.Activation("linear", dtype="float32", name="logits_float32")(model.outputs[0])
    return keras.Model(model.inputs, outputs, name=model.name)


def float32_copy(path, config: TrainConfig, num_classes: int):
    """The model saved at `path` (trained under mixed precision: float32 variables, bf16 compute) rebuilt with
    float32 layers and the same weights, so conversion and evaluation see a plain float32 graph."""
    import keras

    from tflkit.models import create_model

    trained = keras.models.load_model(path, compile=False)
    with dtype_policy("float32"):
        model = create_model(config.model, num_classes=num_classes, input_size=config.image_size,
                             small_input=config.small_input)
    model.set_weights(trained.get_weights())
    return model


def make_deterministic(log) -> None:
    """TensorFlow's op determinism for the rest of the process (it cannot be switched off again), and one inter-op
    thread where the runtime has not started yet (a fresh `tflkit train` process; a library caller that ran
    TensorFlow before keeps its threads, said in one line: op determinism alone already fixes the reductions)."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        if tf.config.threading.get_inter_op_parallelism_threads() != 1:
            log("deterministic: TensorFlow already started in this process; inter-op threads left as they are")


def make_strategy(name: str):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def train_subset(split, limit: int | None, seed: int):
    """The stratified, seeded subset of `limit` training images (all of them without a limit)."""
    if not limit or limit >= len(split):
        return split
    from tflkit.data.splits import holdout_indices

    return split.take(holdout_indices(split.labels, limit, seed))


def _phases(config: TrainConfig) -> list[tuple[str, int, int, float]]:
    """(name, first epoch, end epoch, lr)."""
    if config.pretrained in ("none", ""):
        return [("all", 0, config.epochs, config.lr)]
    phases = [("head", 0, config.epochs, config.lr)]
    if config.finetune_epochs:
        phases.append(("finetune", config.epochs, config.total_epochs, config.finetune_lr or config.lr / 10))
    return phases


def train(config: TrainConfig, run_dir, resume: bool = False, verbose: int = 1, source=None,
          callbacks=None, log=None) -> dict:
    """Train and return the history (a dict of metric name -> per-epoch values). `callbacks`: extra Keras
    callbacks (e.g. a test's hook that kills the process mid-epoch). `log`: where warnings and data notes go
    (default: stderr)."""
    log = log or _stderr
    from tflkit.core.tfenv import quiet_tensorflow

    quiet_tensorflow()
    import keras

    import tflkit.training.schedules  # noqa: F401  (registers the schedule class so last.keras loads)
    from tflkit.data import load_dataset
    from tflkit.data.augment import make_augment
    from tflkit.data.pipeline import epoch_order, make_dataset
    from tflkit.models import create_model

    config.check()
    files = RunFiles(Path(run_dir))
    if resume:
        if not files.config.is_file():
            raise UsageError(f"nothing to resume in {run_dir} (no config.yaml)")
        config = load_run_config(run_dir)
    source = source or load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed)
    from tflkit.data.check import screen_images

    screen_images(source, strict=config.strict, log=log)  # unreadable image files: skipped (counted) or named
    config = _resolve(config, source)

    history, initial_epoch, state = {}, 0, {"best_val_top1": -1.0, "since_best": 0, "phase": None}
    if config.deterministic:
        make_deterministic(log)
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.strategy)
    resumed = resume and files.last.is_file() and files.state.is_file()
    with strategy.scope():
        if resumed:
            state = {**state, **json.loads(files.state.read_text())}
            initial_epoch = state["epochs_done"]
            history = json.loads(files.history.read_text())
            model = keras.models.load_model(files.last)
        else:
            if files.model.exists() and not resume:
                raise UsageError(f"{run_dir} already holds a trained model; pass --resume or choose another --out")
            with dtype_policy(config.precision):  # each layer keeps its policy (and last.keras records it)
                model = create_model(config.model, num_classes=source.num_classes, input_size=config.image_size,
                                     small_input=config.small_input)
            if config.precision != "float32":
                model = float32_logits(model)
            set_bn_momentum(model, config.bn_momentum)
            log(stem_note(config, model))
    pretrained = None
    if not resumed and config.pretrained not in ("none", ""):
        from tflkit.training.transfer import load_pretrained

        # before anything is written: weights that cannot be had (offline, a bad checksum) leave no run directory
        pretrained = load_pretrained(model, config.pretrained, config.model)
    files.root.mkdir(parents=True, exist_ok=True)
    save_yaml(config, files.config)
    record_environment(files, initial_epoch, config.deterministic)
    if pretrained is not None:
        atomic_write_text(files.pretrained, json.dumps(pretrained, indent=1) + "\n")

    train_split = train_subset(source.split("train"), config.train_limit, config.seed)
    steps = max(1, len(train_split) // config.batch_size)
    one_hot = source.num_classes if config.soft_labels else None
    augment = make_augment(config.augment, config.seed)
    val_ds = None
    if "val" in source.splits:
        val_ds = make_dataset(source.split("val"), config.image_size, config.batch_size, num_classes=one_hot)
    stats_ds = None
    if config.bn_stats_batches:  # the first images of epoch 0's order, unaugmented: the same ones at every epoch
        first = epoch_order(len(train_split), config.seed, 0)[:config.bn_stats_batches * config.batch_size]
        stats_ds = make_dataset(train_split.take(first), config.image_size, config.batch_size)

    checkpoint = _Checkpoint(files, history, state, config.patience, config.seed)
    callbacks = [_ChanceWarning(source.num_classes, config, log), *(callbacks or [])]
    for phase, start, end, lr in _phases(config):
        if initial_epoch >= end or checkpoint.state.get("stopped"):
            continue
        if checkpoint.state.get("phase") != phase:  # a fresh model, or a resumed one at a phase boundary
            with strategy.scope():
                _set_phase_trainable(model, phase, files, config.finetune_bn)
                compile_for_training(model, config, source.num_classes, keras,
                                     lr=_schedule(config, lr, end - start, steps))
            checkpoint.state["phase"] = phase
        first = max(initial_epoch, start)
        train_ds = make_dataset(train_split, config.image_size, config.batch_size, shuffle=True, seed=config.seed,
                                epochs=end, initial_epoch=first, drop_remainder=True, augment=augment,
                                num_classes=one_hot)
        # the dataset is already shuffled per (seed, epoch); shuffle=False only silences Keras' warning
        validate = _Validate(model, val_ds, stats_ds, config.bn_stats_batches)  # per phase: its trainable set
        model.fit(train_ds, shuffle=False, epochs=end, initial_epoch=first, steps_per_epoch=steps,
                  callbacks=[validate, checkpoint, *callbacks], verbose=verbose)
        initial_epoch = end
    final = files.best if files.best.is_file() else files.last
    with atomic_path(files.model) as tmp:
        if config.precision == "float32":
            shutil.copyfile(final, tmp)
        else:
            float32_copy(final, config, source.num_classes).save(tmp)
    from tflkit.core.runrecords import record_model_info
    from tflkit.models import count_params

    record_model_info(files.root, {"params": count_params(model), "input_size": config.image_size,
                                   "num_classes": source.num_classes, "class_names": list(source.class_names),
                                   "dataset_label": source.label})
    return checkpoint.history


def _set_phase_trainable(model, phase: str, files: RunFiles, finetune_bn: str = "frozen") -> None:
    """Head phase: freeze the layers that took pretrained weights (a frozen BatchNorm runs in inference mode).
    Fine-tune phase: everything trains, except layers built frozen (the input normalization) and, with
    finetune_bn=frozen, the pretrained BatchNorms: switched to batch statistics, they change the function the head
    was fitted to (with a .tflite source's folded BatchNorms, identity ones, CIFAR-10 val top-1 fell from 67% to 21%
    in the first fine-tune epoch)."""
    from tflkit.models.layers import NORMALIZE_LAYER

    frozen = {NORMALIZE_LAYER}  # built frozen: its weights are the pixel normalization, not learned
    loaded = set(json.loads(files.pretrained.read_text())["loaded_layers"]) if files.pretrained.is_file() else set()
    if phase == "head":
        frozen |= loaded
    elif phase == "finetune" and finetune_bn == "frozen":
        frozen |= {layer.name for layer in model.layers if layer.name in loaded and hasattr(layer, "moving_mean")}
    for layer in model.layers:
        if layer.weights:
            layer.trainable = layer.name not in frozen


def reseed_layers(model, seed: int, epoch: int) -> None:
    """Set every random layer's generator (Dropout, ...) to a state derived from (seed, epoch, layer position):
    their draws become a function of the epoch, so a resumed epoch repeats the uninterrupted run's dropout."""
    import numpy as np

    position = 0
    for layer in model._flatten_layers(include_self=False):
        generator = getattr(layer, "seed_generator", None)
        if generator is None or not hasattr(generator, "state"):
            continue
        position += 1
        value = np.random.default_rng([seed, epoch, position]).integers(0, 2**30, size=2)
        generator.state.assign(value.astype(generator.state.dtype))


class _Validate:
    """Keras callback, first of a run's: at each epoch's end, recompute the BatchNorm statistics
    (tflkit.training.bn_stats), then validate, adding val_* to the epoch's logs (the ones the checkpoint, history and
    progress bar read). Keras' own validation_data would run before any callback could touch the statistics."""

    def __new__(cls, model, val_ds, stats_ds, stats_batches: int):
        import keras

        from tflkit.training.bn_stats import BatchNormStats

        class Validate(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.stats = BatchNormStats(model, stats_ds, stats_batches) if stats_ds is not None else None

            def on_epoch_end(self, epoch, logs=None):
                if self.stats is not None:
                    self.stats.update()
                if val_ds is not None and logs is not None:
                    results = self.model.evaluate(val_ds, verbose=0, return_dict=True)
                    logs.update({f"val_{name}": float(value) for name, value in results.items()})

        return Validate()


class _Checkpoint:
    """Keras callback (duck-typed to stay importable without keras) writing last/best models, the history and
    the run state; stops early after `patience` epochs without a better validation top-1."""

    def __new__(cls, *args, **kwargs):
        import keras

        class Checkpoint(keras.callbacks.Callback):
            def __init__(self, files: RunFiles, history: dict, state: dict, patience: int | None, seed: int):
                super().__init__()
                self.files, self.history, self.state, self.patience = files, history, dict(state), patience
                self.seed = seed

            def on_epoch_begin(self, epoch, logs=None):
                reseed_layers(self.model, self.seed, epoch)

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                for key, value in logs.items():
                    self.history.setdefault(key, []).append(float(value))
                score = logs.get("val_top1", logs.get("top1", 0.0))
                with atomic_path(self.files.last) as tmp:
                    self.model.save(tmp)
                if score > self.state["best_val_top1"]:
                    self.state.update(best_val_top1=float(score), since_best=0)
                    with atomic_path(self.files.best) as tmp:
                        shutil.copyfile(self.files.last, tmp)  # the same bytes, without serializing twice
                else:
                    self.state["since_best"] += 1
                if self.patience and self.state["since_best"] >= self.patience:
                    self.state["stopped"] = True
                    self.model.stop_training = True
                atomic_write_text(self.files.history, json.dumps(self.history, indent=1) + "\n")
                # state.json last: a kill before this line replays the epoch rather than skipping it
                atomic_write_text(self.files.state, json.dumps({**self.state, "epochs_done": epoch + 1}))

        return Checkpoint(*args, **kwargs)
