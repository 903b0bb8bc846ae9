"""Shared helpers of the quantization tests: a tiny trained run on a small `shapes` set."""

from __future__ import annotations

from pathlib import Path

SIZES = {"train": 512, "val": 96, "test": 96}


def small_shapes():
    from tflkit.data.shapes import load_shapes

    source = load_shapes(seed=0, sizes=SIZES)
    source.name = "shapes"
    return source


def make_run(run_dir: Path, model: str, epochs: int = 1, source=None):
    """A run directory as `tflkit train` leaves it, trained briefly on `source` (32x32, small input stem)."""
    from tflkit.core.trainconfig import TrainConfig
    from tflkit.training.loop import train

    source = source or small_shapes()
    config = TrainConfig(model=model, dataset="shapes", image_size=32, epochs=epochs, batch_size=64, lr=3e-3,
                         bn_momentum=0.9)
    train(config, run_dir, verbose=0, source=source)
    return source
