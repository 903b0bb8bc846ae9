"""Training runs the same compiled step as plain Keras: graph mode, one step per execution, no XLA, and no
per-batch Python in tflkit's callbacks (a batch hook would run in Python between compiled steps). What a step costs
is the model's: the run says its stem and MACs per image up front (the CIFAR-style stem at 64 px costs ~10x the
ImageNet stem, which is what a "10x slower than plain Keras" comparison of the two stems measured)."""

from __future__ import annotations

import keras
import pytest

from tflkit.core.run import Run
from tflkit.core.trainconfig import TrainConfig
from tflkit.training.loop import _ChanceWarning, _Checkpoint, _Validate, train

BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end")


@pytest.fixture(scope="module")
def shapes():
    from tflkit.data.shapes import load_shapes

    return load_shapes(seed=0, sizes={"train": 128, "val": 32, "test": 32})


class Probe(keras.callbacks.Callback):
    """Reads the compiled model's settings at the end of fit (epoch hooks only, like tflkit's own callbacks), and
    how often Keras traced its train step (the tf.function inside model.train_function)."""

    def on_train_end(self, logs=None):
        import inspect

        step = inspect.getclosurevars(self.model.train_function).nonlocals["multi_step_on_iterator"]
        self.seen = {"run_eagerly": self.model.run_eagerly, "jit_compile": self.model.jit_compile,
                     "steps_per_execution": self.model.steps_per_execution,
                     "traced": step.experimental_get_tracing_count()}


def test_tflkit_callbacks_add_no_per_batch_python(tmp_path):
    for callback in (_Checkpoint(Run(tmp_path), {}, {"best_val_top1": -1.0, "since_best": 0}, None, 0),
                     _ChanceWarning(10, TrainConfig(model="m"), print),
                     _Validate(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), None, None, 0)):
        for hook in BATCH_HOOKS:
            assert getattr(type(callback), hook) is getattr(keras.callbacks.Callback, hook), (callback, hook)


def test_a_run_compiles_the_plain_keras_step_and_states_its_cost(tmp_path, shapes):
    probe, lines = Probe(), []
    config = TrainConfig(model="test_mobilenetv3", epochs=2, batch_size=32, bn_momentum=0.9)
    train(config, tmp_path / "cifar_stem", verbose=0, source=shapes, callbacks=[probe], log=lines.append)
    # one compiled step, traced once and reused by every batch of both epochs: no retrace per epoch or per batch
    assert probe.seen == {"run_eagerly": False, "jit_compile": False, "steps_per_execution": 1, "traced": 1}

    standard = []
    train(TrainConfig(**{**config.__dict__, "small_input": False}), tmp_path / "imagenet_stem", verbose=0,
          source=shapes, log=standard.append)
    cifar_note = next(line for line in lines if line.startswith("training test_mobilenetv3"))
    standard_note = next(line for line in standard if line.startswith("training test_mobilenetv3"))
    assert "CIFAR-style stem" in cifar_note and "ImageNet stem:" in standard_note

    def macs(note):
        return float(note.rsplit(": ", 1)[1].split(" M MACs")[0].replace(",", ""))

    assert macs(cifar_note) > 4 * macs(standard_note)  # two stride-2 stages kept at full resolution


@pytest.mark.integration
def test_mixed_bfloat16_and_xla_are_chosen_recorded_and_saved_as_float32(tmp_path, shapes):
    """The two speed switches: a bf16 run computes in bf16 (float32 variables), says so in config.yaml, and saves
    a float32 model.keras (what conversion reads); XLA compiles the step when asked."""
    import yaml

    probe = Probe()
    config = TrainConfig(model="test_mobilenetv3", epochs=1, batch_size=32, bn_momentum=0.9,
                         precision="mixed_bfloat16", jit_compile=True)
    train(config, tmp_path / "bf16", verbose=0, source=shapes, callbacks=[probe], log=lambda m: None)
    assert probe.seen["jit_compile"] is True
    assert keras.config.dtype_policy().name == "float32"  # the process-wide policy is restored
    saved = yaml.safe_load((tmp_path / "bf16" / "config.yaml").read_text())
    assert saved["precision"] == "mixed_bfloat16" and saved["jit_compile"] is True
    trained = keras.models.load_model(Run(tmp_path / "bf16").last_checkpoint)
    assert {layer.dtype_policy.name for layer in trained.layers if layer.weights} == {"mixed_bfloat16"}
    model = keras.models.load_model(tmp_path / "bf16" / "model.keras")
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    for a, b in zip(model.get_weights(), trained.get_weights()):  # best == last after one epoch
        assert (a == b).all()
