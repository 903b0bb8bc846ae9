"""Training throughput (images/s) of the real CIFAR-10 input pipeline against the same model fed in-memory tensors.

    python benchmarks/data_pipeline_throughput.py [--data-dir ~/.cache/tflkit-data] [--model mobilenetv3_small_100]

One process, alternating the two feeds over several repetitions after a warm-up: a fit of `--steps` batches each
time. "tensors" is one fixed batch already in memory as a tensor, repeated (no input work at all); "pipeline" is
make_dataset on the CIFAR-10 train split (gather, cast, per-epoch seeded order, batch, prefetch), with and
without the `basic` augmentation. Medians and min-max spread; writes benchmarks/results/data_pipeline_throughput.md
and .json. The pipeline passes when its median is at least 95% of the tensors' median.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="~/.cache/tflkit-data")
    p.add_argument("--model", default="mobilenetv3_small_100")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--repeats", type=int, default=2, help="timed epochs per fit (after one warm-up epoch)")
    p.add_argument("--rounds", type=int, default=3, help="passes over the feeds, alternating them")
    p.add_argument("--with-augment", action="store_true", help="also time the pipeline with basic augmentation")
    args = p.parse_args(argv)

    from tflkit.tfenv import quiet_tensorflow

    quiet_tensorflow()
    import keras
    import tensorflow as tf

    from tflkit.data import load_dataset
    from tflkit.data.augment import make_augment
    from tflkit.data.pipeline import make_dataset
    from tflkit.models import create_model
    from tflkit.training import TrainConfig, compile_for_training

    source = load_dataset("cifar10", data_dir=args.data_dir)
    split = source.split("train")
    config = TrainConfig(model=args.model, batch_size=args.batch_size, bn_momentum=0.9)
    model = create_model(args.model, num_classes=10, input_size=args.image_size, small_input=True)
    compile_for_training(model, config, 10, keras)

    x = tf.constant(split.images[: args.batch_size].astype("float32"))
    y = tf.constant(split.labels[: args.batch_size])
    epochs_per_fit = 1 + args.repeats  # the first epoch of each fit is a warm-up (tracing, prefetch filling)
    epochs_needed = args.rounds * epochs_per_fit * args.steps * args.batch_size // len(split) + 2
    feeds = {
        "tensors": tf.data.Dataset.from_tensors((x, y)).repeat(),
        "pipeline": make_dataset(split, args.image_size, args.batch_size, shuffle=True, epochs=epochs_needed,
                                 drop_remainder=True),
    }
    if args.with_augment:
        feeds["pipeline_basic_aug"] = make_dataset(split, args.image_size, args.batch_size, shuffle=True,
                                                   epochs=epochs_needed, drop_remainder=True,
                                                   augment=make_augment("basic"))

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if epoch:  # skip the warm-up epoch
                self.rates.append(args.steps * args.batch_size / (time.perf_counter() - self.start))

    rates = {name: [] for name in feeds}
    for _ in range(args.rounds):  # rounds alternate the feeds, so a load change on the machine hits both
        for name, feed in feeds.items():
            timer = EpochTimer()
            timer.rates = rates[name]
            model.fit(feed, steps_per_epoch=args.steps, epochs=epochs_per_fit, verbose=0, callbacks=[timer])

    base = statistics.median(rates["tensors"])
    result = {
        "model": args.model, "image_size": args.image_size, "batch_size": args.batch_size, "steps": args.steps,
        "repeats": args.repeats, "rounds": args.rounds, "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
        "feeds": {name: {"median_images_per_s": statistics.median(r), "min_images_per_s": min(r),
                         "max_images_per_s": max(r), "ratio_to_tensors": statistics.median(r) / base}
                  for name, r in rates.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data_pipeline_throughput.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"# Training throughput: CIFAR-10 tf.data pipeline vs in-memory tensors",
        "",
        f"{args.model} at {args.image_size}x{args.image_size}, batch {args.batch_size}, Adam; {args.steps} steps "
        f"per timed epoch; {args.rounds} rounds alternating the feeds, each a fit of one warm-up and "
        f"{args.repeats} timed epochs; "
        f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}.",
        f"Command: `python benchmarks/data_pipeline_throughput.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        "| feed | median images/s | min | max | ratio to tensors |",
        "|---|---|---|---|---|",
    ]
    for name, r in result["feeds"].items():
        lines.append(f"| {name} | {r['median_images_per_s']:.0f} | {r['min_images_per_s']:.0f} | "
                     f"{r['max_images_per_s']:.0f} | {r['ratio_to_tensors']:.3f} |")
        print(f"{name:<20} median {r['median_images_per_s']:7.0f} img/s  (min {r['min_images_per_s']:.0f}, "
              f"max {r['max_images_per_s']:.0f})  ratio {r['ratio_to_tensors']:.3f}")
    (RESULTS / "data_pipeline_throughput.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
