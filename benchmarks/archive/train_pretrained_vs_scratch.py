"""SqueezeNet 1.1 on CIFAR-10 at 64x64: ImageNet weights (ported) against from scratch, after the same budget.

    python -m benchmarks.archive.train_pretrained_vs_scratch [--data-dir ~/.cache/tflkit-data] [--train-limit 5000]

Both runs see the same stratified subset of training images for the same number of epochs (pretrained: head-only
epochs then fine-tuning epochs; scratch: the same total), then are scored on the full CIFAR-10 test split.
Writes benchmarks/results/train_pretrained_vs_scratch.md.

Archived (issue 22): whether ported ImageNet weights help SqueezeNet 1.1 on CIFAR-10 at a small budget was answered
(64.30% against 16.44%: benchmarks/results/train_pretrained_vs_scratch.md). Kept as the record of how that result
was made, and runnable: from the repository root, `python -m benchmarks.archive.train_pretrained_vs_scratch`
(benchmarks.harness puts the checkout on the path).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.harness import RESULTS, ROOT

WEIGHTS = (ROOT.parent / "shared" / "data" / "weights" / "squeezenet"
           / "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5")
RESULT = RESULTS / "train_pretrained_vs_scratch.md"


def test_top1(run_dir, source, image_size):
    import keras

    from tflkit.data.pipeline import make_dataset

    model = keras.models.load_model(Path(run_dir) / "model.keras")
    correct = total = 0
    for x, y in make_dataset(source.split("test"), image_size, 250):
        correct += int((model.predict_on_batch(x).argmax(-1) == y.numpy()).sum())
        total += len(y)
    return correct / total


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="~/.cache/tflkit-data")
    p.add_argument("--train-limit", type=int, default=5000)
    p.add_argument("--head-epochs", type=int, default=1)
    p.add_argument("--finetune-epochs", type=int, default=1)
    p.add_argument("--image-size", type=int, default=64)
    args = p.parse_args(argv)

    from tflkit.core.trainconfig import TrainConfig
    from tflkit.data import load_dataset
    from tflkit.training.loop import train

    source = load_dataset("cifar10", data_dir=args.data_dir)
    epochs = args.head_epochs + args.finetune_epochs
    common = dict(model="squeezenet1_1", dataset="cifar10", data_dir=args.data_dir, image_size=args.image_size,
                  batch_size=64, lr=1e-3, optimizer="adam", train_limit=args.train_limit)
    runs = {
        "pretrained": TrainConfig(**common, epochs=args.head_epochs, pretrained=str(WEIGHTS),
                                  finetune_epochs=args.finetune_epochs, finetune_lr=1e-4),
        "scratch": TrainConfig(**common, epochs=epochs),
    }
    rows = []
    for name, config in runs.items():
        with tempfile.TemporaryDirectory() as run_dir:
            start = time.perf_counter()
            train(config, run_dir, verbose=2, source=source)
            seconds = time.perf_counter() - start
            top1 = test_top1(run_dir, source, args.image_size)
        rows.append((name, top1, seconds))
        print(f"{name}: test top1 {100 * top1:.2f}%  ({seconds:.0f} s)", flush=True)

    lines = [
        "# SqueezeNet 1.1, CIFAR-10 at 64x64: ImageNet weights vs from scratch",
        "",
        f"Budget: {args.train_limit:,} training images (stratified subset of CIFAR-10 train, seed 0), "
        f"{epochs} epochs each, batch 64, Adam.",
        f"Pretrained: {args.head_epochs} epoch(s) head only (backbone frozen) at lr 1e-3, then "
        f"{args.finetune_epochs} epoch(s) all layers at 1e-4. Scratch: {epochs} epochs at 1e-3.",
        "Test: the full CIFAR-10 test split (10,000 images, from the materialized shared data).",
        "Command: `python -m benchmarks.archive.train_pretrained_vs_scratch`",
        "",
        "| run | test top1 | train time s |",
        "|---|---|---|",
        *[f"| {name} | {100 * top1:.2f}% | {seconds:.0f} |" for name, top1, seconds in rows],
        "",
    ]
    RESULT.write_text("\n".join(lines))
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
