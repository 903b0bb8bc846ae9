"""The .pth reader (no torch, no pickle code run) and the torchvision -> registry port, checked by logits.

torch is not installed here, so the tests write torch's two file formats themselves (`write_pth` below, the zip
format of torch >= 1.6 and the legacy stream), from a tiny registry model's weights renamed and transposed into
torchvision's layout by an inverse mapping written independently of tflkit/weights/pth_port.py.
"""

from __future__ import annotations

import collections
import io
import pickle
import re
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from tflkit.core.errors import ModelFileError
from tflkit.models import create_model
from tflkit.weights.pth import LEGACY_MAGIC, load_state_dict
from tflkit.weights.pth_port import port_pth

_DTYPES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.int64): "LongStorage",
           np.dtype(np.float16): "HalfStorage"}


# ---- a writer of torch.save's formats (what torch would write for a dict of tensors) ----

class _Storage:
    def __init__(self, key: str, data: np.ndarray):
        self.key, self.data = key, data


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce_ex__(self, protocol):
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return rebuild, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())


def _fake_torch():
    """Stand-in `torch` modules so pickle can name torch's globals while the test writes the file."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in _DTYPES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    return {"torch": torch, "torch._utils": utils}


def _tensors(state: dict[str, np.ndarray]):
    """One storage per tensor, except that two float tensors share one (offset) and one is stored transposed."""
    out, storages = collections.OrderedDict(), []
    shared = None
    for i, (key, array) in enumerate(state.items()):
        array = np.asarray(array)
        if array.ndim == 2 and shared is None:  # a transposed view: column-major storage, strides swapped
            storage = _Storage(str(len(storages)), np.ascontiguousarray(array.T).reshape(-1))
            storages.append(storage)
            out[key] = _Tensor(storage, 0, array.shape, (1, array.shape[0]))
            shared = True
            continue
        if array.ndim == 1 and array.dtype == np.float32 and i % 2 == 0:  # shares a storage after a pad
            pad = np.arange(3, dtype=np.float32)
            storage = _Storage(str(len(storages)), np.concatenate([pad, array]))
            storages.append(storage)
            out[key] = _Tensor(storage, 3, array.shape, (1,))
            continue
        storage = _Storage(str(len(storages)), array.reshape(-1))
        storages.append(storage)
        strides = tuple(int(np.prod(array.shape[i + 1:])) for i in range(array.ndim))
        out[key] = _Tensor(storage, 0, array.shape, strides)
    return out, storages


def write_pth(path, state: dict[str, np.ndarray], legacy: bool = False) -> None:
    tensors, storages = _tensors(state)
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update(_fake_torch())
    try:
        def persistent_id(obj):
            if isinstance(obj, _Storage):
                cls = getattr(sys.modules["torch"], _DTYPES[obj.data.dtype])
                return ("storage", cls, obj.key, "cpu", obj.data.size) + ((None,) if legacy else ())
            return None

        buffer = io.BytesIO()
        if legacy:
            for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
                pickle.dump(header, buffer, protocol=2)
        pickler = pickle.Pickler(buffer, protocol=2)
        pickler.persistent_id = persistent_id
        pickler.dump(tensors)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    if legacy:
        pickle.dump([s.key for s in storages], buffer, protocol=2)
        for s in storages:
            buffer.write(struct.pack("<q", s.data.size) + s.data.astype(s.data.dtype.newbyteorder("<")).tobytes())
        path.write_bytes(buffer.getvalue())
        return
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        archive.writestr("archive/byteorder", "little")
        for s in storages:
            archive.writestr(f"archive/data/{s.key}", s.data.tobytes())
        archive.writestr("archive/version", "3\n")


# ---- the registry's tiny models in torchvision's names and layouts (an inverse written for the tests) ----

def _torch_name(model_name: str, layer: str, model) -> str:
    if model_name == "test_resnet":
        if layer.startswith("stem_"):
            return {"stem_conv": "conv1", "stem_bn": "bn1"}[layer]
        if layer == "logits":
            return "fc"
        s, b, part = re.fullmatch(r"layer(\d+)_(\d+)_(.+)", layer).groups()
        return f"layer{s}.{b}." + {"conv1_conv": "conv1", "conv1_bn": "bn1", "conv2_conv": "conv2",
                                   "conv2_bn": "bn2", "downsample_conv": "downsample.0",
                                   "downsample_bn": "downsample.1"}[part]
    if model_name == "test_shufflenetv2":
        fixed = {"stem_conv": "conv1.0", "stem_bn": "conv1.1", "conv5_conv": "conv5.0", "conv5_bn": "conv5.1",
                 "logits": "fc"}
        if layer in fixed:
            return fixed[layer]
        s, b, branch, part = re.fullmatch(r"stage(\d+)_(\d+)_branch(\d)_(.+)", layer).groups()
        index = {"1": {"dw_dwconv": 0, "dw_bn": 1, "pw_conv": 2, "pw_bn": 3},
                 "2": {"pw1_conv": 0, "pw1_bn": 1, "dw_dwconv": 3, "dw_bn": 4, "pw2_conv": 5, "pw2_bn": 6}}[branch]
        return f"stage{s}.{b}.branch{branch}.{index[part]}"
    if model_name == "test_mobilenetv3":
        blocks = sorted({int(m.group(1)) for n in (x.name for x in model.layers) if (m := re.match(r"block(\d+)_", n))})
        fixed = {"stem_conv": "features.0.0", "stem_bn": "features.0.1", "last_conv": f"features.{len(blocks) + 1}.0",
                 "last_bn": f"features.{len(blocks) + 1}.1", "head_fc": "classifier.0", "logits": "classifier.3"}
        if layer in fixed:
            return fixed[layer]
        i, role, part = re.fullmatch(r"block(\d+)_(expand|dw|se|project)_(.+)", layer).groups()
        roles = [r for r in ("expand", "dw", "se", "project")
                 if any(x.name.startswith(f"block{i}_{r}_") for x in model.layers)]
        sub = {"conv": "0", "dwconv": "0", "bn": "1", "fc1": "fc1", "fc2": "fc2"}[part]
        return f"features.{int(i) + 1}.block.{roles.index(role)}.{sub}"
    if model_name == "test_efficientnetv2":
        stages = {int(m.group(1)) for x in model.layers if (m := re.match(r"stage(\d+)_", x.name))}
        fixed = {"stem_conv": "features.0.0", "stem_bn": "features.0.1", "head_conv": f"features.{max(stages) + 1}.0",
                 "head_bn": f"features.{max(stages) + 1}.1", "logits": "classifier.1"}
        if layer in fixed:
            return fixed[layer]
        s, b, role, part = re.fullmatch(r"stage(\d+)_(\d+)_(fused|project|expand|dw|se)_(.+)", layer).groups()
        fused = any(x.name == f"stage{s}_{b}_fused_conv" for x in model.layers)
        roles = ["fused", "project"] if fused else ["expand", "dw", "se", "project"]
        sub = {"conv": "0", "dwconv": "0", "bn": "1", "fc1": "fc1", "fc2": "fc2"}[part]
        return f"features.{s}.{b}.block.{roles.index(role)}.{sub}"
    if model_name == "test_squeezenet":
        if layer in ("conv1", "conv10"):
            return "features.0" if layer == "conv1" else "classifier.1"
        n, part = re.fullmatch(r"fire(\d+)_(squeeze1x1|expand1x1|expand3x3)", layer).groups()
        return f"features.{int(n) * 2}.{'squeeze' if part == 'squeeze1x1' else part}"  # any increasing index
    raise KeyError(model_name)


def torchvision_state(model) -> dict[str, np.ndarray]:
    """The model's weights as torchvision would hold them (names, layouts, num_batches_tracked)."""
    state = collections.OrderedDict()
    for layer in model.layers:
        if not layer.weights or layer.name == "normalize":
            continue
        module = _torch_name(model.name, layer.name, model)
        kind = type(layer).__name__
        values = {w.path.split("/")[-1]: np.asarray(w.numpy()) for w in layer.weights}
        if kind == "BatchNormalization":
            for keras_name, torch_name in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                                           ("moving_variance", "running_var")):
                state[f"{module}.{torch_name}"] = values[keras_name]
            state[f"{module}.num_batches_tracked"] = np.array(7, np.int64)
            continue
        if kind == "Dense":
            state[f"{module}.weight"] = values["kernel"].T
        elif kind == "DepthwiseConv2D":  # (kh, kw, C, 1) -> (C, 1, kh, kw)
            state[f"{module}.weight"] = layer.weights[0].numpy().transpose(2, 3, 0, 1)
        else:
            state[f"{module}.weight"] = values["kernel"].transpose(3, 2, 0, 1)
        if "bias" in values:
            state[f"{module}.bias"] = values["bias"]
    return state


