"""Port a torchvision state dict (read by tflkit/weights/pth.py, no torch) onto the registry's torchvision-layout
models.

Each registry family translates torchvision's module names into its own Keras layer names (the registry builds
the same layers in the same configuration, so the mapping is one to one):

  resnet         conv1/bn1 -> stem_conv/stem_bn, layerS.B.conv1 -> layerS_B_conv1_conv,
                 downsample.0/.1 -> layerS_B_downsample_conv/_bn, fc -> logits
  shufflenetv2   conv1.0/.1 -> stem, stageS.B.branch1.{0,1,2,3} -> _branch1_dw/_pw,
                 branch2.{0,1,3,4,5,6} -> _branch2_pw1/_dw/_pw2, conv5, fc -> logits
  mobilenetv3    features.0 -> stem, features.N.block.K (expand?, dw, se?, project) -> blockN-1_...,
                 features.12 -> last, classifier.0 -> head_fc, classifier.3 -> logits
  efficientnetv2 features.0 -> stem, features.S.B.block.K (fused[, project] | expand, dw, se, project),
                 features.7 -> head, classifier.1 -> logits
  squeezenet     features.0 -> conv1, the Fire modules in order -> fire2..fire9, classifier.1 -> conv10

and every tensor is converted to Keras' layout: conv (out, in, kh, kw) -> (kh, kw, in, out), depthwise
(C, 1, kh, kw) -> (kh, kw, C, 1), linear (out, in) -> (in, out), BatchNorm weight/bias/running_mean/running_var ->
gamma/beta/moving_mean/moving_variance, each shape checked against the layer. A torchvision tensor with no layer,
or a layer left without a tensor, is an error naming it; a classifier whose class count differs keeps its own
initialization (reported as skipped), as for the other weight formats.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from tflkit.core.errors import ModelFileError
from tflkit.data.safe_pickle import shown
from tflkit.models import get_spec, list_models
from tflkit.models.layers import NORMALIZE_LAYER
from tflkit.weights.pth import load_state_dict

_BN_FIELDS = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
CLASSIFIER = "logits"


def _resnet(module: str, kind: str) -> str | None:
    if module in ("conv1", "bn1"):
        return "stem_conv" if module == "conv1" else "stem_bn"
    if module == "fc":
        return CLASSIFIER
    m = re.fullmatch(r"layer(\d+)\.(\d+)\.(conv1|bn1|conv2|bn2|downsample\.0|downsample\.1)", module)
    if not m:
        return None
    stage, block, part = m.groups()
    part = {"conv1": "conv1_conv", "bn1": "conv1_bn", "conv2": "conv2_conv", "bn2": "conv2_bn",
            "downsample.0": "downsample_conv", "downsample.1": "downsample_bn"}[part]
    return f"layer{stage}_{block}_{part}"


def _shufflenetv2(module: str, kind: str) -> str | None:
    if module == "fc":
        return CLASSIFIER
    m = re.fullmatch(r"(conv1|conv5)\.([01])", module)
    if m:
        return _conv_bn_names("stem" if m.group(1) == "conv1" else "conv5", int(m.group(2)))
    m = re.fullmatch(r"stage(\d+)\.(\d+)\.branch([12])\.(\d+)", module)
    if not m:
        return None
    stage, block, branch, index = m.group(1), m.group(2), m.group(3), int(m.group(4))
    parts = ({0: "dw_dwconv", 1: "dw_bn", 2: "pw_conv", 3: "pw_bn"} if branch == "1" else
             {0: "pw1_conv", 1: "pw1_bn", 3: "dw_dwconv", 4: "dw_bn", 5: "pw2_conv", 6: "pw2_bn"})
    return f"stage{stage}_{block}_branch{branch}_{parts[index]}" if index in parts else None


def _conv_bn_names(prefix: str, index: int, depthwise: bool = False) -> str | None:
    return {0: f"{prefix}_dwconv" if depthwise else f"{prefix}_conv", 1: f"{prefix}_bn"}.get(index)


def _mobilenetv3_blocks(model) -> dict:
    """features index -> (Keras block prefix, the block's torchvision sub-module roles in order)."""
    roles = {}
    for i in range(64):
        prefix = f"block{i}"
        names = {layer.name for layer in model.layers if layer.name.startswith(prefix + "_")}
        if not names:
            break
        order = [r for r in ("expand", "dw", "se", "project") if any(n.startswith(f"{prefix}_{r}_") for n in names)]
        roles[i + 1] = (prefix, order)
    return roles


def _mobilenetv3(model):
    blocks = _mobilenetv3_blocks(model)
    last = len(blocks) + 1

    def name(module: str, kind: str) -> str | None:
        m = re.fullmatch(r"features\.(\d+)\.([01])", module)
        if m and int(m.group(1)) in (0, last):
            return _conv_bn_names("stem" if m.group(1) == "0" else "last", int(m.group(2)))
        if module in ("classifier.0", "classifier.3"):
            return "head_fc" if module == "classifier.0" else CLASSIFIER
        m = re.fullmatch(r"features\.(\d+)\.block\.(\d+)\.(.+)", module)
        if not m or int(m.group(1)) not in blocks:
            return None
        prefix, order = blocks[int(m.group(1))]
        return _block_part(prefix, order, int(m.group(2)), m.group(3))

    return name


def _block_part(prefix: str, roles: list, index: int, rest: str) -> str | None:
    """The registry name of part `rest` of the `index`-th module of a torchvision inverted-residual block (its roles
    in order: expand, dw, se, project, or fused): a conv, its BatchNorm, or a squeeze-excite layer."""
    if index >= len(roles):
        return None
    role = roles[index]
    if role == "se":
        return {"fc1": f"{prefix}_se_fc1", "fc2": f"{prefix}_se_fc2"}.get(rest)
    return _conv_bn_names(f"{prefix}_{role}", int(rest), depthwise=role == "dw") if rest in "01" else None


def _efficientnetv2(model):
    # torchvision's features.S.B is the registry's stageS_B; features.0 the stem, the one after the last stage the head
    stages = {int(m.group(1)) for layer in model.layers if (m := re.match(r"stage(\d+)_", layer.name))}
    head = max(stages) + 1

    def name(module: str, kind: str) -> str | None:
        if module == "classifier.1":
            return CLASSIFIER
        m = re.fullmatch(r"features\.(\d+)\.([01])", module)
        if m and int(m.group(1)) in (0, head):
            return _conv_bn_names("stem" if m.group(1) == "0" else "head", int(m.group(2)))
        m = re.fullmatch(r"features\.(\d+)\.(\d+)\.block\.(\d+)\.(.+)", module)
        if not m:
            return None
        prefix = f"stage{m.group(1)}_{m.group(2)}"
        roles = ["fused", "project"] if _has(model, f"{prefix}_fused_conv") else ["expand", "dw", "se", "project"]
        return _block_part(prefix, roles, int(m.group(3)), m.group(4))

    return name


def _squeezenet(state: dict):
    fires = sorted({int(m.group(1)) for k in state if (m := re.match(r"features\.(\d+)\.squeeze\.", k))})
    fire_names = {index: f"fire{n}" for n, index in enumerate(fires, start=2)}

    def name(module: str, kind: str) -> str | None:
        if module == "features.0":
            return "conv1"
        if module == "classifier.1":
            return "conv10"
        m = re.fullmatch(r"features\.(\d+)\.(squeeze|expand1x1|expand3x3)", module)
        if m and int(m.group(1)) in fire_names:
            return f"{fire_names[int(m.group(1))]}_{m.group(2) if m.group(2) != 'squeeze' else 'squeeze1x1'}"
        return None

    return name


def _has(model, name: str) -> bool:
    try:
        model.get_layer(name)
        return True
    except ValueError:
        return False


def _namer(model, state: dict):
    if model.name not in list_models(include_test=True):
        raise ModelFileError(f"{model.name} is not a registry model; torchvision ports exist for registry layouts")
    family = get_spec(model.name).family
    if family == "resnet":
        return _resnet
    if family == "shufflenetv2":
        return _shufflenetv2
    if family == "mobilenetv3":
        if _has(model, "expanded_conv_depthwise"):
            raise ModelFileError(f"{model.name} has the TF-slim layout; torchvision weights fit "
                                 f"mobilenetv3_small_100 (use the .tflite or keras.applications weights)")
        return _mobilenetv3(model)
    if family == "efficientnetv2":
        return _efficientnetv2(model)
    if family == "squeezenet":
        return _squeezenet(state)
    raise ModelFileError(f"no torchvision port for {model.name} (family {family})")


def _keras_array(field: str, array: np.ndarray, layer, where: str) -> tuple[str, np.ndarray]:
    # A file may give any field and any shape: each is checked before it is transposed (a BatchNorm field that is
    # not one was a KeyError, a 1-d "kernel" a ValueError from transpose; found by tests/test_fuzz_weights_data.py)
    kind = type(layer).__name__
    if kind == "BatchNormalization":
        if field not in _BN_FIELDS:
            raise ModelFileError(f"{where}: {layer.name} is a BatchNormalization, which has no tensor {field!r} "
                                 f"({', '.join(_BN_FIELDS)})")
        return _BN_FIELDS[field], array
    if field == "bias":
        return "bias", array
    if kind == "Dense":
        if array.ndim < 2:
            raise ModelFileError(f"{where}: {layer.name}.{field} has shape {list(array.shape)}; a Dense kernel has 2")
        return "kernel", array.T if array.ndim == 2 else array.reshape(array.shape[0], -1).T
    channels = layer.weights[0].shape[2] if kind == "DepthwiseConv2D" else 1
    if array.ndim != 4 or array.shape[0] * array.shape[1] % channels:
        raise ModelFileError(f"{where}: {layer.name}.{field} has shape {list(array.shape)}; not a {kind} kernel "
                             f"(out, in, kh, kw)")
    if kind == "DepthwiseConv2D":  # (C*M, 1, kh, kw) -> (kh, kw, C, M)
        return layer.weights[0].path.split("/")[-1], array.reshape(channels, -1, *array.shape[2:]).transpose(2, 3, 0, 1)
    return "kernel", array.transpose(2, 3, 1, 0)  # (out, in/groups, kh, kw) -> (kh, kw, in/groups, out)


def port_state_dict(model, state: dict[str, np.ndarray], where: str = "state dict") -> dict:
    """Set `model`'s layers from a torchvision state dict; {"loaded_layers", "skipped_layers", "tensors"}."""
    namer = _namer(model, state)
    per_layer: dict[str, dict[str, np.ndarray]] = {}
    for key, array in state.items():
        module, _, field = key.rpartition(".")
        if field == "num_batches_tracked":
            continue
        layer_name = namer(module, field)
        if layer_name is None:
            raise ModelFileError(f"{where}: tensor {shown(key)} {list(array.shape)} has no counterpart in {model.name}")
        per_layer.setdefault(layer_name, {})[field] = np.asarray(array, np.float32)

    plans, skipped = [], []
    for layer_name, fields in per_layer.items():
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            raise ModelFileError(f"{where}: {model.name} has no layer {layer_name} for "
                                 f"{', '.join(sorted(fields))}") from None
        converted = dict(_keras_array(f, a, layer, where) for f, a in fields.items())
        targets = {w.path.split("/")[-1]: tuple(w.shape) for w in layer.weights}
        if set(converted) != set(targets):
            raise ModelFileError(f"{where}: {layer_name} needs {sorted(targets)}, the file gives {sorted(converted)}")
        bad = {k: (converted[k].shape, targets[k]) for k in targets if converted[k].shape != targets[k]}
        if bad:
            if layer_name in (CLASSIFIER, "conv10") and all(a[:-1] == b[:-1] for a, b in bad.values()):
                skipped.append(layer_name)  # another number of classes: keeps its own initialization
                continue
            detail = "; ".join(f"{k} {list(a)} vs {list(b)}" for k, (a, b) in bad.items())
            raise ModelFileError(f"{where}: {layer_name} shapes differ (file vs model): {detail}")
        plans.append((layer, [converted[w.path.split("/")[-1]] for w in layer.weights]))
    weighted = {layer.name for layer in model.layers if layer.weights and not _frozen_by_design(layer)}
    missing = sorted(weighted - set(per_layer))
    if missing:
        raise ModelFileError(f"{where}: no tensors for {len(missing)} layers of {model.name} "
                             f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
    for layer, arrays in plans:  # nothing is written before every layer has checked
        layer.set_weights(arrays)
    return {"loaded_layers": [layer.name for layer, _ in plans], "skipped_layers": skipped,
            "tensors": len(state)}


def _frozen_by_design(layer) -> bool:
    return layer.name == NORMALIZE_LAYER  # the pixel normalization: torchvision does it outside the model


def port_pth(model, path) -> dict:
    """Read the .pth at `path` (no torch, no pickle code run) and port it onto `model`."""
    path = Path(path)
    report = port_state_dict(model, load_state_dict(path), where=str(path))
    return {"source": str(path), **report}
