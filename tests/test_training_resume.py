"""Training: a run killed mid-epoch (SIGKILL) and resumed ends exactly as an uninterrupted run; early stopping;
schedules; soft-label training; the mirrored strategy on two logical CPU devices."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tflkit.core.trainconfig import TrainConfig
from tflkit.training.loop import train

# Three epochs of test_mobilenetv3 on a few hundred shapes, with stateless augmentation, a warm-up + cosine
# schedule and label smoothing: every piece of state that resume must carry over.
CONFIG = dict(model="test_mobilenetv3", epochs=2, batch_size=32, lr=3e-3, bn_momentum=0.9, augment="basic",
              lr_schedule="cosine", warmup_epochs=0.5, label_smoothing=0.1)
SIZES = {"train": 256, "val": 64, "test": 32}

KILLED_RUN = """
import os, signal, sys
import keras
from tflkit.data.shapes import load_shapes
from tflkit.training.loop import TrainConfig, train

class KillMidEpoch(keras.callbacks.Callback):
    # SIGKILL, not an exception: nothing after this line runs, as when the machine dies
    def on_train_batch_end(self, batch, logs=None):
        if self._epoch == 1 and batch == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

train(TrainConfig(**{config}), sys.argv[1], verbose=0, source=load_shapes(seed=0, sizes={sizes}),
      callbacks=[KillMidEpoch()])
"""


@pytest.fixture(scope="module")
def shapes():
    from tflkit.data.shapes import load_shapes

    return load_shapes(seed=0, sizes=SIZES)


def test_run_killed_mid_epoch_resumes_to_the_same_history(tmp_path, shapes):
    whole = train(TrainConfig(**CONFIG), tmp_path / "whole", verbose=0, source=shapes)

    run = tmp_path / "killed"
    script = textwrap.dedent(KILLED_RUN).format(config=CONFIG, sizes=SIZES)
    proc = subprocess.run([sys.executable, "-c", script, str(run)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 1
    assert not (run / "model.keras").exists()

    resumed = train(TrainConfig(model="_"), run, resume=True, verbose=0, source=shapes)
    assert sorted(resumed) == sorted(whole)
    for key in whole:
        assert len(resumed[key]) == len(whole[key]) == 2, key
        np.testing.assert_allclose(resumed[key], whole[key], rtol=1e-4, atol=1e-5, err_msg=key)


def test_early_stopping_stops_and_resume_does_not_restart(tmp_path, shapes):
    # lr so small that val top-1 cannot improve after the first epoch
    config = TrainConfig(model="test_mobilenetv3", epochs=6, batch_size=64, lr=1e-9, patience=1, bn_momentum=0.0)
    history = train(config, tmp_path, verbose=0, source=shapes)
    assert len(history["val_top1"]) < 6
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["stopped"]
    again = train(config, tmp_path, resume=True, verbose=0, source=shapes)
    assert len(again["val_top1"]) == len(history["val_top1"])


def test_schedules_warm_up_then_follow_their_curve():
    from tflkit.training.schedules import WarmupSchedule

    cosine = WarmupSchedule("cosine", 1.0, total_steps=110, warmup_steps=10)
    assert float(cosine(0)) == pytest.approx(0.1) and float(cosine(10)) == pytest.approx(1.0)
    assert float(cosine(60)) == pytest.approx(0.5, abs=1e-6) and float(cosine(110)) == pytest.approx(0.0, abs=1e-6)
    step = WarmupSchedule("step", 1.0, total_steps=100, step_size=30, gamma=0.1)
    assert [round(float(step(s)), 6) for s in (0, 29, 30, 61)] == [1.0, 1.0, 0.1, 0.01]
    assert WarmupSchedule.from_config(cosine.get_config()).get_config() == cosine.get_config()


@pytest.mark.parametrize("preset", ["mixup", *(pytest.param(p, marks=pytest.mark.integration)
                                               for p in ("cutmix", "paper"))])
def test_soft_label_presets_train(tmp_path, shapes, preset):
    config = TrainConfig(model="test_mobilenetv3", epochs=1, batch_size=64, augment=preset, bn_momentum=0.9)
    history = train(config, tmp_path, verbose=0, source=shapes)
    assert np.isfinite(history["loss"][0]) and 0 <= history["val_top1"][0] <= 1


MIRRORED_RUN = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tflkit.data.shapes import load_shapes
from tflkit.training.loop import TrainConfig, make_strategy, train
assert make_strategy("mirrored").num_replicas_in_sync == 2
history = train(TrainConfig(model="test_mobilenetv3", epochs=1, batch_size=64, strategy="mirrored"), sys.argv[1],
                verbose=0, source=load_shapes(seed=0, sizes={"train": 256, "val": 64, "test": 32}))
print("REPLICAS-OK", history["val_top1"][0])
"""


@pytest.mark.integration
def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    proc = subprocess.run([sys.executable, "-c", MIRRORED_RUN, str(tmp_path / "run")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "REPLICAS-OK" in proc.stdout
    assert (tmp_path / "run" / "model.keras").is_file()