def _randomized(model, seed: int):
    """Every weight random, BatchNorm statistics included, so a mix-up of any two tensors shows in the logits."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.name == "normalize" or not layer.weights:
            continue
        arrays = []
        for w in layer.weights:
            shape = tuple(w.shape)
            value = rng.uniform(0.5, 1.5, shape) if "variance" in w.path else rng.normal(0, 0.3, shape)
            arrays.append(value.astype(np.float32))
        layer.set_weights(arrays)
    return model


MODELS = ["test_resnet", "test_shufflenetv2", "test_mobilenetv3", "test_efficientnetv2", "test_squeezenet"]


@pytest.mark.parametrize("name", MODELS)
def test_torchvision_port_reproduces_logits(tmp_path, name):
    source = _randomized(create_model(name, num_classes=5, image_size=32), seed=1)
    path = tmp_path / f"{name}.pth"
    write_pth(path, torchvision_state(source))
    target = create_model(name, num_classes=5, image_size=32)
    report = port_pth(target, path)
    images = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    expected, got = source.predict_on_batch(images), target.predict_on_batch(images)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert report["skipped_layers"] == []
    assert not np.allclose(expected, create_model(name, num_classes=5, image_size=32).predict_on_batch(images))


def test_reader_gives_exact_tensors_in_both_formats(tmp_path):
    rng = np.random.default_rng(0)
    state = {"a.weight": rng.normal(size=(4, 3)).astype(np.float32), "a.bias": rng.normal(size=4).astype(np.float32),
             "b.weight": rng.normal(size=(2, 3, 3, 3)).astype(np.float32), "b.count": np.array(5, np.int64),
             "c.half": rng.normal(size=6).astype(np.float16)}
    for legacy in (False, True):
        path = tmp_path / f"s{int(legacy)}.pth"
        write_pth(path, state, legacy=legacy)
        loaded = load_state_dict(path)
        assert list(loaded) == list(state)
        for key, value in state.items():
            assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape
            np.testing.assert_array_equal(loaded[key], value)


def test_classifier_for_other_classes_keeps_its_init(tmp_path):
    source = _randomized(create_model("test_resnet", num_classes=5, image_size=32), seed=3)
    path = tmp_path / "r.pth"
    write_pth(path, torchvision_state(source))
    target = create_model("test_resnet", num_classes=3, image_size=32)
    before = [w.copy() for w in target.get_layer("logits").get_weights()]
    report = port_pth(target, path)
    assert report["skipped_layers"] == ["logits"]
    for a, b in zip(before, target.get_layer("logits").get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(target.get_layer("stem_conv").get_weights()[0],
                                  source.get_layer("stem_conv").get_weights()[0])


def test_wrong_architecture_names_the_tensor(tmp_path):
    path = tmp_path / "r.pth"
    write_pth(path, torchvision_state(_randomized(create_model("test_resnet", image_size=32), seed=4)))
    with pytest.raises(ModelFileError, match="no counterpart|shapes differ|no tensors"):
        port_pth(create_model("test_squeezenet", image_size=32), path)
    state = torchvision_state(create_model("test_resnet", image_size=32))
    state["layer1.0.conv1.weight"] = state["layer1.0.conv1.weight"][:, :, :1, :1]  # a 1x1 where a 3x3 belongs
    write_pth(path, state)
    with pytest.raises(ModelFileError, match=r"layer1_0_conv1_conv shapes differ.*kernel \[1, 1, 8, 8\]"):
        port_pth(create_model("test_resnet", image_size=32), path)


def _evil_pickle(marker) -> bytes:
    # GLOBAL os.system, the command as a tuple, REDUCE: what pickle.load would run
    command = f"touch {marker}".encode()
    return (b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(command)) + command + b"q\x01\x85q\x02Rq\x03.")


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_that_runs_code_is_refused_without_running(tmp_path, legacy):
    marker = tmp_path / "ran"
    evil = _evil_pickle(marker)
    path = tmp_path / "evil.pth"
    if legacy:
        header = b"".join(pickle.dumps(h, protocol=2) for h in (LEGACY_MAGIC, 1001, {}))
        path.write_bytes(header + evil)
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", evil)
            archive.writestr("archive/version", "3\n")
    with pytest.raises(ModelFileError, match="global os.system is not allowed"):
        load_state_dict(path)
    assert not marker.exists()
    pickle.loads(evil)  # the same bytes do run code under plain pickle: the test's pickle is a real attack
    assert marker.exists()


def test_other_globals_and_garbage_are_one_line_errors(tmp_path):
    path = tmp_path / "eval.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1q\x00\x85R.")
    with pytest.raises(ModelFileError, match="builtins.eval is not allowed"):
        load_state_dict(path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pth at all")
    with pytest.raises(ModelFileError, match="junk.pth") as info:
        load_state_dict(junk)
    assert "\n" not in str(info.value)


def test_weights_import_command_writes_the_ported_model(tmp_path):
    import keras

    from tflkit.cli import main

    source = _randomized(create_model("test_shufflenetv2", num_classes=5, image_size=32), seed=6)
    path = tmp_path / "s.pth"
    write_pth(path, torchvision_state(source))
    out = tmp_path / "s.keras"
    assert main(["weights", "import", str(path), "--model", "test_shufflenetv2", "--num-classes", "5",
                 "--image-size", "32", "--out", str(out)]) == 0
    images = np.random.default_rng(7).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    saved = keras.models.load_model(out, compile=False)
    np.testing.assert_allclose(saved.predict_on_batch(images), source.predict_on_batch(images), rtol=1e-4, atol=1e-4)
