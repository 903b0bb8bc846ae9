"""resnet8 is the MLPerf Tiny image-classification reference: same parameters, layers, output shapes, function and
MACs as their Keras code (a copy below), and the registry's training defaults are their recipe's."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
import tf_keras
from keras.layers import Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense, Flatten, Input
from keras.models import Model
from keras.regularizers import l2
from test_models import PLAIN_LAYERS, _train_steps

from tflkit.models import count_params, create_model, get_spec, train_config
from tflkit.models.summary import keras_macs

REFERENCE_TRAINABLE = 78_186
REFERENCE_BN_STATISTICS = 480  # moving mean and variance of the 7 BatchNorms: 2 * (3*16 + 2*32 + 2*64)
NORMALIZE_WEIGHTS = 6  # tflkit's frozen identity normalization: a (1, 1, 3, 1) kernel and 3 biases
NORMALIZE_MACS = 32 * 32 * 3


# `resnet_v1_eembc` from https://github.com/mlcommons/tiny/blob/1afd2c9820f795965a6134facd0b4dfae41ef23f/benchmark/
# training/image_classification/keras_model.py (commit 1afd2c9820f795965a6134facd0b4dfae41ef23f), copied as is but
# for Keras 3 imports (`keras.layers.add` for `tf.keras.layers.add`), the commented-out fourth stack left out and
# the comments shortened. Called with conv_filters=16: the benchmark's ResNet-8 (pretrainedResnet.h5, and the
# function's only setting before commit 9adec29055c3c82b7569e462c03bbcaea78eeca9 made it an argument, default 26).
def resnet_v1_eembc(conv_filters=26):
    # Resnet parameters
    input_shape=[32,32,3] # default size for cifar10
    num_classes=10 # default class number for cifar10
    num_filters = conv_filters # this should be 64 for an official resnet model

    # Input layer, change kernel size to 7x7 and strides to 2 for an official resnet
    inputs = Input(shape=input_shape)
    x = Conv2D(num_filters,
                  kernel_size=3,
                  strides=1,
                  padding='same',
                  kernel_initializer='he_normal',
                  kernel_regularizer=l2(1e-4))(inputs)
    x = BatchNormalization()(x)
    x = Activation('relu')(x)

    # First stack
    y = Conv2D(num_filters,
                  kernel_size=3,
                  strides=1,
                  padding='same',
                  kernel_initializer='he_normal',
                  kernel_regularizer=l2(1e-4))(x)
    y = BatchNormalization()(y)
    y = Activation('relu')(y)
    y = Conv2D(num_filters,
                  kernel_size=3,
                  strides=1,
                  padding='same',
                  kernel_initializer='he_normal',
                  kernel_regularizer=l2(1e-4))(y)
    y = BatchNormalization()(y)
    x = keras.layers.add([x, y])
    x = Activation('relu')(x)

    # Second stack
    num_filters = conv_filters * 2 # Filters need to be double for each stack
    y = Conv2D(num_filters,
                  kernel_size=3,
                  strides=2,
                  padding='same',
                  kernel_initializer='he_normal',
                  kernel_regularizer=l2(1e-4))(x)
    y = BatchNormalization()(y)
    y = Activation('relu')(y)
    y = Conv2D(num_filters,
                  kernel_size=3,
                  strides=1,
                  padding='same',
                  kernel_initializer='he_normal',
                  kernel_regularizer=l2(1e-4))(y)
    y = BatchNormalization()(y)
    # Adjust for change in dimension due to stride in identity
    x = Conv2D(num_filters,
                  kernel_size=1,
                  strides=2,
                  padding='same',
                  kernel_initializer='he_normal',
                  kernel_regularizer=l2(1e-4))(x)
    x = keras.layers.add([x, y])
    x = Activation('relu')(x)

    # Third stack
    num_filters = conv_filters * 4
    y = Conv2D(num_filters,
                  kernel_size=3,
                  strides=2,
                  padding='same',
                  kernel_initializer='he_normal',
                  kernel_regularizer=l2(1e-4))(x)
    y = BatchNormalization()(y)
    y = Activation('relu')(y)
    y = Conv2D(num_filters,
                  kernel_size=3,
                  strides=1,
                  padding='same',
                  kernel_initializer='he_normal',
                  kernel_regularizer=l2(1e-4))(y)
    y = BatchNormalization()(y)
    # Adjust for change in dimension due to stride in identity
    x = Conv2D(num_filters,
                  kernel_size=1,
                  strides=2,
                  padding='same',
                  kernel_initializer='he_normal',
                  kernel_regularizer=l2(1e-4))(x)
    x = keras.layers.add([x, y])
    x = Activation('relu')(x)

    # Final classification layer.
    pool_size = int(np.amin(x.shape[1:3]))
    x = AveragePooling2D(pool_size=pool_size)(x)
    y = Flatten()(x)
    outputs = Dense(num_classes,
                    activation='softmax',
                    kernel_initializer='he_normal')(y)

    # Instantiate model.
    model = Model(inputs=inputs, outputs=outputs)
    return model


@pytest.fixture(scope="module")
def reference():
    return resnet_v1_eembc(conv_filters=16)


@pytest.fixture(scope="module")
def ours():
    return create_model("resnet8")


def _size(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def _layers(model):
    """The layers that correspond one to one: all of tflkit's but its pixel normalization."""
    return [layer for layer in model.layers if layer.name != "normalize"]


