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
    # only the model with a weights port differs
    assert [n for n in list_models() if get_spec(n).pretrained_normalization] == ["squeezenet1_1"]


def test_card_normalization_is_read_from_the_model(tmp_path):
    from converters.model_card import model_normalization

    spec = get_spec("squeezenet1_1")
    model = create_model("squeezenet1_1", num_classes=10, input_size=32, small_input=True)
    model.save(tmp_path / "built.keras")
    built = model_normalization(tmp_path / "built.keras", spec)
    assert built["name"] == "imagenet"
    np.testing.assert_allclose(built["mean"], IMAGENET.mean, rtol=1e-5)
    np.testing.assert_allclose(built["std"], IMAGENET.std, rtol=1e-5)

    norm = model.get_layer("normalize")
    norm.set_weights([np.ones((1, 1, 3, 1), np.float32), -np.array(CAFFE.mean, np.float32)])  # what the port sets
    model.save(tmp_path / "caffe.keras")
    assert model_normalization(tmp_path / "caffe.keras", spec) == {"name": "caffe", "mean": list(CAFFE.mean),
                                                                    "std": [1.0, 1.0, 1.0]}

    norm.set_weights([np.full((1, 1, 3, 1), 0.5, np.float32), np.zeros(3, np.float32)])
    model.save(tmp_path / "custom.keras")
    custom = model_normalization(tmp_path / "custom.keras", spec)
    assert custom == {"name": "custom", "mean": [0.0, 0.0, 0.0], "std": [2.0, 2.0, 2.0]}


@pytest.mark.data
def test_ported_squeezenet_on_rgb_is_the_caffe_model_on_bgr_minus_mean():
    """The port (conv1's channels reversed, mean-only normalization inside) computes what the Keras-1 original
    computes on Caffe-preprocessed input: x[..., ::-1] - (103.939, 116.779, 123.68), unscaled."""
    if not SQUEEZENET_H5.is_file():
        pytest.skip("no shared SqueezeNet weights")
    import h5py
    import keras

    from converters.weights import load_weights_file

    ported = create_model("squeezenet1_1", num_classes=10, input_size=64)
    load_weights_file(ported, SQUEEZENET_H5)
    # The original, by hand: the file's kernels as they are (conv1 reads BGR), no normalization in the model.
    original = create_model("squeezenet1_1", num_classes=10, input_size=64)
    with h5py.File(SQUEEZENET_H5, "r") as f:
        for layer in f.attrs["layer_names"]:
            layer = layer.decode() if isinstance(layer, bytes) else str(layer)
            group = f.get(layer)
            if group is None or not len(group):
                continue
            arrays = []
            group.visititems(lambda _, obj: arrays.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
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
