"""Training: build a registered model, fit it on a dataset source, checkpoint every epoch, resume after a kill.

The run directory (tflkit.core.run.Run) gets config.yaml, model.keras, checkpoints, history.json, state.json,
pretrained.json, environment.json (one entry per session: a resume may be on another machine) and model_info.json.

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
import sys
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

import tflkit.training.schedules  # noqa: F401  (registers the schedule class so last.keras loads)
from tflkit.core.errors import UsageError
from tflkit.core.fileio import atomic_path, atomic_write_text
from tflkit.core.machine import environment
from tflkit.core.run import Run
from tflkit.core.tfenv import quiet_tensorflow
from tflkit.core.trainconfig import TrainConfig
from tflkit.data import load_dataset
from tflkit.data.augment import make_augment
from tflkit.data.check import screen_images
from tflkit.data.pipeline import epoch_order, make_dataset
from tflkit.data.splits import holdout_indices
from tflkit.models import count_params, create_model, get_spec
from tflkit.models.layers import NORMALIZE_LAYER
from tflkit.models.summary import keras_macs
from tflkit.training.bn_stats import BatchNormStats
from tflkit.training.schedules import WarmupSchedule
from tflkit.training.transfer import load_pretrained


def record_environment(run: Run, from_epoch: int, deterministic: bool) -> None:
    """Append this session's machine and versions to environment.json (kept whole: a session per entry)."""
    sessions = json.loads(run.environment_path.read_text()) if run.environment_path.is_file() else []
    sessions.append({"from_epoch": from_epoch, "deterministic": deterministic, **environment()})
    atomic_write_text(run.environment_path, json.dumps(sessions, indent=1) + "\n")


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
    by about that much (benchmarks/results/train_throughput_xeon_amx.md); a user should see it before waiting."""
    how = get_spec(config.model).small_input_note.split(":")[0]  # "... (total stride 8 instead of 32)"
    stem = (f"CIFAR-style stem, {how}; --no-small-input: the ImageNet stem"
            if config.small_input else "ImageNet stem")
    return (f"training {config.model} at {config.image_size}x{config.image_size}, {stem}: "
            f"{keras_macs(model) / 1e6:,.1f} M MACs per image")


def _stderr(message: str) -> None:
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


    trained = keras.models.load_model(path, compile=False)
    with dtype_policy("float32"):
        model = create_model(config.model, num_classes=num_classes, image_size=config.image_size,
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

    quiet_tensorflow()
    import keras


    config.check()
    run = Run(run_dir)
    if resume:
        if not run.exists:
            raise UsageError(f"nothing to resume in {run_dir} (no config.yaml)")
        config = run.config
    source = source or load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed)

    screen_images(source, strict=config.strict, log=log)  # unreadable image files: skipped (counted) or named
    config = _resolve(config, source)

    history, initial_epoch, state = {}, 0, {"best_val_top1": -1.0, "since_best": 0, "phase": None}
    if config.deterministic:
        make_deterministic(log)
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.strategy)
    resumed = resume and run.last_checkpoint.is_file() and run.state_path.is_file()
    with strategy.scope():
        if resumed:
            state = {**state, **run.state()}
            initial_epoch = state["epochs_done"]
            history = run.history()
            model = keras.models.load_model(run.last_checkpoint)
        else:
            if run.trained and not resume:
                raise UsageError(f"{run_dir} already holds a trained model; pass --resume or choose another --out")
            with dtype_policy(config.precision):  # each layer keeps its policy (and last.keras records it)
                model = create_model(config.model, num_classes=source.num_classes, image_size=config.image_size,
                                     small_input=config.small_input)
            if config.precision != "float32":
                model = float32_logits(model)
            set_bn_momentum(model, config.bn_momentum)
            log(stem_note(config, model))
    pretrained = None
    if not resumed and config.pretrained not in ("none", ""):
        # before anything is written: weights that cannot be had (offline, a bad checksum) leave no run directory
        pretrained = load_pretrained(model, config.pretrained, config.model)
    run.save_config(config)
    record_environment(run, initial_epoch, config.deterministic)
    if pretrained is not None:
        atomic_write_text(run.pretrained_path, json.dumps(pretrained, indent=1) + "\n")

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

    checkpoint = _Checkpoint(run, history, state, config.patience, config.seed)
    callbacks = [_ChanceWarning(source.num_classes, config, log), *(callbacks or [])]
    for phase, start, end, lr in _phases(config):
        if initial_epoch >= end or checkpoint.state.get("stopped"):
            continue
        if checkpoint.state.get("phase") != phase:  # a fresh model, or a resumed one at a phase boundary
            with strategy.scope():
                _set_phase_trainable(model, phase, run, config.finetune_bn)
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
    final = run.best_checkpoint if run.best_checkpoint.is_file() else run.last_checkpoint
    with atomic_path(run.model_path) as tmp:
        if config.precision == "float32":
            shutil.copyfile(final, tmp)
        else:
            float32_copy(final, config, source.num_classes).save(tmp)

    run.record_model_info({"params": count_params(model), "image_size": config.image_size,
                           "num_classes": source.num_classes, "class_names": list(source.class_names),
                           "dataset_label": source.label})
    return checkpoint.history


def _set_phase_trainable(model, phase: str, run: Run, finetune_bn: str = "frozen") -> None:
    """Head phase: freeze the layers that took pretrained weights (a frozen BatchNorm runs in inference mode).
    Fine-tune phase: everything trains, except layers built frozen (the input normalization) and, with
    finetune_bn=frozen, the pretrained BatchNorms: switched to batch statistics, they change the function the head
    was fitted to (with a .tflite source's folded BatchNorms, identity ones, CIFAR-10 val top-1 fell from 67% to 21%
    in the first fine-tune epoch)."""
    frozen = {NORMALIZE_LAYER}  # built frozen: its weights are the pixel normalization, not learned
    loaded = run.pretrained_layers()
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
            def __init__(self, run: Run, history: dict, state: dict, patience: int | None, seed: int):
                super().__init__()
                self.run, self.history, self.state, self.patience = run, history, dict(state), patience
                self.seed = seed

            def on_epoch_begin(self, epoch, logs=None):
                reseed_layers(self.model, self.seed, epoch)

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                for key, value in logs.items():
                    self.history.setdefault(key, []).append(float(value))
                score = logs.get("val_top1", logs.get("top1", 0.0))
                with atomic_path(self.run.last_checkpoint) as tmp:
                    self.model.save(tmp)
                if score > self.state["best_val_top1"]:
                    self.state.update(best_val_top1=float(score), since_best=0)
                    with atomic_path(self.run.best_checkpoint) as tmp:
                        shutil.copyfile(self.run.last_checkpoint, tmp)  # the same bytes, without serializing twice
                else:
                    self.state["since_best"] += 1
                if self.patience and self.state["since_best"] >= self.patience:
                    self.state["stopped"] = True
                    self.model.stop_training = True
                atomic_write_text(self.run.history_path, json.dumps(self.history, indent=1) + "\n")
                # state.json last: a kill before this line replays the epoch rather than skipping it
                atomic_write_text(self.run.state_path, json.dumps({**self.state, "epochs_done": epoch + 1}))

        return Checkpoint(*args, **kwargs)
