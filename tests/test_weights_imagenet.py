"""`--pretrained imagenet`: every registry entry's source (URL + checksum), the cache and its checks, the offline
failure (one line naming --pretrained PATH, in seconds, no network used), and the keras.applications .h5 port."""

from __future__ import annotations

import hashlib
import re
import time

import h5py
import numpy as np
import pytest
from test_weights_pth import _randomized, torchvision_state, write_pth

from tflkit.core.errors import ModelFileError, UsageError
from tflkit.models import create_model, get_spec, list_models
from tflkit.models.pretrained import IMAGENET_SOURCES, WeightSource
from tflkit.training.transfer import CACHE_ENV, load_pretrained, verify_source_file

NO_PUBLISHED_WEIGHTS = {"mobilenetv3_small_050", "mobilenetv3_small_075", "resnet8"}  # resnet8: CIFAR-10


@pytest.mark.parametrize("name", list_models())
def test_every_entry_has_a_checksummed_source(name):
    source = get_spec(name).pretrained_source
    if name in NO_PUBLISHED_WEIGHTS:
        assert source is None
        with pytest.raises(UsageError, match="--pretrained PATH"):
            load_pretrained(create_model(name, num_classes=3, image_size=32), "imagenet", name)
        return
    assert source.url.startswith("https://") and source.filename.endswith((".pth", ".h5"))
    assert source.sha256 or source.sha256_prefix or source.md5
    if source.format == "torchvision_pth":
        assert source.url.startswith("https://download.pytorch.org/models/")
        # torch.hub's rule: the hex digits after the last '-' of the file name begin the file's sha256
        assert re.fullmatch(r"[0-9a-f]{8,}", source.sha256_prefix)
        assert source.filename.endswith(f"-{source.sha256_prefix}.pth")
        assert source.sha256 is None or source.sha256.startswith(source.sha256_prefix)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    return tmp_path / "cache"


def test_offline_is_one_line_naming_pretrained_path_within_seconds(cache, monkeypatch):
    # port 9 (discard) on the loopback: refused at once, so no network is touched
    monkeypatch.setitem(IMAGENET_SOURCES, "resnet18", WeightSource(
        "http://127.0.0.1:9/resnet18-f37072fd.pth", "torchvision_pth", sha256_prefix="f37072fd"))
    model = create_model("resnet18", num_classes=10, image_size=32)
    start = time.time()
    with pytest.raises(UsageError, match=r"--pretrained PATH") as info:
        load_pretrained(model, "imagenet", "resnet18")
    assert time.time() - start < 10
    assert "\n" not in str(info.value) and "127.0.0.1:9" in str(info.value)


def _publish(tmp_path, cache, name, monkeypatch, corrupt=False):
    """Write a torchvision-format file of a random test model into the cache, named as torchvision names them."""
    source = _randomized(create_model(name, num_classes=5, image_size=32), seed=5)
    staged = tmp_path / "staged.pth"
    write_pth(staged, torchvision_state(source))
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()
    prefix = digest[:8] if not corrupt else ("0" if digest[0] != "0" else "1") + digest[1:8]
    filename = f"{name}-{prefix}.pth"
    staged.rename(cache / filename)
    monkeypatch.setitem(IMAGENET_SOURCES, name, WeightSource(
        f"http://127.0.0.1:9/{filename}", "torchvision_pth", sha256_prefix=prefix))
    return source


def test_cached_torchvision_file_is_verified_then_ported(tmp_path, cache, monkeypatch):
    source = _publish(tmp_path, cache, "test_resnet", monkeypatch)
    model = create_model("test_resnet", num_classes=5, image_size=32)
    report = load_pretrained(model, "imagenet", "test_resnet")  # from the cache: no download attempted
    assert report["url"].endswith(".pth") and report["skipped_layers"] == []
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict_on_batch(images), source.predict_on_batch(images), rtol=1e-4, atol=1e-4)


def test_cached_file_with_wrong_checksum_is_refused(tmp_path, cache, monkeypatch):
    _publish(tmp_path, cache, "test_resnet", monkeypatch, corrupt=True)
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_pretrained(create_model("test_resnet", num_classes=5, image_size=32), "imagenet", "test_resnet")


def test_checksum_kinds(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    sha, md5 = hashlib.sha256(b"weights").hexdigest(), hashlib.md5(b"weights").hexdigest()
    assert verify_source_file(path, WeightSource("u", "f", sha256=sha)).startswith("sha256 ")
    assert verify_source_file(path, WeightSource("u", "f", sha256_prefix=sha[:10])).startswith("sha256 prefix")
    assert verify_source_file(path, WeightSource("u", "f", md5=md5)).startswith("md5")
    with pytest.raises(ModelFileError):
        verify_source_file(path, WeightSource("u", "f", md5="0" * 32))


def _keras2_name(name: str) -> str:
    """keras.applications' Keras 2 layer names, as its published .h5 files carry them."""
    fixed = {"conv": "Conv", "conv_1": "Conv_1", "conv_2": "Conv_2", "logits": "Logits"}
    base, bn = (name[:-3], True) if name.endswith("_bn") else (name, False)
    if base in fixed:
        out = fixed[base]
    else:
        m = re.fullmatch(r"(expanded_conv(?:_\d+)?)_(expand|depthwise|project|squeeze_excite_conv(?:_1)?)", base)
        block, part = m.groups()
        out = f"{block}/" + (part.replace("squeeze_excite_conv", "squeeze_excite/Conv") if "squeeze" in part else part)
    return out + ("/BatchNorm" if bn else "")


def test_keras_applications_h5_ports_onto_the_tf_layout(tmp_path, cache, monkeypatch):
    rng = np.random.default_rng(0)
    source = create_model("mobilenetv3_small_100_tf", num_classes=1000, image_size=32)
    path = cache / "weights_mobilenet_v3_small_224_1.0_float.h5"
    with h5py.File(path, "w") as f:  # Keras 2 save_weights layout: layer_names, weight_names, one group per layer
        names = []
        for layer in source.layers:
            if not layer.weights or layer.name == "normalize":
                continue
            arrays = [rng.uniform(0.5, 1.5, tuple(w.shape)) if "variance" in w.path else
                      rng.normal(0, 0.1, tuple(w.shape)) for w in layer.weights]
            layer.set_weights([a.astype(np.float32) for a in arrays])
            name = _keras2_name(layer.name)
            names.append(name.encode())
            group = f.require_group(name)
            stored = [a.reshape(1, 1, *a.shape) if type(layer).__name__ == "Dense" and a.ndim == 2 else a
                      for a in layer.get_weights()]
            weight_names = [f"{name}/w{i}:0" for i in range(len(stored))]
            for weight_name, array in zip(weight_names, stored):
                group.create_dataset(weight_name, data=array)
            group.attrs["weight_names"] = [w.encode() for w in weight_names]
        f.attrs["layer_names"] = names
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    monkeypatch.setitem(IMAGENET_SOURCES, "mobilenetv3_small_100_tf", WeightSource(
        f"http://127.0.0.1:9/{path.name}", "keras_applications_h5", md5=md5))
    target = create_model("mobilenetv3_small_100_tf", num_classes=1000, image_size=32)
    report = load_pretrained(target, "imagenet", "mobilenetv3_small_100_tf")
    assert report["skipped_layers"] == [] and len(report["loaded_layers"]) == len(names)
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(target.predict_on_batch(images), source.predict_on_batch(images), rtol=1e-4, atol=1e-5)
