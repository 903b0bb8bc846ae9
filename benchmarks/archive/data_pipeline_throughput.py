"""Training throughput (images/s) of the real CIFAR-10 input pipeline against the same model fed in-memory tensors.

    python -m benchmarks.archive.data_pipeline_throughput [--data-dir ~/.cache/tflkit-data]
                                                          [--model mobilenetv3_small_100]

One process, alternating the two feeds over several repetitions after a warm-up: a fit of `--steps` batches each
time. "tensors" is one fixed batch already in memory as a tensor, repeated (no input work at all); "pipeline" is
make_dataset on the CIFAR-10 train split (gather, cast, per-epoch seeded order, batch, prefetch), with and
without the `basic` augmentation. Medians and min-max spread; writes benchmarks/results/data_pipeline_throughput.md
and .json. The pipeline passes when its median is at least 95% of the tensors' median.

Archived (issue 22): whether the CIFAR-10 tf.data pipeline keeps up with in-memory tensors was answered (median
paired ratio 1.016, the 0.95 goal met: benchmarks/results/data_pipeline_throughput.md); training throughput is
measured end to end by benchmarks/train_throughput.py. Kept as the record of how that result was made, and runnable:
from the repository root, `python -m benchmarks.archive.data_pipeline_throughput` (benchmarks.harness puts the
checkout on the path).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from benchmarks.harness import RESULTS


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

    from tflkit.core.tfenv import quiet_tensorflow

    quiet_tensorflow()
    import keras
    import tensorflow as tf

    from tflkit.core.fileio import atomic_write_text
    from tflkit.core.trainconfig import TrainConfig
    from tflkit.data import load_dataset
    from tflkit.data.augment import make_augment
    from tflkit.data.pipeline import make_dataset
    from tflkit.models import create_model
    from tflkit.training.loop import compile_for_training

    source = load_dataset("cifar10", data_dir=args.data_dir)
    split = source.split("train")
    config = TrainConfig(model=args.model, batch_size=args.batch_size, bn_momentum=0.9)
    model = create_model(args.model, num_classes=10, image_size=args.image_size, small_input=True)
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
    paired = {name: [] for name in feeds if name != "tensors"}  # per round: this feed's rate / the tensors' rate
    for round_index in range(args.rounds):
        # Each round runs every feed back to back, in an order that flips every round, and is compared within
        # itself: the machine's slow drifts hit both sides of a ratio alike.
        names = list(feeds) if round_index % 2 == 0 else list(feeds)[::-1]
        this_round = {}
        for name in names:
            timer = EpochTimer()
            timer.rates = []
            model.fit(feeds[name], steps_per_epoch=args.steps, epochs=epochs_per_fit, verbose=0, callbacks=[timer])
            rates[name] += timer.rates
            this_round[name] = statistics.median(timer.rates)
        for name in paired:
            paired[name].append(this_round[name] / this_round["tensors"])

    base = statistics.median(rates["tensors"])
    pipeline_cpu_ms = _cpu_ms_per_batch(feeds["pipeline"], batches=200)
    result = {
        "model": args.model, "image_size": args.image_size, "batch_size": args.batch_size, "steps": args.steps,
        "repeats": args.repeats, "rounds": args.rounds, "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
        "pipeline_alone_cpu_ms_per_batch": pipeline_cpu_ms,
        "feeds": {name: {"median_images_per_s": statistics.median(r), "min_images_per_s": min(r),
                         "max_images_per_s": max(r), "ratio_to_tensors": statistics.median(r) / base,
                         "paired_ratios": paired.get(name, [])}
                  for name, r in rates.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "data_pipeline_throughput.json", json.dumps(result, indent=1) + "\n")
    lines = [
        "# Training throughput: CIFAR-10 tf.data pipeline vs in-memory tensors",
        "",
        f"{args.model} at {args.image_size}x{args.image_size}, batch {args.batch_size}, Adam; {args.steps} steps "
        f"per timed epoch; {args.rounds} rounds alternating the feeds, each a fit of one warm-up and "
        f"{args.repeats} timed epochs; "
        f"{os.cpu_count()} CPU cores, TensorFlow {tf.__version__}.",
        f"Command: `python -m benchmarks.archive.data_pipeline_throughput {' '.join(sys.argv[1:])}`".rstrip(),
        f"The pipeline alone (no model) spends {pipeline_cpu_ms:.2f} ms of CPU per batch of {args.batch_size}, "
        f"against {1e3 * args.batch_size / base:.0f} ms of wall time per training step fed from tensors.",
        "",
        "| feed | median images/s | min | max | ratio of medians | median paired ratio (min..max) | goal >= 0.95 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in result["feeds"].items():
        pairs = r["paired_ratios"]
        pair_text = f"{statistics.median(pairs):.3f} ({min(pairs):.3f}..{max(pairs):.3f})" if pairs else "-"
        verdict = ("met" if statistics.median(pairs) >= 0.95 else "NOT met") if pairs else "-"
        lines.append(f"| {name} | {r['median_images_per_s']:.0f} | {r['min_images_per_s']:.0f} | "
                     f"{r['max_images_per_s']:.0f} | {r['ratio_to_tensors']:.3f} | {pair_text} | {verdict} |")
        print(f"{name:<20} median {r['median_images_per_s']:7.0f} img/s  (min {r['min_images_per_s']:.0f}, "
              f"max {r['max_images_per_s']:.0f})  ratio {r['ratio_to_tensors']:.3f}  paired {pair_text}")
    atomic_write_text(RESULTS / "data_pipeline_throughput.md", "\n".join(lines) + "\n")


def _cpu_ms_per_batch(dataset, batches: int) -> float:
    """Process CPU time (user + system, all threads) per batch of iterating `dataset` alone."""
    import resource

    iterator = iter(dataset)
    next(iterator)  # start-up (prefetch threads, first map) is not per-batch work
    before = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(batches):
        next(iterator)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return 1e3 * cpu / batches


if __name__ == "__main__":
    main()
