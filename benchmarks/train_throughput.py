"""Training images/s of `tflkit.training.loop.train` against plain Keras fitting the same model, side by side, and what
mixed bfloat16 and XLA change on this CPU.

    python benchmarks/train_throughput.py [--entries resnet18:224 mobilenetv3_small_100:64:standard ...]
                                          [--variants bf16 xla] [--rounds 3] [--steps N] [--out PREFIX] [--resume]

An entry is MODEL:SIZE[:STEM], STEM `cifar` (small_input: no early downsampling) or `standard` (the ImageNet
stem); without it, tflkit's own default (the CIFAR-style stem at 64 px and below). The default entries are every
registry architecture at the study's sizes, 32, 64, 96 and 224 (ResNet-8, the MLPerf Tiny model, at its 32 only).
For each entry and round, in one process and in flipping order (benchmarks/harness.py side_by_side):
- tflkit: `train()` on a stratified subset of real CIFAR-10 (its pipeline, loss, metrics, schedule, checkpoint,
  BatchNorm-statistics and chance-warning callbacks, run directory), 2 epochs of STEPS steps (default: by the
  model's MACs, 4 to 24);
- plain: `create_model` of the same model and stem, Adam, sparse categorical cross-entropy, `model.fit` on the
  same images already in memory as numpy arrays, 2 epochs;
- each variant: tflkit's `train()` again with `--precision mixed_bfloat16` (bf16) or `--jit-compile` (xla).
Steady state is the median step time of the second epoch (the first holds tf.function tracing, reported apart as
"first step"). Batch 64 up to 96 px, 32 at 224 or past 1 G MACs an image. Medians and min-max over rounds; the
ratio is tflkit / plain images/s, a variant's speed-up is its images/s / tflkit float32's in the same round.
Records the CPU and its features (benchmarks/harness.py's writer). Writes PREFIX.{md,json} (default
benchmarks/results/train_throughput), each entry's row the moment it is measured; `--resume` keeps the rows there
(as written before issue 22 too) and measures the other entries.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness

from tflkit.models import train_config

NAME = "train_throughput"
ARCHITECTURES = ("mobilenetv3_small_100", "resnet18", "squeezenet1_1", "efficientnetv2_s", "shufflenetv2_x1_0")
SIZES = (32, 64, 96, 224)
DEFAULT_ENTRIES = [f"{m}:{s}" for m in ARCHITECTURES for s in SIZES] + ["resnet8:32"]
VARIANTS = {"bf16": {"precision": "mixed_bfloat16"}, "xla": {"jit_compile": True}}


def _timer(keras):
    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append([time.perf_counter()])

        def on_train_batch_end(self, batch, logs=None):
            self.epochs[-1].append(time.perf_counter())

        def summary(self, batch_size):
            first = self.epochs[0][1] - self.epochs[0][0]
            steady = statistics.median(b - a for a, b in zip(self.epochs[-1], self.epochs[-1][1:]))
            return {"images_per_s": batch_size / steady, "first_step_s": first}

    return StepTimer()


def auto_batch(macs_per_image: int, size: int) -> int:
    """64 images a step up to 96 px, 32 at 224 or past 1 G MACs an image (a heavy step is steady anyway)."""
    return 64 if size <= 96 and macs_per_image < 1e9 else 32


def auto_steps(macs_per_image: int, batch: int) -> int:
    """Steps an epoch: about 6e10 multiply-adds of training (forward and backward, ~3x the forward pass) per epoch,
    4 to 24 steps: a cheap model gets enough steps for a steady median, a heavy one stays affordable. Only the
    sample size of this benchmark; nothing in tflkit depends on it."""
    return max(4, min(24, round(6e10 / (3 * macs_per_image * batch))))


def measure(entry: str, args, source, split_of) -> dict:
    import keras

    from tflkit.data.pipeline import load_images
    from tflkit.models import create_model
    from tflkit.models.summary import keras_macs
    from tflkit.training.loop import train

    model_name, size, *stem = entry.split(":")
    size = int(size)
    small = (stem[0] == "cifar") if stem else size <= 64
    macs = keras_macs(create_model(model_name, num_classes=source.num_classes, image_size=size, small_input=small))
    keras.backend.clear_session()
    batch = auto_batch(macs, size)
    steps = args.steps or auto_steps(macs, batch)
    limit = steps * batch
    split = split_of(limit)
    x, y = load_images(split, size), split.labels

    def tflkit_side(rnd, **settings):
        with tempfile.TemporaryDirectory() as tmp:
            timer = _timer(keras)
            config = train_config(model_name, dataset="cifar10", image_size=size, small_input=small,
                                           epochs=2, batch_size=batch, train_limit=limit, seed=rnd,
                                           bn_stats_batches=1, **settings)
            train(config, Path(tmp) / "run", verbose=0, source=source, callbacks=[timer], log=lambda m: None)
        keras.backend.clear_session()
        return timer.summary(batch)

    def plain_side(rnd):
        keras.utils.set_random_seed(rnd)
        model = create_model(model_name, num_classes=source.num_classes, image_size=size, small_input=small)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        timer = _timer(keras)
        model.fit(x, y, batch_size=batch, epochs=2, shuffle=True, verbose=0, callbacks=[timer])
        keras.backend.clear_session()
        return timer.summary(batch)

    sides = {"tflkit": tflkit_side, "plain": plain_side,
             **{v: (lambda rnd, v=v: tflkit_side(rnd, **VARIANTS[v])) for v in args.variants}}
    rounds = harness.side_by_side(sides, args.rounds)  # flipping order: no side always runs first
    row = {"entry": entry, "model": model_name, "image_size": size, "stem": "cifar" if small else "standard",
           "batch_size": batch, "steps_per_epoch": steps, "macs_per_image": macs}
    for side in sides:
        row[side] = {"images_per_s": harness.spread(harness.column(rounds, side, "images_per_s")),
                     "first_step_s_median": statistics.median(harness.column(rounds, side, "first_step_s"))}
    row["ratio"] = harness.spread(harness.ratios(rounds, "tflkit", "plain", "images_per_s"))
    for variant in args.variants:
        row[f"{variant}_speedup"] = harness.spread(harness.ratios(rounds, variant, "tflkit", "images_per_s"))
    return row, rounds


def markdown(settings: dict, rows: list, variants: list) -> str:
    def cell(s, digits=1):
        return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"

    head = ["model", "size", "stem", "batch", "steps", "tflkit img/s", "plain img/s", "ratio tflkit/plain",
            *[f"{v} speed-up" for v in variants], "first step tflkit / plain"]
    lines = ["# Training throughput: tflkit train vs plain Keras", "",
             f"oneDNN {settings['onednn']}; steps an epoch: {settings['steps']} (auto: by MACs, in the table), 2 "
             f"epochs, {settings['rounds']} rounds, real CIFAR-10 images. Medians (min-max over rounds)."
             + (f" {settings['note']}." if settings.get("note") else ""), "",
             *harness.table(head, [[r["model"], r["image_size"], r["stem"], r["batch_size"], r["steps_per_epoch"],
                                    cell(r["tflkit"]["images_per_s"]), cell(r["plain"]["images_per_s"]),
                                    cell(r["ratio"], 2),
                                    *(cell(r[f"{v}_speedup"], 2) if f"{v}_speedup" in r else "-" for v in variants),
                                    f"{r['tflkit']['first_step_s_median']:.1f} s / "
                                    f"{r['plain']['first_step_s_median']:.1f} s"] for r in rows])]
    if rows:
        ratios = [r["ratio"]["median"] for r in rows]
        lines += ["", f"Ratio medians: lowest {min(ratios):.2f}, highest {max(ratios):.2f}; "
                      f"{sum(x >= 0.9 for x in ratios)} of {len(ratios)} entries at 0.9 or above."]
    return "\n".join(lines)


def earlier(prefix) -> tuple[list, dict]:
    """The rows and per-round numbers PREFIX.json holds, as this script writes it or wrote it before issue 22."""
    path = Path(f"{prefix}.json")
    if not path.is_file():
        return [], {}
    saved = json.loads(path.read_text())
    if "summary" in saved:
        return saved["summary"]["rows"], saved.get("raw") or {}
    return saved["rows"], {}


def main(argv=None):
    p = harness.arguments(__doc__, NAME)
    p.add_argument("--data-dir", default="~/.cache/tflkit-data/cifar-10-batches-py")
    p.add_argument("--entries", nargs="+", default=DEFAULT_ENTRIES)
    p.add_argument("--variants", nargs="*", default=[], choices=sorted(VARIANTS))
    p.add_argument("--steps", type=int, default=None,
                   help="steps an epoch (the second epoch's median is measured; default: by the model's MACs)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--resume", action="store_true", help="keep PREFIX.json's rows and measure only the other entries")
    args, results = p.start(argv)

    harness.tensorflow()
    from tflkit.data import load_dataset
    from tflkit.training.loop import train_subset

    # a 64-image validation split: validation runs between epochs, outside the timed steps, and only costs wall time
    source = load_dataset("cifar10:val=64", data_dir=os.path.expanduser(args.data_dir), seed=0)
    settings = {"onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"), "steps": args.steps or "auto",
                "rounds": args.rounds}
    rows, raw = earlier(args.results) if args.resume else ([], {})
    if rows:  # rows already measured are kept, not measured again
        settings["note"] = f"Resumed; earlier rows: {', '.join(r['entry'] for r in rows)}"
    variants = sorted({v for r in rows for v in VARIANTS if f"{v}_speedup" in r} | set(args.variants))
    for entry in args.entries:
        if any(r["entry"] == entry for r in rows):
            continue
        started = time.perf_counter()
        row, raw[entry] = measure(entry, args, source, lambda n: train_subset(source.split("train"), n, 0))
        row["wall_s"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
        results.write(markdown(settings, rows, variants), summary={"rows": rows}, raw=raw, settings=settings)
    print(results.md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
