"""--deterministic: two runs of the same small training give bit-identical weights (each in a fresh process, as
`tflkit train` runs: op determinism is process-wide and cannot be switched off again), and the run records it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")

TRAIN = """
import sys
from tflkit.data.shapes import load_shapes
from tflkit.training.loop import TrainConfig, train
source = load_shapes(seed=0, sizes={"train": 256, "val": 64, "test": 64})
train(TrainConfig(model="test_mobilenetv3", epochs=2, batch_size=32, lr=3e-3, augment="basic",
                  deterministic=True), sys.argv[1], verbose=0, source=source)
# identical weights alone prove little where default runs are identical too (they were on the AMX machine):
# the flag must have switched TensorFlow's op determinism and the inter-op threads
import tensorflow as tf
from tensorflow.python.framework import config
assert config.is_op_determinism_enabled(), "op determinism is off"
assert tf.config.threading.get_inter_op_parallelism_threads() == 1, "inter-op threads not 1"
"""


def _weights(run_dir):
    import keras

    return keras.models.load_model(run_dir / "checkpoints" / "last.keras").get_weights()


@pytest.mark.integration
def test_two_deterministic_runs_give_bit_identical_weights(tmp_path):
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", TRAIN, str(tmp_path / name)], check=True, timeout=300)
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    sessions = json.loads((tmp_path / "a" / "environment.json").read_text())
    assert len(sessions) == 1 and sessions[0]["deterministic"] is True and sessions[0]["from_epoch"] == 0
    assert sessions[0]["tensorflow"] and "cpu_features" in sessions[0]