def test_parameter_count_is_the_reference(reference, ours):
    spec = get_spec("resnet8")
    assert (spec.default_image_size, spec.default_num_classes) == (32, 10)
    assert spec.pretrained_source is None  # a CIFAR-10 model: no ImageNet weights
    assert _size(reference.trainable_weights) == REFERENCE_TRAINABLE == spec.reference_params
    assert _size(reference.non_trainable_weights) == REFERENCE_BN_STATISTICS
    assert reference.count_params() == 78_666
    assert count_params(ours) == _size(ours.trainable_weights) == REFERENCE_TRAINABLE
    assert _size(ours.non_trainable_weights) == REFERENCE_BN_STATISTICS + NORMALIZE_WEIGHTS
    assert ours.count_params() == reference.count_params() + NORMALIZE_WEIGHTS


def test_layers_and_output_shapes_are_the_reference(reference, ours):
    assert ours.input_shape == reference.input_shape == (None, 32, 32, 3)
    assert ours.output_shape == reference.output_shape == (None, 10)
    assert [(type(layer).__name__, tuple(layer.output.shape), [tuple(w.shape) for w in layer.weights])
            for layer in _layers(ours)] == \
           [(type(layer).__name__, tuple(layer.output.shape), [tuple(w.shape) for w in layer.weights])
            for layer in reference.layers]
    assert {type(layer).__name__ for layer in ours.layers} <= PLAIN_LAYERS
    for mine, theirs in zip(_layers(ours), reference.layers):
        if isinstance(theirs, Conv2D):
            for key in ("kernel_size", "strides", "padding", "use_bias", "kernel_initializer", "kernel_regularizer"):
                assert mine.get_config()[key] == theirs.get_config()[key], (mine.name, key)
        if isinstance(theirs, BatchNormalization):
            assert (mine.epsilon, mine.momentum) == (theirs.epsilon, theirs.momentum) == (1e-3, 0.99)
        if isinstance(theirs, AveragePooling2D):
            assert mine.pool_size == theirs.pool_size == (8, 8)
    assert ours.get_layer("logits").get_config()["activation"] == "linear"  # tflkit's logits; theirs softmax
    assert len(ours.losses) == len(reference.losses) == 9  # L2 1e-4 on the 9 conv kernels


