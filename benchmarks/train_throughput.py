"""Training images/s of `tflkit.training.loop.train` against plain Keras fitting the same model, side by side, and what
mixed bfloat16 and XLA change on this CPU.

    python benchmarks/train_throughput.py [--entries resnet18:224 mobilenetv3_small_100:64:standard ...]
                                          [--variants bf16 xla] [--rounds 3] [--steps N]

An entry is MODEL:SIZE[:STEM], STEM `cifar` (small_input: no early downsampling) or `standard` (the ImageNet
stem); without it, tflkit's own default (the CIFAR-style stem at 64 px and below). The default entries are every
registry architecture at the study's sizes, 32, 64, 96 and 224 (ResNet-8, the MLPerf Tiny model, at its 32 only).
For each entry and round, in one process and in flipping order:
- tflkit: `train()` on a stratified subset of real CIFAR-10 (its pipeline, loss, metrics, schedule, checkpoint,
  BatchNorm-statistics and chance-warning callbacks, run directory), 2 epochs of STEPS steps (default: by the
  model's MACs, 4 to 24);
- plain: `create_model` of the same model and stem, Adam, sparse categorical cross-entropy, `model.fit` on the
  same images already in memory as numpy arrays, 2 epochs;
- each variant: tflkit's `train()` again with `--precision mixed_bfloat16` (bf16) or `--jit-compile` (xla).
Steady state is the median step time of the second epoch (the first holds tf.function tracing, reported apart as
"first step"). Batch 64 up to 96 px, 32 at 224 or past 1 G MACs an image. Medians and min-max over rounds; the
ratio is tflkit / plain images/s, a variant's speed-up is its images/s / tflkit float32's in the same round.
Records the CPU and its features. Writes OUT.{md,json} (default benchmarks/results/train_throughput), each entry's
row the moment it is measured; `--resume` keeps the rows there and measures the other entries.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tflkit.models import train_config

RESULTS = Path(__file__).resolve().parent / "results"
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


def _spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def measure(entry: str, args, source, split_of) -> dict:
    import keras

    from tflkit.data.pipeline import load_images
    from tflkit.models import create_model
    from tflkit.models.summary import keras_macs
    from tflkit.training.loop import train

    model_name, size, *stem = entry.split(":")
    size = int(size)
    small = (stem[0] == "cifar") if stem else size <= 64
    macs = keras_macs(create_model(model_name, num_classes=source.num_classes, input_size=size, small_input=small))
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
        model = create_model(model_name, num_classes=source.num_classes, input_size=size, small_input=small)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        timer = _timer(keras)
        model.fit(x, y, batch_size=batch, epochs=2, shuffle=True, verbose=0, callbacks=[timer])
        keras.backend.clear_session()
        return timer.summary(batch)

    sides = {"tflkit": [], "plain": [], **{v: [] for v in args.variants}}
    for rnd in range(args.rounds):
        order = ["tflkit", "plain", *args.variants]
        for side in (order if rnd % 2 == 0 else order[::-1]):  # flipping order: no side always runs first
            if side == "plain":
                sides[side].append(plain_side(rnd))
            else:
                sides[side].append(tflkit_side(rnd, **VARIANTS.get(side, {})))
    row = {"entry": entry, "model": model_name, "image_size": size, "stem": "cifar" if small else "standard",
           "batch_size": batch, "steps_per_epoch": steps, "macs_per_image": macs}
    for side, runs in sides.items():
        row[side] = {"images_per_s": _spread([r["images_per_s"] for r in runs]),
                     "first_step_s_median": statistics.median(r["first_step_s"] for r in runs)}
    base = [r["images_per_s"] for r in sides["tflkit"]]
    row["ratio"] = _spread([a / b["images_per_s"] for a, b in zip(base, sides["plain"])])
    for variant in args.variants:
        row[f"{variant}_speedup"] = _spread([r["images_per_s"] / a for r, a in zip(sides[variant], base)])
    return row


def write(out: str, meta: dict, rows: list, variants: list) -> None:
    from tflkit.core.fileio import atomic_write_text

    atomic_write_text(Path(out + ".json"), json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")

    def cell(s, digits=1):
        return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"

    head = ["model", "size", "stem", "batch", "steps", "tflkit img/s", "plain img/s", "ratio tflkit/plain",
            *[f"{v} speed-up" for v in variants], "first step tflkit / plain"]
    lines = [f"# Training throughput: tflkit train vs plain Keras ({meta['date']})", "",
             f"CPU: {meta['cpu']}, {meta['cores']} cores, features {' '.join(meta['cpu_features']) or 'none'}; "
             f"oneDNN {meta['onednn']}; steps an epoch: {meta['steps']} (auto: by MACs, in the table), 2 epochs, "
             f"{meta['rounds']} rounds, real "
             f"CIFAR-10 images. Command: `{meta['command']}`. Medians (min-max over rounds).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['image_size']} | {r['stem']} | {r['batch_size']} | {r['steps_per_epoch']} | "
                     f"{cell(r['tflkit']['images_per_s'])} | {cell(r['plain']['images_per_s'])} | "
                     f"{cell(r['ratio'], 2)} | "
                     + "".join(f"{cell(r[f'{v}_speedup'], 2)} | " if f"{v}_speedup" in r else "- | "
                               for v in variants)
                     + f"{r['tflkit']['first_step_s_median']:.1f} s / {r['plain']['first_step_s_median']:.1f} s |")
    if rows:
        ratios = [r["ratio"]["median"] for r in rows]
        lines += ["", f"Ratio medians: lowest {min(ratios):.2f}, highest {max(ratios):.2f}; "
                      f"{sum(x >= 0.9 for x in ratios)} of {len(ratios)} entries at 0.9 or above."]
    atomic_write_text(Path(out + ".md"), "\n".join(lines) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="~/.cache/tflkit-data/cifar-10-batches-py")
    p.add_argument("--entries", nargs="+", default=DEFAULT_ENTRIES)
    p.add_argument("--variants", nargs="*", default=[], choices=sorted(VARIANTS))
    p.add_argument("--steps", type=int, default=None,
                   help="steps an epoch (the second epoch's median is measured; default: by the model's MACs)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS / "train_throughput"))
    p.add_argument("--resume", action="store_true", help="keep OUT.json's rows and measure only the other entries")
    args = p.parse_args(argv)

    from tflkit.core.tfenv import quiet_tensorflow

    quiet_tensorflow()
    from tflkit.core.machine import cpu_features, cpu_name
    from tflkit.data import load_dataset
    from tflkit.training.loop import train_subset

    # a 64-image validation split: validation runs between epochs, outside the timed steps, and only costs wall time
    source = load_dataset("cifar10:val=64", data_dir=os.path.expanduser(args.data_dir), seed=0)
    command = "python benchmarks/train_throughput.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"cpu": cpu_name(), "cpu_features": cpu_features(), "cores": os.cpu_count(),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"), "steps": args.steps or "auto",
            "rounds": args.rounds, "date": time.strftime("%Y-%m-%d"), "command": command.strip()}
    rows = []
    if args.resume and Path(args.out + ".json").is_file():  # rows already measured are kept, not measured again
        rows = json.loads(Path(args.out + ".json").read_text())["rows"]
        meta["command"] += f"  (resumed; earlier rows: {', '.join(r['entry'] for r in rows)})"
    variants = sorted({v for r in rows for v in VARIANTS if f"{v}_speedup" in r} | set(args.variants))
    for entry in args.entries:
        if any(r["entry"] == entry for r in rows):
            continue
        started = time.perf_counter()
        row = measure(entry, args, source, lambda n: train_subset(source.split("train"), n, 0))
        row["wall_s"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
        write(args.out, meta, rows, variants)
    print(Path(args.out + ".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
