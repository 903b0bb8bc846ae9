"""Weight porting: pretrained weights from files in other layouts into tflkit models, by layer name and shape.

SqueezeNet 1.1 ImageNet weights (rcmalli/keras-squeezenet, converted from the Caffe model) come as a Keras-1 HDF5
file: groups `conv1`, `fire2`..`fire9` (each with `squeeze1x1`, `expand1x1`, `expand3x3`), weight datasets with
generated names (`uniform3`, `fire2/expand1x1_b`), so kernels and biases are told apart by rank and checked by shape.

Those weights expect Caffe preprocessing: BGR channel order, the ImageNet mean subtracted, no scaling
(x[..., ::-1] - (103.939, 116.779, 123.68)). tflkit models take RGB 0..255 and normalize inside, so the port
(1) reverses conv1's input channels, which makes it read RGB, and (2) sets the model's frozen normalization layer
to subtract the mean only (scale 1), in RGB order (`tflkit.models.squeezenet.CAFFE`, which the registry spec of
squeezenet1_1 names as its `pretrained_normalization`). The result matches the original on the same image: the
ported model on RGB pixels gives the Keras-1 computation on BGR pixels minus the mean (tests/test_models_weights.py).
The Caffe prototxt's mean (104.006, 116.669, 122.679 BGR) differs from this one by under one pixel level.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tflkit.errors import ModelFileError
from tflkit.models.squeezenet import CAFFE


def _open_h5(path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: not a readable HDF5 weights file ({exc})") from None


def is_keras1_squeezenet(path) -> bool:
    with _open_h5(path) as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs.get("layer_names", [])]
    return "fire2/squeeze1x1" in names


def _kernel_and_bias(group, where: str):
    import h5py

    arrays = []
    group.visititems(lambda _, obj: arrays.append(obj[()]) if isinstance(obj, h5py.Dataset) else None)
    kernels = [a for a in arrays if a.ndim == 4]
    biases = [a for a in arrays if a.ndim == 1]
    if len(kernels) != 1 or len(biases) != 1:
        raise ModelFileError(f"{where}: expected one kernel and one bias, found shapes {[a.shape for a in arrays]}")
    return kernels[0], biases[0]


def port_squeezenet_keras1(model, path) -> list[str]:
    """Load the Keras-1 SqueezeNet file into a tflkit squeezenet1_1; returns the names of the layers loaded."""
    from tflkit.models.layers import NORMALIZE_LAYER

    loaded = []
    with _open_h5(path) as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["layer_names"]]
        for name in names:
            group = f
            for part in name.split("/"):
                group = group.get(part) if group is not None else None
            if group is None or not len(group):
                continue  # input, relu, pool, concat, dropout: no weights
            kernel, bias = _kernel_and_bias(group, f"{path}:{name}")
            target = name.replace("/", "_")
            try:
                layer = model.get_layer(target)
            except ValueError:
                raise ModelFileError(f"{path}: layer {name} has no counterpart {target!r} in {model.name}") from None
            if target == "conv1":
                kernel = kernel[:, :, ::-1, :]  # BGR -> RGB input channels
            expected = [tuple(w.shape) for w in layer.weights]
            if expected != [kernel.shape, bias.shape]:
                raise ModelFileError(f"{path}: {name} has shapes {kernel.shape}, {bias.shape}; "
                                     f"{target} needs {expected}")
            layer.set_weights([kernel, bias])
            loaded.append(target)
    norm = model.get_layer(NORMALIZE_LAYER)
    std = np.array(CAFFE.std, np.float32)
    norm.set_weights([(1.0 / std).reshape(1, 1, 3, 1), -np.array(CAFFE.mean, np.float32) / std])
    return loaded


def copy_matching_weights(model, named_weights: dict[str, list[np.ndarray]]) -> tuple[list[str], list[str]]:
    """Set each layer of `model` whose name is in `named_weights` and whose shapes match; (loaded, skipped)."""
    loaded, skipped = [], []
    for layer in model.layers:
        if not layer.weights or layer.name not in named_weights:
            continue
        arrays = named_weights[layer.name]
        if [tuple(w.shape) for w in layer.weights] == [tuple(a.shape) for a in arrays]:
            layer.set_weights(arrays)
            loaded.append(layer.name)
        else:
            skipped.append(layer.name)  # e.g. a classifier for another number of classes
    return loaded, skipped


def weights_from_model(source_model) -> dict[str, list[np.ndarray]]:
    return {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in source_model.layers
            if layer.weights}


def weights_from_keras2_h5(path) -> dict[str, list[np.ndarray]]:
    """A Keras 2 `save_weights` .h5: top-level group per layer, with a `weight_names` attribute giving the order."""
    out = {}
    with _open_h5(path) as f:
        root = f["model_weights"] if "model_weights" in f else f
        for name in root.attrs.get("layer_names", []):
            name = name.decode() if isinstance(name, bytes) else str(name)
            group = root[name]
            order = [w.decode() if isinstance(w, bytes) else str(w) for w in group.attrs.get("weight_names", [])]
            if order:
                out[name] = [group[w][()] for w in order]
    return out


def _keras3_structural_keys(model) -> list[str]:
    """The group names Keras 3 gives `model.layers` in a .weights.h5: the class name in snake case, numbered per
    class in layer order (`conv2d`, `conv2d_1`, ...). Keras' own naming helpers (private, used by
    saving_lib._save_container_state), so the mapping cannot drift from what it writes."""
    from keras.src.saving.saving_lib import _get_unique_name
    from keras.src.utils.naming import to_snake_case

    used = {}
    return [_get_unique_name(to_snake_case(type(layer).__name__), used) for layer in model.layers]


def weights_from_keras3_h5(path, model=None) -> dict[str, list[np.ndarray]]:
    """A Keras 3 `.weights.h5`, keyed by layer name.

    Keras 3 does not key a layer's group by its name but by class and position: `layers/conv2d_3/vars/0`,
    `layers/batch_normalization/vars/3` (snake-case class name, numbered per class in `model.layers` order), with
    the layer's name in the `name` attribute of its `vars` group (keras 3.15). That attribute gives the key. A file
    without it is mapped the way Keras itself loads it, by class and position, which needs `model` and holds only
    when `model` has the file's layer structure (same classes in the same order; sizes may differ). Nested
    functional models and layers holding sub-layers are not descended into.
    """
    out, unnamed = {}, {}
    with _open_h5(path) as f:
        if "layers" not in f:
            raise ModelFileError(f"{path}: no layers/ group; not a Keras 3 .weights.h5 file")
        groups = set(f["layers"])
        for key, group in f["layers"].items():
            vars_ = group.get("vars")
            if vars_ is None:
                continue
            name = vars_.attrs.get("name")
            arrays = [vars_[str(i)][()] for i in range(len(vars_))]
            if name is None:
                unnamed[key] = arrays
            elif arrays:
                out[name.decode() if isinstance(name, bytes) else str(name)] = arrays
    if not unnamed:
        return out
    where = f"{path}: layer groups carry no layer names (written by an older Keras 3)"
    if model is None:
        raise ModelFileError(f"{where}; pass the model to map them by class and position")
    keys = _keras3_structural_keys(model)
    if set(keys) != groups:
        raise ModelFileError(f"{where}, and its {len(groups)} layers are not the {len(keys)} layers of "
                             f"{model.name} by class and position; load it into the architecture that saved it")
    named = dict(zip(keys, (layer.name for layer in model.layers)))
    return out | {named[key]: arrays for key, arrays in unnamed.items() if arrays}


def load_weights_file(model, path) -> tuple[list[str], list[str]]:
    """Any supported file into `model` by layer name; (loaded, skipped). A file that loads no layer is an error."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"weights file not found: {path}")
    if path.name.endswith(".keras"):
        import keras

        named = weights_from_model(keras.models.load_model(path, compile=False))
    elif path.name.endswith(".weights.h5"):
        named = weights_from_keras3_h5(path, model)
    elif path.suffix == ".h5":
        if is_keras1_squeezenet(path):
            return port_squeezenet_keras1(model, path), []
        named = weights_from_keras2_h5(path)
    elif path.suffix == ".tflite":
        from tflkit.weights.tflite import import_tflite_weights

        report = import_tflite_weights(model, path)
        return report["loaded_layers"], report["skipped_layers"]
    elif path.suffix in (".pth", ".pt"):
        from tflkit.weights.pth_port import port_pth

        report = port_pth(model, path)
        return report["loaded_layers"], report["skipped_layers"]
    else:
        raise ModelFileError(f"{path}: unknown weights format; use .keras, .weights.h5, .h5, .tflite or .pth")
    loaded, skipped = copy_matching_weights(model, named)
    if not loaded:
        shown = ", ".join(sorted(named)[:5]) + (", ..." if len(named) > 5 else "")
        raise ModelFileError(f"{path}: no layer of {model.name} matches by name and shape ({len(skipped)} match "
                             f"by name only; the file has {len(named)} layers with weights: {shown})")
    return loaded, skipped