def test_same_function_as_the_reference_with_its_weights(reference, ours):
    model = create_model("resnet8")
    keras.utils.set_random_seed(0)
    for mine, theirs in zip(_layers(model), reference.layers):
        mine.set_weights(theirs.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")  # raw pixels, as theirs
    probs = keras.activations.softmax(model(x, training=False))
    np.testing.assert_allclose(np.asarray(probs), np.asarray(reference(x, training=False)), rtol=1e-5, atol=1e-6)


def test_macs_are_stated(reference, ours):
    # conv 12,500,992 + dense 640, counted as tflkit counts (tflkit/models/summary.py, converters/macs.py)
    assert keras_macs(reference) == get_spec("resnet8").reference_macs == 12_501_632
    assert keras_macs(ours) == 12_501_632 + NORMALIZE_MACS


def test_keras_macs_equal_the_converted_count(ours):
    from converters.macs import count_keras_macs

    count = count_keras_macs(ours)
    assert count.macs == keras_macs(ours)
    assert count.by_op["AVERAGE_POOL_2D"] == 8 * 8 * 64  # the reference's head, not MEAN


def test_converts_to_the_reference_graph(tmp_path):
    """fp32 and int8 files carry the reference .tflite's ops (theirs: pretrainedResnet_quant.tflite, plus its
    SOFTMAX, less our normalization's DEPTHWISE_CONV_2D). XNNPACK has no int8 AVERAGE_POOL_2D: that one op runs on
    the built-in kernel (2 partitions), as it does in the reference's own int8 file."""
    from converters.convert import convert_model
    from tflkit.tflite.inspect import op_counts
    from tflkit.tflite.model import TFLiteClassifier
    from tflkit.tflite.runtime import delegation_of, load_interpreter

    images = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    keras.utils.set_random_seed(0)
    model = create_model("resnet8")
    for layer in model.layers:  # moving statistics from one batch: trained-like activation ranges for int8
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(images, training=True)
    expected = model.predict_on_batch(images[:4])
    ops = {"DEPTHWISE_CONV_2D": 1, "CONV_2D": 9, "ADD": 3, "AVERAGE_POOL_2D": 1, "FULLY_CONNECTED": 1}
    for recipe in ("fp32", "static_wi8_ai8"):
        path = tmp_path / f"resnet8.{recipe}.tflite"
        path.write_bytes(convert_model(model, recipe, images[:8] if recipe != "fp32" else None))
        assert op_counts(path) == ops, recipe
        d = delegation_of(load_interpreter(path, threads=1))
        assert set(d.reference_ops) <= {"AVERAGE_POOL_2D"} and d.delegated_nodes == d.total_nodes - sum(
            d.reference_ops.values()), (recipe, d)
        logits = TFLiteClassifier(path).predict(images[:4])
        tolerance = 1e-4 if recipe == "fp32" else 0.1
        np.testing.assert_allclose(logits, expected, rtol=0, atol=tolerance * np.abs(expected).max())


def test_train_defaults_are_the_mlperf_tiny_recipe():
    from tflkit.training.loop import _schedule

    config = train_config("resnet8")
    assert (config.optimizer, config.lr, config.batch_size) == ("adam", 1e-3, 32)
    steps = 1563  # 50,000 CIFAR-10 images at batch 32
    schedule = _schedule(config, config.lr, epochs=500, steps=steps)
    for epoch in (0, 1, 10, 499):  # their LearningRateScheduler: 0.001 * 0.99 ** epoch
        for step in (epoch * steps, epoch * steps + steps - 1):
            assert float(schedule(step)) == pytest.approx(0.001 * 0.99**epoch, rel=1e-5), (epoch, step)
    assert train_config("resnet8", batch_size=64).batch_size == 64  # a user's setting still wins


def test_small_input_changes_nothing():
    plain, small = create_model("resnet8"), create_model("resnet8", small_input=True)
    assert [(layer.name, tuple(layer.output.shape)) for layer in plain.layers] == \
           [(layer.name, tuple(layer.output.shape)) for layer in small.layers]


@pytest.mark.parametrize("size", [33, 64])
def test_other_input_sizes_pool_the_whole_last_map(size):
    model = create_model("resnet8", num_classes=7, image_size=size)
    last = -(-size // 4)  # two stride-2 'same' convs: ceil twice
    assert model.get_layer("pool").input.shape[1:3] == (last, last)
    assert model.get_layer("pool").output.shape[1:3] == (1, 1)
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    assert model(x, training=False).shape == (2, 7)


def test_tf_keras_builds_the_same_model(ours):
    legacy = create_model("resnet8", keras_module=tf_keras)
    assert isinstance(legacy, tf_keras.Model)
    assert count_params(legacy) == count_params(ours)
    assert [type(layer).__name__ for layer in legacy.layers] == [type(layer).__name__ for layer in ours.layers]
    assert len(legacy.losses) == 9


def test_trains_a_few_steps():
    _train_steps("resnet8", 32, False, eager=True)
