"""The model registry and the architectures: exact parameter counts, input sizes, Keras flavours, training."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
import tf_keras

from tflkit.core.errors import UsageError
from tflkit.models import count_params, create_model, get_spec, list_models

REFERENCE_MODELS = [
    "efficientnetv2_s", "mobilenetv3_small_100", "resnet18", "resnet8", "shufflenetv2_x0_5", "shufflenetv2_x1_0",
    "shufflenetv2_x1_5", "shufflenetv2_x2_0", "squeezenet1_0", "squeezenet1_1",
]
MEASURED_MODELS = [n for n in list_models() if get_spec(n).reference_params]  # every one with a reference count
TEST_MODELS = ["test_efficientnetv2", "test_mobilenetv3", "test_resnet", "test_shufflenetv2", "test_squeezenet"]

# Plain layers only: tfmot annotates these, the converter names them; Lambda/TFOpLambda would break both.
PLAIN_LAYERS = {
    "InputLayer", "Conv2D", "DepthwiseConv2D", "BatchNormalization", "ReLU", "Activation", "Add",
    "Multiply", "Concatenate", "ZeroPadding2D", "MaxPooling2D", "GlobalAveragePooling2D", "Dense", "Dropout",
    "Reshape", "Permute", "Cropping2D",
    "Rescaling",  # hard-swish's x + 3 and x / 6 (layers.hard_swish): weightless; tfmot leaves it float, calibrated
    "AveragePooling2D", "Flatten",  # resnet8's head, as the MLPerf Tiny reference (tfmot quantizes both)
}
# The classifier's input at 32x32 with --small-input, where it is not 4x4: resnet8 is a CIFAR network already
# (total stride 4, its reference's layout), and small_input changes nothing in it.
SMALL_INPUT_MAP = {"resnet8": (8, 8)}


def test_registry_lists_every_family():
    assert set(REFERENCE_MODELS) <= set(list_models())
    assert set(REFERENCE_MODELS) <= set(MEASURED_MODELS)
    assert list_models("test_*", include_test=True) == TEST_MODELS
    assert {get_spec(n).family for n in REFERENCE_MODELS} == {
        "efficientnetv2", "mobilenetv3", "resnet", "resnet8", "shufflenetv2", "squeezenet"}
    for name in list_models(include_test=True):
        assert get_spec(name).small_input_note, name
        assert get_spec(name).test_variant == name.startswith("test_")


def test_bad_arguments_name_the_value():
    with pytest.raises(UsageError, match="'resnet19'"):
        create_model("resnet19")
    with pytest.raises(UsageError, match="16"):
        create_model("test_resnet", image_size=16)


def test_unknown_model_lists_only_the_real_entries():
    with pytest.raises(UsageError) as error:
        get_spec("resnet19")
    choices = str(error.value).split("choose from: ")[1].split(", ")
    assert choices == list_models() and "test_" not in str(error.value)
    assert get_spec("test_resnet").test_variant  # test variants still resolve by name


@pytest.mark.parametrize("name", MEASURED_MODELS)
def test_reference_parameter_count_is_exact(name):
    spec = get_spec(name)
    model = create_model(name)
    assert model.input_shape == (None, spec.default_image_size, spec.default_image_size, 3)
    assert model.output_shape == (None, spec.default_num_classes)
    assert count_params(model) == spec.reference_params
    assert {type(layer).__name__ for layer in model.layers} <= PLAIN_LAYERS


@pytest.mark.parametrize("name", list_models())
def test_small_input_keeps_a_4x4_map_at_32x32(name):
    model = create_model(name, num_classes=10, image_size=32, small_input=True)
    pool = next(layer for layer in model.layers
                if isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.AveragePooling2D))
                and layer.name in ("pool", "logits"))
    assert tuple(pool.input.shape[1:3]) == SMALL_INPUT_MAP.get(name, (4, 4))
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("size", [32, 33, 47, 64])
@pytest.mark.parametrize("name", TEST_MODELS)
def test_any_input_size_from_32(name, size):
    model = create_model(name, num_classes=7, image_size=size)
    x = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype("float32")
    assert model(x, training=False).shape == (2, 7)


def test_squeezenet_pools_in_ceil_mode_like_torchvision():
    # 224 -> conv1 109 -> pool 54 -> pool 27 (ceil mode; floor would give 26) -> pool 13
    model = create_model("squeezenet1_0")
    assert model.get_layer("fire9_concat").output.shape[1:] == (13, 13, 512)
    model = create_model("squeezenet1_1")
    assert model.get_layer("fire9_concat").output.shape[1:] == (13, 13, 512)


def test_squeezenet1_1_layer_names_match_the_published_weights():
    names = {layer.name for layer in create_model("squeezenet1_1").layers if layer.trainable_weights}
    fires = {f"fire{i}_{part}" for i in range(2, 10) for part in ("squeeze1x1", "expand1x1", "expand3x3")}
    assert names == {"conv1", "conv10"} | fires
    assert create_model("squeezenet1_1").get_layer("fire2_squeeze1x1").use_bias


def test_shufflenet_split_and_shuffle_match_torch_semantics():
    from tflkit.models.shufflenetv2 import _channel_shuffle, _halves

    inputs = keras.Input((2, 3, 8))
    first, second = _halves(inputs, keras, "t")
    model = keras.Model(inputs, [first, second, _channel_shuffle(inputs, keras, "t")])
    x = np.random.default_rng(0).normal(size=(1, 2, 3, 8)).astype("float32")
    a, b, shuffled = (np.asarray(t) for t in model(x))
    np.testing.assert_array_equal(a, x[..., :4])  # torch.chunk(2, dim=1)
    np.testing.assert_array_equal(b, x[..., 4:])
    # view(2, C/2) -> transpose -> flatten: channel order 0, 4, 1, 5, 2, 6, 3, 7
    np.testing.assert_array_equal(shuffled, x[..., [0, 4, 1, 5, 2, 6, 3, 7]])


@pytest.mark.parametrize("name", TEST_MODELS)
def test_tf_keras_builds_the_same_model(name):
    for small_input in (False, True):
        ours = create_model(name, small_input=small_input)
        legacy = create_model(name, small_input=small_input, keras_module=tf_keras)
        assert isinstance(legacy, tf_keras.Model)
        assert count_params(legacy) == count_params(ours)
        assert [type(layer).__name__ for layer in legacy.layers] == [type(layer).__name__ for layer in ours.layers]


# Eager steps are 7x quicker than tracing a train function for tiny models; one traced case checks graph mode.
@pytest.mark.parametrize("size,small_input,eager", [(32, True, True), (96, False, True)])
@pytest.mark.parametrize("name", TEST_MODELS)
def test_trains_a_few_steps(name, size, small_input, eager):
    _train_steps(name, size, small_input, eager)


def test_trains_in_graph_mode():
    _train_steps("test_shufflenetv2", 32, True, eager=False)


def _train_steps(name, size, small_input, eager):
    keras.utils.set_random_seed(0)
    model = create_model(name, num_classes=10, image_size=size, small_input=small_input)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  run_eagerly=eager)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, size, size, 3)).astype("float32")
    y = rng.integers(0, 10, 8)
    before = [np.array(w) for w in model.trainable_weights]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    # every trainable weight got a gradient and moved
    assert all(not np.array_equal(b, np.array(w)) for b, w in zip(before, model.trainable_weights))


def test_describe_models_measures_once_then_reads_the_cache(tmp_path, monkeypatch):
    from tflkit.models import summary

    monkeypatch.setattr(summary, "SHIPPED", tmp_path / "no-shipped.json")
    cache = tmp_path / "summary.json"
    rows = summary.describe_models(names=["test_resnet", "test_squeezenet"], compute_macs=True, cache_path=cache)
    assert [r["name"] for r in rows] == ["test_resnet", "test_squeezenet"]
    assert rows[0]["params"] == count_params(create_model("test_resnet"))
    assert all(isinstance(r["macs"], int) and r["macs"] > 0 for r in rows)
    assert {"family", "image_size", "num_classes", "reference", "reference_params", "reference_macs",
            "small_input_note"} <= set(rows[0])

    def measure(*args):
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(summary, "_measure", measure)
    assert summary.describe_models(names=["test_resnet", "test_squeezenet"], cache_path=cache) == rows
    assert [r["name"] for r in summary.describe_models(cache_path=tmp_path / "none.json", names=[])] == []


def test_shipped_summary_is_current_and_answers_without_keras(tmp_path):
    """The package carries every registered model's row for its current code (stale: `python -m
    tflkit.models.summary`), its figures are what measuring gives, and reading them imports no Keras."""
    import json
    import subprocess
    import sys

    from tflkit.models import summary

    shipped = json.loads(summary.SHIPPED.read_text())
    missing = [n for n in list_models(include_test=True) if summary._cache_key(n) not in shipped]
    assert not missing, f"stale {summary.SHIPPED.name} for {missing}: run python -m tflkit.models.summary"
    for name in ("test_resnet", "test_squeezenet"):
        assert shipped[summary._cache_key(name)] == summary._measure(name, True, None)
    code = ("import sys; from tflkit.models.summary import describe_models; "
            f"rows = describe_models(include_test=True, cache_path={str(tmp_path / 'c.json')!r}); "
            "print(sum(r['macs'] is not None for r in rows), len(rows), 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == out[1] and out[2] == "False"
