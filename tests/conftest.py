"""Shared fixtures: quiet TensorFlow, and one tiny trained run that several pipeline tests reuse."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_shapes():
    """A small seeded slice of the embedded dataset: enough to learn something in seconds."""
    from tflkit.data.shapes import load_shapes

    return load_shapes(seed=0, sizes={"train": 1280, "val": 128, "test": 256})


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_shapes):
    """A trained test_mobilenetv3 run converted under the four default recipes."""
    from converters.export import export_run
    from tflkit.core.trainconfig import TrainConfig
    from tflkit.training.loop import train

    run_dir = tmp_path_factory.mktemp("run")
    config = TrainConfig(model="test_mobilenetv3", dataset="shapes", epochs=4, batch_size=32, lr=3e-3,
                         bn_momentum=0.9)
    train(config, run_dir, verbose=0, source=tiny_shapes)
    export_run(run_dir, source=tiny_shapes, calib_samples=64, log=lambda *_: None)
    return run_dir
