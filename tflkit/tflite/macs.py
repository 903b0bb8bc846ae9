"""Count multiply-accumulates from a .tflite file, per operator type.

Reads the graph through the LiteRT interpreter (no TensorFlow import), so it counts what will really run: after
the converter's folding and fusing. Tensor shapes are taken with batch 1.
`macs` is the conventional figure (convolutions, depthwise convolutions, fully connected, matmuls), the one
papers and torchvision report; element-wise and pooling work is counted separately under `other_ops`.
`converters.macs.count_keras_macs(model)` converts a Keras model to fp32 TFLite first and counts that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tflkit.tflite.runtime import load_interpreter

# One operation per output element. Data movement (RESHAPE, TRANSPOSE, CONCATENATION, slicing, padding) is free.
_ELEMENTWISE = {
    "ADD", "SUB", "MUL", "DIV", "FLOOR_DIV", "FLOOR_MOD", "POW", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM",
    "HARD_SWISH", "LOGISTIC", "TANH", "RELU", "RELU6", "RELU_0_TO_1", "RELU_N1_TO_1", "LEAKY_RELU", "PRELU", "ELU",
    "GELU", "RSQRT", "SQRT", "SQUARE", "EXP", "LOG", "ABS", "NEG", "SIN", "COS", "ADD_N", "QUANTIZE", "DEQUANTIZE",
}
_REDUCTIONS = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "SOFTMAX", "LOG_SOFTMAX", "L2_NORMALIZATION"}
_POOLS = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"}
# Interpolation reads a few neighbours per output element.
_RESIZE = {"RESIZE_BILINEAR": 4, "RESIZE_NEAREST_NEIGHBOR": 1}


@dataclass
class MacCount:
    macs: int = 0  # conv + depthwise + fully connected + matmul
    by_op: dict[str, int] = field(default_factory=dict)  # op type -> MACs (dense ops) or element ops (others)
    other_ops: int = 0  # element-wise, pooling and reduction work

    def to_dict(self) -> dict:
        return {"macs": self.macs, "other_ops": self.other_ops, "by_op": dict(self.by_op)}


def count_macs(model_path) -> MacCount:
    result = MacCount()
    for row in layer_macs(model_path):
        if row["dense"]:
            result.macs += row["macs"]
        else:
            result.other_ops += row["macs"]
        if row["macs"]:
            result.by_op[row["op"]] = result.by_op.get(row["op"], 0) + row["macs"]
    return result


def layer_macs(model_path) -> list[dict]:
    """One row per node in execution order: index, op, output name and shape, `macs` (multiply-accumulates for
    dense ops, element operations for the others) and `dense` (whether `macs` counts toward the model's MACs)."""
    # Without XNNPACK: a delegate would replace the graph's nodes with one opaque node.
    interpreter = load_interpreter(model_path, xnnpack=False)
    details = interpreter.get_tensor_details()
    shapes = {t["index"]: tuple(int(d) for d in t["shape"]) for t in details}
    names = {t["index"]: t["name"] for t in details}
    rows = []
    for op in interpreter._get_ops_details():  # public get_ops_details does not exist in LiteRT 2.3
        name = op["op_name"]
        inputs = [i for i in op["inputs"] if i >= 0]
        outputs = [o for o in op["outputs"] if o >= 0]
        if not outputs:
            continue
        out_elems = int(np.prod(shapes[outputs[0]]))
        dense = _dense_macs(name, [shapes[i] for i in inputs], shapes[outputs[0]], out_elems)
        work = dense if dense is not None else _other_work(name, [shapes[i] for i in inputs], out_elems)
        rows.append({"index": int(op["index"]), "op": name, "output": names[outputs[0]],
                     "shape": list(shapes[outputs[0]]), "macs": int(work), "dense": dense is not None})
    return rows


def _dense_macs(name, in_shapes, out_shape, out_elems):
    if name == "CONV_2D":  # filter: [out_c, kh, kw, in_c / groups]
        _, kh, kw, cin = in_shapes[1]
        return out_elems * kh * kw * cin
    if name == "DEPTHWISE_CONV_2D":  # filter: [1, kh, kw, out_c]
        _, kh, kw, _ = in_shapes[1]
        return out_elems * kh * kw
    if name == "CONV_3D":
        kd, kh, kw, cin, _ = in_shapes[1]
        return out_elems * kd * kh * kw * cin
    if name == "TRANSPOSE_CONV":  # inputs: output_shape, filter [out_c, kh, kw, in_c], input
        _, kh, kw, cin = in_shapes[1]
        in_elems = int(np.prod(in_shapes[2][:-1]))
        return in_elems * kh * kw * cin * in_shapes[1][0]
    if name == "FULLY_CONNECTED":  # filter: [units, in]
        return out_elems * in_shapes[1][-1]
    if name == "BATCH_MATMUL":
        return out_elems * in_shapes[0][-1]
    return None


def _other_work(name, in_shapes, out_elems):
    if name in _ELEMENTWISE:
        return out_elems
    if name in _RESIZE:
        return out_elems * _RESIZE[name]
    if name in _REDUCTIONS:
        return int(np.prod(in_shapes[0]))
    if name in _POOLS:
        # the input is read about (stride-overlap aside) once per output window; the input size is the honest bound
        return int(np.prod(in_shapes[0]))
    return 0
