"""Recomputed BatchNorm statistics (tflkit.training.bn_stats): the exact pooled mean and variance of each trainable
BatchNorm's input over the given images in training mode; frozen BatchNorms untouched."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")


def _model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(5, 3, name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def test_statistics_are_the_pooled_moments_of_each_input_in_training_mode():
    from tflkit.training.bn_stats import BatchNormStats

    keras.utils.set_random_seed(0)
    model = _model()
    images = np.random.default_rng(0).uniform(0, 255, (50, 8, 8, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(50))).batch(16)  # 16, 16, 16, 2: unequal
    model.get_layer("bn2").trainable = False
    frozen_mean = model.get_layer("bn2").moving_mean.numpy().copy()

    assert BatchNormStats(model, dataset, batches=4).update() == 50
    bn1 = model.get_layer("bn1")
    conv1 = keras.Model(model.inputs[0], model.get_layer("conv1").output)(images).numpy().astype(np.float64)
    np.testing.assert_allclose(bn1.moving_mean.numpy(), conv1.mean(axis=(0, 1, 2)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn1.moving_variance.numpy(), conv1.var(axis=(0, 1, 2)), rtol=1e-3)
    np.testing.assert_array_equal(model.get_layer("bn2").moving_mean.numpy(), frozen_mean)


def test_only_the_first_batches_count_and_a_model_without_batchnorm_is_a_no_op():
    from tflkit.training.bn_stats import BatchNormStats

    model = _model()
    images = np.random.default_rng(1).uniform(0, 255, (64, 8, 8, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(16)
    assert BatchNormStats(model, dataset, batches=2).update() == 32
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    assert BatchNormStats(plain, dataset).update() == 0


@pytest.mark.integration
def test_a_run_validates_and_saves_recomputed_statistics_and_trains_the_same(tmp_path, tiny_shapes):
    """Training itself uses batch statistics: recomputing the moving ones changes validation and the saved model,
    never the training curve."""
    from tflkit.core.trainconfig import TrainConfig
    from tflkit.training.loop import train

    kw = dict(model="test_mobilenetv3", epochs=2, batch_size=32, lr=3e-3)
    moving = train(TrainConfig(**kw, bn_stats_batches=0), tmp_path / "moving", verbose=0, source=tiny_shapes)
    recomputed = train(TrainConfig(**kw, bn_stats_batches=4), tmp_path / "recomputed", verbose=0,
                       source=tiny_shapes)
    assert moving["loss"] == recomputed["loss"] and moving["top1"] == recomputed["top1"]
    assert moving["val_loss"] != recomputed["val_loss"]

    model = keras.models.load_model(tmp_path / "recomputed" / "model.keras")
    bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    # the saved statistics are the pooled ones of the run's first 4 batches (epoch 0's order): recompute them
    from tflkit.data.pipeline import epoch_order, make_dataset
    from tflkit.training.bn_stats import BatchNormStats

    split = tiny_shapes.split("train")
    first = split.take(epoch_order(len(split), 0, 0)[:4 * 32])
    saved = bn.moving_mean.numpy().copy()
    BatchNormStats(model, make_dataset(first, 32, 32), batches=4).update()
    np.testing.assert_allclose(saved, bn.moving_mean.numpy(), rtol=1e-5, atol=1e-5)
