"""Training images/s of `tflkit.training.train` against plain Keras fitting the same model, side by side.

    python benchmarks/train_throughput.py [--data-dir DIR] [--entries mobilenetv3_small_100:64:cifar ...]

An entry is MODEL:SIZE:STEM, STEM `cifar` (small_input: no early downsampling, tflkit's default at 64 px and below)
or `standard` (the ImageNet stem, `create_model`'s default). For each entry and round, in one process:
- tflkit: `train()` on a stratified subset of real CIFAR-10 (its pipeline, loss, metrics, schedule, checkpoint
  and chance-warning callbacks, run directory), 2 epochs;
- plain: `create_model` of the same model and stem, Adam, sparse categorical cross-entropy, `model.fit` on the
  same images already in memory as numpy arrays, 2 epochs.
Steady state is the median step time of the second epoch (the first holds tf.function tracing, reported apart as
"first step"). Medians and min-max over rounds; the ratio is tflkit / plain images/s. Records the CPU and its
features. Writes benchmarks/results/train_throughput.{md,json}.
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

RESULTS = Path(__file__).resolve().parent / "results"


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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="~/.cache/tflkit-data/cifar-10-batches-py")
    p.add_argument("--entries", nargs="+", default=["mobilenetv3_small_100:64:cifar",
                                                    "mobilenetv3_small_100:64:standard"])
    p.add_argument("--train-limit", type=int, default=640)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS / "train_throughput"))
    args = p.parse_args(argv)

    from tflkit.tfenv import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from tflkit.data import load_dataset
    from tflkit.data.pipeline import load_images
    from tflkit.machine import cpu_features, cpu_name
    from tflkit.models import create_model
    from tflkit.training import TrainConfig, train, train_subset

    source = load_dataset("cifar10", data_dir=os.path.expanduser(args.data_dir), seed=0)
    split = train_subset(source.split("train"), args.train_limit, 0)
    rows = []
    for entry in args.entries:
        model_name, size, stem = entry.split(":")
        size, small = int(size), stem == "cifar"
        x, y = load_images(split, size), split.labels
        sides = {"tflkit": [], "plain": []}
        for rnd in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                timer = _timer(keras)
                config = TrainConfig(model=model_name, dataset="cifar10", data_dir=os.path.expanduser(args.data_dir),
                                     image_size=size, small_input=small, epochs=2, batch_size=args.batch_size,
                                     train_limit=args.train_limit, seed=rnd)
                train(config, Path(tmp) / "run", verbose=0, source=source, callbacks=[timer], log=lambda m: None)
                sides["tflkit"].append(timer.summary(args.batch_size))
            keras.utils.set_random_seed(rnd)
            model = create_model(model_name, num_classes=source.num_classes, input_size=size, small_input=small)
            model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
            timer = _timer(keras)
            model.fit(x, y, batch_size=args.batch_size, epochs=2, shuffle=True, verbose=0, callbacks=[timer])
            sides["plain"].append(timer.summary(args.batch_size))
            keras.backend.clear_session()
        row = {"model": model_name, "image_size": size, "stem": stem}
        for side, runs in sides.items():
            ips = [r["images_per_s"] for r in runs]
            row[side] = {"images_per_s_median": statistics.median(ips), "images_per_s_min": min(ips),
                         "images_per_s_max": max(ips),
                         "first_step_s_median": statistics.median(r["first_step_s"] for r in runs)}
        ratios = [a["images_per_s"] / b["images_per_s"] for a, b in zip(sides["tflkit"], sides["plain"])]
        row["ratio_median"], row["ratio_min"], row["ratio_max"] = statistics.median(ratios), min(ratios), max(ratios)
        rows.append(row)
        print(json.dumps(row), flush=True)

    meta = {"cpu": cpu_name(), "cpu_features": cpu_features(), "cores": os.cpu_count(),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"), "batch_size": args.batch_size,
            "train_limit": args.train_limit, "rounds": args.rounds, "date": time.strftime("%Y-%m-%d")}
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [f"# Training throughput: tflkit train vs plain Keras ({meta['date']})", "",
             f"CPU: {meta['cpu']}, {meta['cores']} cores, features {' '.join(meta['cpu_features']) or 'none'}; "
             f"batch {args.batch_size}, {args.train_limit} CIFAR-10 images, {args.rounds} rounds, oneDNN "
             f"{meta['onednn']}. Command: `python benchmarks/train_throughput.py "
             f"--entries {' '.join(args.entries)}`", "",
             "| model | size | stem | tflkit img/s (min-max) | plain img/s (min-max) | ratio median (min-max) "
             "| first step tflkit / plain |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        t, q = r["tflkit"], r["plain"]
        lines.append(f"| {r['model']} | {r['image_size']} | {r['stem']} | {t['images_per_s_median']:.1f} "
                     f"({t['images_per_s_min']:.1f}-{t['images_per_s_max']:.1f}) | {q['images_per_s_median']:.1f} "
                     f"({q['images_per_s_min']:.1f}-{q['images_per_s_max']:.1f}) | {r['ratio_median']:.2f} "
                     f"({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) | {t['first_step_s_median']:.1f} s / "
                     f"{q['first_step_s_median']:.1f} s |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
