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

import contextlib
from pathlib import Path

import numpy as np

from tflkit.core.errors import ModelFileError, UsageError
from tflkit.core.limits import H5_DATASET_BYTES
from tflkit.data.safe_pickle import shown
from tflkit.models import create_model, get_spec
from tflkit.models.layers import NORMALIZE_LAYER
from tflkit.models.squeezenet import CAFFE
from tflkit.weights.pth_port import port_pth
from tflkit.weights.tflite import import_tflite_weights, model_from_tflite


@contextlib.contextmanager
def _open_h5(path):
    """The HDF5 file at `path`, open for reading. libhdf5 reports a damaged file (a flipped byte in a B-tree, an
    object header, a heap) as OSError, RuntimeError or KeyError from whichever access reaches it first, not only
    from opening (found by tests/test_fuzz_weights_data.py): any of them, while the file is being read, is one line
    naming it."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: not a readable HDF5 weights file ({shown(exc, 200)})") from None
    try:
        with f:
            yield f
    except (OSError, RuntimeError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable HDF5 weights file ({type(exc).__name__}: "
                             f"{shown(exc, 200)})") from None


def _group(obj, where: str):
    import h5py

    if not isinstance(obj, h5py.Group):
        raise ModelFileError(f"{where}: a {type(obj).__name__}, not a group of weights")
    return obj


def _child(group, name: str, where: str):
    """group[name], or one line naming what is missing (a name the file lists but does not hold)."""
    try:
        return group[name]
    except KeyError:
        raise ModelFileError(f"{where}: no {shown(name)!r} in {shown(group.name)}") from None


def _array(obj, where: str) -> np.ndarray:
    """A weight array from an HDF5 dataset, checked before a byte of it is read: a dataset (not a group), of
    numbers, within tflkit.core.limits.H5_DATASET_BYTES, and, unless compressed, stored in the file (a 4 KB file can
    declare a 4 TiB dataset that HDF5 fills with zeros on read)."""
    import h5py

    if not isinstance(obj, h5py.Dataset):
        raise ModelFileError(f"{where}: a {type(obj).__name__}, not a weights dataset")
    try:
        shape, dtype = obj.shape, obj.dtype
    except (ValueError, TypeError) as exc:  # a damaged datatype message h5py cannot map to a numpy type: a float
        # whose exponent bias one flipped byte made 65,663 (found by tests/test_fuzz_mobilenetv3.py)
        raise ModelFileError(f"{where}: a dataset whose type h5py cannot read ({shown(exc, 120)})") from None
    if shape is None or dtype.kind not in "biuf":
        raise ModelFileError(f"{where}: a dataset of {dtype} {shape}, not an array of numbers")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    H5_DATASET_BYTES.check(nbytes, f"{where} (dataset {shown(obj.name)})", ModelFileError)
    if obj.id.get_create_plist().get_nfilters() == 0 and obj.id.get_storage_size() < nbytes:
        raise ModelFileError(f"{where}: dataset {shown(obj.name)} declares {nbytes:,} bytes and the file holds "
                             f"{obj.id.get_storage_size():,} of them")
    return np.asarray(obj[()])


def _names(value, where: str) -> list[str]:
    """A list-of-names attribute (layer_names, weight_names): a 1-d array of bytes or str (an empty one may have any
    dtype: Keras 2 writes a layer without weights as float64 [])."""
    if value is None:
        return []
    array = np.asarray(value)
    if array.size == 0:
        return []
    if array.ndim != 1 or array.dtype.kind not in "SUO":
        raise ModelFileError(f"{where}: a list of names expected, found {array.dtype} of shape {array.shape}")
    return [_text(v, where) for v in array]


def _text(value, where: str) -> str:
    if isinstance(value, (bytes, np.bytes_)):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            raise ModelFileError(f"{where}: a name that is not UTF-8 ({shown(bytes(value))})") from None
    if isinstance(value, str):
        try:  # h5py hands a stored name that is not UTF-8 over with surrogate escapes; looked up, it raised
            value.encode()  # UnicodeEncodeError (found by tests/test_fuzz_mobilenetv3.py: one flipped byte)
        except UnicodeEncodeError:
            raise ModelFileError(f"{where}: a name that is not UTF-8 ({shown(value)})") from None
        return value
    raise ModelFileError(f"{where}: a name expected, found a {type(value).__name__}")


def is_keras1_squeezenet(path) -> bool:
    with _open_h5(path) as f:
        names = _names(f.attrs.get("layer_names"), f"{path}: layer_names")
    return "fire2/squeeze1x1" in names


def _kernel_and_bias(group, where: str):
    import h5py

    found = []
    group.visititems(lambda name, obj: found.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
    arrays = [_array(obj, f"{where}/{name}") for name, obj in found]
    kernels = [a for a in arrays if a.ndim == 4]
    biases = [a for a in arrays if a.ndim == 1]
    if len(kernels) != 1 or len(biases) != 1:
        raise ModelFileError(f"{where}: expected one kernel and one bias, found shapes {[a.shape for a in arrays]}")
    return kernels[0], biases[0]


def port_squeezenet_keras1(model, path) -> list[str]:
    """Load the Keras-1 SqueezeNet file into a tflkit squeezenet1_1; returns the names of the layers loaded."""
    import h5py


    loaded = []
    with _open_h5(path) as f:
        names = _names(f.attrs.get("layer_names"), f"{path}: layer_names")
        for name in names:
            group = f
            for part in name.split("/"):
                group = group.get(part) if isinstance(group, h5py.Group) and part else None
            if group is None or not len(_group(group, f"{path}:{name}")):
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
    if not loaded:  # returned [] (a success, with the Caffe normalization set) when every layer group was missing
        raise ModelFileError(f"{path}: lists SqueezeNet layers (fire2/squeeze1x1, ...) but holds none's weights")
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
        root = _group(f["model_weights"], f"{path}: model_weights") if "model_weights" in f else f
        for name in _names(root.attrs.get("layer_names"), f"{path}: layer_names"):
            where = f"{path}:{name}"
            group = _group(_child(root, name, where), where)
            order = _names(group.attrs.get("weight_names"), f"{where}: weight_names")
            if order:
                out[name] = [_array(_child(group, w, where), f"{where}/{w}") for w in order]
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
        layers = _group(f["layers"], f"{path}: layers")
        groups = set(layers)
        for key, group in layers.items():
            where = f"{path}:layers/{key}"
            vars_ = _group(group, where).get("vars")
            if vars_ is None:
                continue
            vars_ = _group(vars_, f"{where}/vars")
            name = vars_.attrs.get("name")
            arrays = [_array(_child(vars_, str(i), f"{where}/vars"), f"{where}/vars/{i}") for i in range(len(vars_))]
            if name is None:
                unnamed[key] = arrays
            elif arrays:
                out[_text(name, f"{where}/vars: name")] = arrays
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
        report = import_tflite_weights(model, path)
        return report["loaded_layers"], report["skipped_layers"]
    elif path.suffix in (".pth", ".pt"):
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


def import_weights(path, model_name: str, image_size: int | None = None, num_classes: int | None = None):
    """(model, report) for any supported weights file."""
    path = Path(path)
    get_spec(model_name)  # an unknown name is a one-line UsageError before anything is read
    if not path.is_file():
        raise UsageError(f"weights file not found: {path}")
    if path.suffix == ".tflite":
        return model_from_tflite(path, model_name, image_size=image_size)
    model = create_model(model_name, num_classes=num_classes, image_size=image_size)
    loaded, skipped = load_weights_file(model, path)
    return model, {"source": str(path), "loaded_layers": loaded, "skipped_layers": skipped}
