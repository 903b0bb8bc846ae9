"""Import the weights of a .tflite classifier into a registry model of the same layout (`--pretrained FILE.tflite`).

A .tflite holds no layer names a Keras model could match, and the converter has folded every BatchNormalization
into the conv before it (its bias). What survives is the graph: the CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
ops in execution order, each with a filter and a bias. Those are mapped onto the Keras model's Conv2D,
DepthwiseConv2D and Dense layers, every shape checked, so the source must have the target's layout (the TF-slim
model garden MobileNetV3-Small onto `mobilenetv3_small_100_tf`, a tflkit export onto its own architecture): by the
Keras layer names the converter keeps in tensor names where every op names exactly one layer (a Keras export, whose
execution order can differ from Keras' layer order), otherwise in order (TF-slim's scopes name no Keras layer).
For each pair:

  weights   dequantized where quantized ((q - zero_point) * scale, per tensor or per channel), fp16 weights read
            through their DEQUANTIZE op, then transposed: TFLite conv [out, kh, kw, in] -> Keras [kh, kw, in, out],
            depthwise [1, kh, kw, C*M] -> [kh, kw, C, M], fully connected [out, in] (or a 1x1 conv on a pooled
            map) -> [in, out]
  bias      into the layer's bias when it has one; otherwise into the BatchNormalization that follows it, restored
            as an identity (gamma 1, mean 0, variance 1 - epsilon, so it scales by exactly 1) with beta = the
            folded bias; a hard sigmoid's `+ 3` that the converter folded into the bias before it is taken out.
            The Keras model then computes what the .tflite computes, in float.

The model's input normalization layer is either in the graph (a tflkit export: its depthwise op maps like any
other) or not (the TF-slim file feeds [-1, 1] pixels): then a quantized input's own scale and zero point give it,
(p - zero_point) * scale, which is exactly what the .tflite does to a uint8 camera pixel.
No TensorFlow import: the LiteRT interpreter reads the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tflkit.core.errors import ModelFileError
from tflkit.data.safe_pickle import shown
from tflkit.models import create_model
from tflkit.models.layers import NORMALIZE_LAYER
from tflkit.tflite.runtime import load_interpreter

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
KERAS_WEIGHT_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense")


@dataclass(frozen=True)
class TFLiteWeights:
    """One weight op of the graph: its kind, filter and bias as float arrays in TFLite layout, and their names."""

    op: str
    filter: np.ndarray
    bias: np.ndarray | None
    name: str  # the filter tensor's name: the source layer, for messages and the import report
    output_name: str = ""  # the output tensor's name: the converter lists there the ops it fused into this one
    output_shape: tuple = ()


@dataclass(frozen=True)
class TFLiteWeightFile:
    ops: list[TFLiteWeights]
    input_quantization: tuple[float, int] | None  # (scale, zero_point) of a quantized input, else None
    num_outputs: int


def _dequantized(interpreter, detail: dict, path) -> np.ndarray:
    """A weight tensor as float32, or ModelFileError naming it: a tensor without data (a damaged buffer offset in
    the TF-slim file made LiteRT's get_tensor raise ValueError, found by tests/test_fuzz_mobilenetv3.py), a
    quantization that does not fit its shape, or values that are not finite (a NaN scale: a model of NaNs)."""
    where = f"{path}: weight tensor {shown(detail['name'])}"
    try:
        value = interpreter.get_tensor(detail["index"])
    except ValueError:  # LiteRT: "Tensor data is null. Run allocate_tensors() first", which it was
        raise ModelFileError(f"{where} holds no data (its buffer is empty or damaged)") from None
    params = detail["quantization_parameters"]
    scales, zero_points = np.asarray(params["scales"]), np.asarray(params["zero_points"])
    if not np.issubdtype(value.dtype, np.integer) or scales.size == 0:
        out = value.astype(np.float32)
    else:
        shape = [1] * value.ndim
        try:
            if scales.size > 1:  # per channel along quantized_dimension
                shape[params["quantized_dimension"]] = scales.size
            out = (value.astype(np.float64) - zero_points.reshape(shape)) * scales.reshape(shape)
        except (IndexError, ValueError):
            raise ModelFileError(f"{where}: {scales.size} scales and {zero_points.size} zero points do not fit its "
                                 f"shape {list(value.shape)} (quantized dimension {params['quantized_dimension']})") \
                from None
        with np.errstate(over="ignore", invalid="ignore"):
            out = out.astype(np.float32)
    if not np.isfinite(out).all():
        raise ModelFileError(f"{where} dequantizes to values that are not finite (NaN or infinity)")
    return out


def read_tflite_weights(path) -> TFLiteWeightFile:
    """The weight ops of a .tflite's main graph, in execution order, dequantized to float32."""
    interpreter = load_interpreter(path, xnnpack=False)  # delegates may drop constant buffers
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # the only listing of the graph LiteRT's Python API offers
    produced_by = {int(out): op for op in ops for out in op["outputs"]}

    def constant(index: int) -> tuple[np.ndarray, str]:
        producer = produced_by.get(index)
        if producer is not None and producer["op_name"] == "DEQUANTIZE":  # fp16 (or int8) weights
            index = int(producer["inputs"][0])
        elif producer is not None:
            raise ModelFileError(f"{path}: weight tensor {shown(details[index]['name'])} is computed at run time "
                                 f"({producer['op_name']}), not stored; cannot import")
        return _dequantized(interpreter, details[index], path), details[index]["name"]

    try:
        found = []
        for op in ops:
            if op["op_name"] not in WEIGHT_OPS:
                continue
            inputs = [int(i) for i in op["inputs"]]
            filt, name = constant(inputs[1])
            bias = constant(inputs[2])[0] if len(inputs) > 2 and inputs[2] >= 0 else None
            out = details[int(op["outputs"][0])]
            found.append(TFLiteWeights(op["op_name"], filt, bias, name, out["name"],
                                       tuple(int(d) for d in out["shape"])))
        if not found:
            raise ModelFileError(f"{path}: no CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED op; nothing to import")
        inp = interpreter.get_input_details()[0]
        quant = inp["quantization"] if np.issubdtype(inp["dtype"], np.integer) and inp["quantization"][0] else None
        num_outputs = int(interpreter.get_output_details()[0]["shape"][-1])
    except (IndexError, KeyError) as exc:  # an op without its inputs, a tensor LiteRT does not list, no input
        raise ModelFileError(f"{path}: not a graph whose weights can be read ({type(exc).__name__}: "
                             f"{shown(exc, 100)})") from None
    return TFLiteWeightFile(found, (float(quant[0]), int(quant[1])) if quant else None, num_outputs)


def _keras_kernel(src: TFLiteWeights, layer) -> np.ndarray:
    w, expected = src.filter, tuple(layer.weights[0].shape)
    if type(layer).__name__ == "Dense":  # FULLY_CONNECTED [out, in], or a 1x1 CONV_2D [out, 1, 1, in] on a pooled map
        return w.reshape(w.shape[0], -1).T
    if src.op == "DEPTHWISE_CONV_2D":  # [1, kh, kw, C*M] -> [kh, kw, C, M]
        return w[0].reshape(expected) if w[0].size == np.prod(expected) else w[0]
    return w.transpose(1, 2, 3, 0)  # CONV_2D [out, kh, kw, in] -> [kh, kw, in, out]


def _match_by_name(ops: list[TFLiteWeights], targets: list) -> list | None:
    """The target layer of each op by the Keras layer name the converter kept in its tensor names (a Keras
    export: `model_1/layer2_0_downsample_conv_1/convolution`), when every op names exactly one distinct layer.
    Execution order can differ from Keras' layer order (a shortcut conv runs before or after its block), so names
    win where they exist; None when they do not (a TF-slim file), and the order is used."""
    matched = []
    for op in ops:
        text = f"{op.name};{op.output_name}"
        hits = [t for t in targets if f"/{t.name}/" in text or f"/{t.name}_1/" in text]
        if len(hits) != 1:
            return None
        matched.append(hits[0])
    return matched if len({id(t) for t in matched}) == len(targets) == len(matched) else None


def _consumers(model) -> dict:
    """Map each layer name to the layers that take its output as their (single) input."""
    after = {}
    for layer in model.layers:
        inputs = layer.input if isinstance(layer.input, list) else [layer.input]
        for tensor in inputs:
            history = getattr(tensor, "_keras_history", None)
            if history is not None:
                after.setdefault(history.operation.name, []).append(layer)
    return after


def _folded_offset(src: TFLiteWeights, consumers: list) -> float:
    """The TF converter folds the `+ 3` of a hard sigmoid, relu6(x + 3) / 6, into the bias of the conv before it
    (its output tensor then names `<activation>/add`); that constant is taken back out of the bias."""
    for layer in consumers:
        activation = getattr(getattr(layer, "activation", None), "__name__", "")
        if activation == "hard_sigmoid" and any(f"{layer.name}{suffix}/add;" in src.output_name + ";"
                                                for suffix in ("", "_1")):
            return 3.0
    return 0.0


def import_tflite_weights(model, path, log=None) -> dict:
    """Load the .tflite at `path` into `model`. Returns {"source", "loaded_layers", "skipped_layers", "pairs"}.

    Raises ModelFileError naming the first pair whose shapes disagree, or when the op counts differ.
    """
    path = Path(path)
    source = read_tflite_weights(path)
    targets = [layer for layer in model.layers if type(layer).__name__ in KERAS_WEIGHT_LAYERS]
    has_norm = any(layer.name == NORMALIZE_LAYER for layer in targets)
    if has_norm and len(targets) == len(source.ops) + 1 and targets[0].name == NORMALIZE_LAYER:
        targets = targets[1:]  # the graph takes normalized input (TF-slim): the normalization comes from its input
        set_norm_from_input = True
    else:
        set_norm_from_input = False
    if len(targets) != len(source.ops):
        raise ModelFileError(f"{path}: {len(source.ops)} conv/dense ops, but {model.name} has {len(targets)} "
                             f"conv/dense layers; not the same architecture")
    ordered = _match_by_name(source.ops, targets)
    if ordered is not None:
        targets = ordered
    consumers = _consumers(model)
    bn_after = {name: next(c for c in layers if type(c).__name__ == "BatchNormalization")
                for name, layers in consumers.items() if any(type(c).__name__ == "BatchNormalization" for c in layers)}
    plan, skipped = [], []
    for i, (src, layer) in enumerate(zip(source.ops, targets)):
        kernel = _keras_kernel(src, layer)
        expected = tuple(layer.weights[0].shape)
        if kernel.shape != expected:
            if i == len(targets) - 1 and kernel.shape[:-1] == expected[:-1]:
                skipped.append(layer.name)  # the classifier, for another number of classes: keeps its init
                continue
            raise ModelFileError(f"{path}: {shown(src.name)} ({src.op} {list(src.filter.shape)}) does not fit "
                                 f"{layer.name} (kernel {list(expected)}); not the same architecture")
        channels = int(np.prod(expected[2:])) if src.op == "DEPTHWISE_CONV_2D" else expected[-1]
        bias = src.bias if src.bias is not None else np.zeros(channels, np.float32)
        bias = bias - np.float32(_folded_offset(src, consumers.get(layer.name, [])))
        bn = None if len(layer.weights) > 1 else bn_after.get(layer.name)
        if len(layer.weights) == 1 and bn is None and np.any(bias):
            raise ModelFileError(f"{path}: {shown(src.name)} has a bias but {layer.name} has none and no "
                                 f"BatchNormalization follows it")
        if bn is not None and tuple(bn.weights[0].shape) != bias.shape:
            raise ModelFileError(f"{path}: {shown(src.name)} bias {bias.shape} does not fit {bn.name} "
                                 f"{bn.weights[0].shape}")
        plan.append((src, layer, kernel, bias, bn))

    loaded, pairs = [], []
    for src, layer, kernel, bias, bn in plan:  # every shape checked before anything is written
        if len(layer.weights) > 1:
            layer.set_weights([kernel, bias.astype(np.float32)])
        else:
            layer.set_weights([kernel])
        loaded.append(layer.name)
        if bn is not None:
            ones = np.ones_like(bias, np.float32)
            weights = {"gamma": ones, "beta": bias.astype(np.float32), "moving_mean": np.zeros_like(ones),
                       "moving_variance": ones - np.float32(bn.epsilon)}
            bn.set_weights([weights[w.path.split("/")[-1]] for w in bn.weights])
            loaded.append(bn.name)
        pairs.append({"tensor": src.name, "op": src.op, "layer": layer.name, "batchnorm": bn.name if bn else None,
                      "output_shape": list(src.output_shape)})
    if set_norm_from_input:
        if source.input_quantization is not None:
            scale, zero_point = source.input_quantization
            norm = model.get_layer(NORMALIZE_LAYER)
            norm.set_weights([np.full((1, 1, 3, 1), scale, np.float32), np.full((3,), -zero_point * scale,
                                                                                    np.float32)])
            loaded.append(NORMALIZE_LAYER)
        elif log:
            log(f"{path.name}: float input without a normalization op; keeping {model.name}'s own normalization")
    return {"source": str(path), "loaded_layers": loaded, "skipped_layers": skipped, "pairs": pairs,
            "num_outputs": source.num_outputs}


def model_from_tflite(path, model_name: str, image_size: int | None = None, log=None):
    """A registry model built for the .tflite's own classes (its head kept) with the .tflite's weights in it.

    The strides are not in the weights: the model is built with the standard stem, and again with the registry's
    small-input stem (a tflkit export of a 32x32 run) when the .tflite's feature maps say so."""
    interpreter = load_interpreter(path, xnnpack=False)
    shape = interpreter.get_input_details()[0]["shape"]
    num_classes = int(interpreter.get_output_details()[0]["shape"][-1])
    size = image_size or int(shape[1])
    first_error = None
    for small_input in (False, True):
        model = create_model(model_name, num_classes=num_classes, image_size=size, small_input=small_input)
        try:
            report = import_tflite_weights(model, path, log=log)
        except ModelFileError as exc:  # e.g. ResNet's small-input stem is a 3x3 conv, not a 7x7
            first_error = first_error or exc
            continue
        mismatch = _spatial_mismatch(model, report["pairs"]) if not image_size or image_size == shape[1] else None
        if mismatch is None:
            return model, report
        first_error = first_error or ModelFileError(f"{path}: {mismatch}; the file's strides are not "
                                                    f"{model_name}'s (with or without its small-input stem)")
    raise first_error


def _spatial_mismatch(model, pairs) -> str | None:
    for pair in pairs:
        want = tuple(pair["output_shape"][1:3])
        got = tuple(model.get_layer(pair["layer"]).output.shape[1:3])
        if len(want) == 2 and len(got) == 2 and want != got:
            return (f"{shown(pair['tensor'])} gives {want[0]}x{want[1]} maps where {pair['layer']} gives "
                    f"{got[0]}x{got[1]}")
    return None
