"""`tflkit models` counts MACs from the Keras layers (no conversion): the count must equal the one read from the
converted .tflite (tflkit/tflite/macs.py) for every family's tiny test variant."""

from __future__ import annotations

import pytest

from tflkit.models import create_model, list_models
from tflkit.models.summary import describe_models, keras_macs

TEST_VARIANTS = [n for n in list_models(include_test=True) if n.startswith("test_")]


@pytest.mark.parametrize("name", TEST_VARIANTS)
def test_keras_layer_macs_equal_the_tflite_count(name):
    from converters.macs import count_keras_macs

    model = create_model(name)
    assert keras_macs(model) == count_keras_macs(model).macs


def test_keras_macs_of_a_known_model():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8*4 outputs x 3*3*3
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)  # 4*4*4 outputs x 3*3
    x = keras.layers.SeparableConv2D(6, 3, padding="same")(x)  # 4*4*4*9 + 4*4*6*4
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5)(x)  # 5 x 6
    expected = 8 * 8 * 4 * 27 + 4 * 4 * 4 * 9 + (4 * 4 * 4 * 9 + 4 * 4 * 6 * 4) + 5 * 6
    assert keras_macs(keras.Model(inputs, outputs)) == expected


def test_describe_models_counts_every_model_without_initializing_weights(tmp_path):
    rows = describe_models(names=["test_resnet", "test_mobilenetv3"], compute_macs=True,
                           cache_path=tmp_path / "summary.json")
    from tflkit.models import count_params

    for row in rows:
        model = create_model(row["name"])  # built normally: initialized weights
        assert row["params"] == count_params(model) and row["macs"] == keras_macs(model)
