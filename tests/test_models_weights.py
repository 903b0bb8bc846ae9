"""Normalization of ported weights: what the SqueezeNet 1.1 port does to the input, what the spec and card say."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from pathlib import Path

import numpy as np
import pytest

from tflkit.models import create_model, get_spec, list_models
from tflkit.models.registry import IMAGENET
from tflkit.models.squeezenet import CAFFE

SQUEEZENET_H5 = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "weights" / "squeezenet"
                 / "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5")
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)  # keras.applications "caffe" preprocessing


def test_spec_states_the_ported_normalization():
    spec = get_spec("squeezenet1_1")
    assert spec.normalization == IMAGENET and (spec.mean, spec.std) == (IMAGENET.mean, IMAGENET.std)
    assert spec.pretrained_normalization == CAFFE
    np.testing.assert_allclose(CAFFE.mean, CAFFE_MEAN_BGR[::-1], rtol=1e-6)
    assert CAFFE.std == (1.0, 1.0, 1.0)
    # only the models whose weights port sets another normalization differ (the TF-slim .tflite: (p - 128) / 127)
    assert [n for n in list_models() if get_spec(n).pretrained_normalization] == ["mobilenetv3_small_100_tf",
                                                                                  "squeezenet1_1"]


def test_card_normalization_is_read_from_the_model():
    from converters.model_card import model_normalization

    spec = get_spec("squeezenet1_1")
    model = create_model("squeezenet1_1", num_classes=10, image_size=32, small_input=True)
    built = model_normalization(model, spec)
    assert built["name"] == "imagenet"
    np.testing.assert_allclose(built["mean"], IMAGENET.mean, rtol=1e-5)
    np.testing.assert_allclose(built["std"], IMAGENET.std, rtol=1e-5)

    norm = model.get_layer("normalize")
    norm.set_weights([np.ones((1, 1, 3, 1), np.float32), -np.array(CAFFE.mean, np.float32)])  # what the port sets
    assert model_normalization(model, spec) == {"name": "caffe", "mean": list(CAFFE.mean),
                                                                    "std": [1.0, 1.0, 1.0]}

    norm.set_weights([np.full((1, 1, 3, 1), 0.5, np.float32), np.zeros(3, np.float32)])
    custom = model_normalization(model, spec)
    assert custom == {"name": "custom", "mean": [0.0, 0.0, 0.0], "std": [2.0, 2.0, 2.0]}


@pytest.mark.data
def test_ported_squeezenet_on_rgb_is_the_caffe_model_on_bgr_minus_mean():
    """The port (conv1's channels reversed, mean-only normalization inside) computes what the Keras-1 original
    computes on Caffe-preprocessed input: x[..., ::-1] - (103.939, 116.779, 123.68), unscaled."""
    if not SQUEEZENET_H5.is_file():
        pytest.skip("no shared SqueezeNet weights")
    import h5py
    import keras

    from tflkit.weights.load import load_weights_file

    ported = create_model("squeezenet1_1", num_classes=10, image_size=64)
    load_weights_file(ported, SQUEEZENET_H5)
    # The original, by hand: the file's kernels as they are (conv1 reads BGR), no normalization in the model.
    original = create_model("squeezenet1_1", num_classes=10, image_size=64)
    with h5py.File(SQUEEZENET_H5, "r") as f:
        for layer in f.attrs["layer_names"]:
            layer = layer.decode() if isinstance(layer, bytes) else str(layer)
            group = f.get(layer)
            if group is None or not len(group):
                continue
            arrays = []
            group.visititems(lambda _, obj, found=arrays: found.append(obj[()]) if isinstance(obj, h5py.Dataset)
                             else None)
            kernel = next(a for a in arrays if a.ndim == 4)
            bias = next(a for a in arrays if a.ndim == 1)
            original.get_layer(layer.replace("/", "_")).set_weights([kernel, bias])
    original.get_layer("normalize").set_weights([np.ones((1, 1, 3, 1), np.float32), np.zeros(3, np.float32)])

    rgb = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    features = [keras.Model(m.input, m.get_layer("fire9_concat").output) for m in (ported, original)]
    got = features[0].predict(rgb, verbose=0)
    want = features[1].predict(rgb[..., ::-1] - CAFFE_MEAN_BGR, verbose=0)
    assert np.abs(want).max() > 10  # real activations, not a dead network
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3 * np.abs(want).max())


# Keras 3 `save_weights("x.weights.h5")` files, through the paths a user reaches them by: `--pretrained PATH`
# (tflkit.training.transfer.load_pretrained) and tflkit.weights.load.load_weights_file.

def _randomized(name, num_classes, seed):
    """A tiny registry model whose every weight (BatchNorm statistics too) is seeded noise, so a port that
    leaves anything at its initial value shows."""
    model = create_model(name, num_classes=num_classes, image_size=32, small_input=True)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


def _weighted(model):
    return [layer.name for layer in model.layers if layer.weights]


def _assert_same_weights(a, b, names):
    for name in names:
        for wa, wb in zip(a.get_layer(name).get_weights(), b.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(wa, wb, err_msg=name)


def test_keras3_weights_file_ports_every_tensor(tmp_path):
    from tflkit.training.transfer import load_pretrained
    from tflkit.weights.load import copy_matching_weights, weights_from_keras3_h5

    source = _randomized("test_mobilenetv3", 10, seed=0)
    path = tmp_path / "src.weights.h5"
    source.save_weights(path)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    want = source.predict(x, verbose=0)

    target = _randomized("test_mobilenetv3", 10, seed=2)
    assert not np.allclose(target.predict(x, verbose=0), want, atol=1e-3)  # the port has something to do
    report = load_pretrained(target, str(path), "test_mobilenetv3")  # what --pretrained PATH runs
    assert sorted(report["loaded_layers"]) == sorted(_weighted(source)) and report["skipped_layers"] == []
    _assert_same_weights(source, target, _weighted(source))
    np.testing.assert_allclose(target.predict(x, verbose=0), want, rtol=0, atol=1e-5)

    named = weights_from_keras3_h5(path)  # the function itself: keyed by layer name
    assert sorted(named) == sorted(_weighted(source))
    other = _randomized("test_mobilenetv3", 10, seed=3)
    assert copy_matching_weights(other, named) == (_weighted(other), [])
    np.testing.assert_allclose(other.predict(x, verbose=0), want, rtol=0, atol=1e-5)


def test_keras3_weights_file_other_head_ports_backbone_skips_classifier(tmp_path):
    import keras

    from tflkit.training.transfer import load_pretrained

    source = _randomized("test_mobilenetv3", 10, seed=0)
    path = tmp_path / "src.weights.h5"
    source.save_weights(path)
    target = _randomized("test_mobilenetv3", 5, seed=2)
    head_before = target.get_layer("logits").get_weights()

    report = load_pretrained(target, str(path), "test_mobilenetv3")
    assert report["skipped_layers"] == ["logits"]
    backbone = [n for n in _weighted(source) if n != "logits"]
    assert sorted(report["loaded_layers"]) == sorted(backbone)
    _assert_same_weights(source, target, backbone)
    for before, after in zip(head_before, target.get_layer("logits").get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)  # the classifier keeps its own initialization
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    features = [keras.Model(m.input, m.get_layer("logits").input) for m in (source, target)]
    np.testing.assert_allclose(features[1].predict(x, verbose=0), features[0].predict(x, verbose=0),
                               rtol=0, atol=1e-5)


def test_keras3_weights_file_matching_no_layer_is_one_clear_line(tmp_path):
    import keras

    from tflkit.core.errors import ModelFileError
    from tflkit.weights.load import load_weights_file

    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="unrelated_dense")])
    path = tmp_path / "other.weights.h5"
    other.save_weights(path)
    model = create_model("test_resnet", num_classes=10, image_size=32, small_input=True)
    with pytest.raises(ModelFileError, match="no layer") as err:
        load_weights_file(model, path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "unrelated_dense" in message


def test_keras3_weights_file_without_layer_names_maps_by_structure(tmp_path):
    """Keras 3 writes the layer's name as the `name` attribute of each `layers/<class>_<i>/vars` group; a file
    without those attributes is read the way Keras reads it, by class and position, when the model's layer
    structure is the file's."""
    import h5py

    from tflkit.core.errors import ModelFileError
    from tflkit.weights.load import load_weights_file

    source = _randomized("test_mobilenetv3", 10, seed=0)
    path = tmp_path / "src.weights.h5"
    source.save_weights(path)
    with h5py.File(path, "r+") as f:
        for group in f["layers"].values():
            del group["vars"].attrs["name"]
    target = _randomized("test_mobilenetv3", 5, seed=2)
    loaded, skipped = load_weights_file(target, path)
    assert skipped == ["logits"] and sorted(loaded) == sorted(n for n in _weighted(source) if n != "logits")
    _assert_same_weights(source, target, loaded)

    different = create_model("test_resnet", num_classes=10, image_size=32, small_input=True)
    with pytest.raises(ModelFileError, match="no layer names") as err:
        load_weights_file(different, path)
    assert "\n" not in str(err.value)