def keras_applications_layer_name(name: str) -> str:
    """keras.applications' Keras 2 layer names (`expanded_conv_3/depthwise/BatchNorm`, `Conv_1`, `Logits`) in the
    Keras 3 spelling that `mobilenetv3_small_100_tf` uses (`expanded_conv_3_depthwise_bn`, `conv_1`, `logits`)."""
    return name.replace("/BatchNorm", "/bn").replace("/", "_").lower()


def port_keras_applications_mobilenetv3(model, path) -> tuple[list[str], list[str]]:
    """keras.applications MobileNetV3Small's .h5 (Keras 2 `save_weights` layout) onto `mobilenetv3_small_100_tf`.

    Layers map by name; the head's 1x1 convolutions (`Conv_2`, `Logits`, kernels (1, 1, in, out)) become the
    Dense kernels (in, out). Every layer of the model but the input normalization must be in the file (the file
    holds the float model's own BatchNorm statistics); a classifier for another class count keeps its init."""
    from tflkit.models.layers import NORMALIZE_LAYER

    named = {keras_applications_layer_name(k): v for k, v in weights_from_keras2_h5(path).items()}
    loaded, skipped = [], []
    for layer in model.layers:
        if not layer.weights or layer.name == NORMALIZE_LAYER:
            continue
        if layer.name not in named:
            raise ModelFileError(f"{path}: no weights for {layer.name}; not keras.applications MobileNetV3Small")
        arrays = named[layer.name]
        if type(layer).__name__ == "Dense":
            arrays = [arrays[0].reshape(arrays[0].shape[-2:]), *arrays[1:]]
        expected = [tuple(w.shape) for w in layer.weights]
        if expected != [a.shape for a in arrays]:
            if layer.name == "logits":
                skipped.append(layer.name)
                continue
            raise ModelFileError(f"{path}: {layer.name} has shapes {[a.shape for a in arrays]}, the model {expected}")
        layer.set_weights(arrays)
        loaded.append(layer.name)
    return loaded, skipped
