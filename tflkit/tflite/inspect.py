"""What is inside a .tflite: operators with their tensor types, input/output quantization. No TensorFlow import."""

from __future__ import annotations

from collections import Counter

import numpy as np

from tflkit.tflite.runtime import delegation_of, load_interpreter, load_interpreter_or_builtin

_FLOAT = {np.float32, np.float16, np.float64}
# Ops whose job is to convert between float and integer: unavoidable at a float boundary, not a float kernel.
_BOUNDARY_OPS = {"QUANTIZE", "DEQUANTIZE"}


def _type_name(t) -> str:
    return np.dtype(t).name


def op_table(path) -> list[dict]:
    """One row per operator: index, op name, input and output tensor types."""
    # Without XNNPACK: with it, the ops it takes show up as DELEGATE nodes instead of their own names.
    interpreter = load_interpreter(path, xnnpack=False)
    return [
        {
            "index": op["index"],
            "op": op["op_name"],
            "inputs": [_type_name(t) for t in op["operand_types"]],
            "outputs": [_type_name(t) for t in op["result_types"]],
        }
        for op in interpreter._get_ops_details()
    ]


def op_counts(path) -> dict[str, int]:
    return dict(Counter(row["op"] for row in op_table(path)))


def float_ops(path) -> list[str]:
    """Operators that compute in float (any float output), excluding QUANTIZE/DEQUANTIZE boundaries.
    Flex (TF select) ops are always reported: they need the TF runtime on the device."""
    found = []
    for row in op_table(path):
        is_flex = row["op"].startswith("Flex") or row["op"] == "CUSTOM"
        computes_float = any(np.dtype(t).type in _FLOAT for t in row["outputs"])
        if is_flex or (computes_float and row["op"] not in _BOUNDARY_OPS):
            found.append(row["op"])
    return sorted(set(found))


def io_details(path) -> dict:
    interpreter = load_interpreter(path, xnnpack=False)  # I/O is the file's; XNNPACK may refuse a model

    def describe(d):
        scale, zero_point = d["quantization"]
        return {"name": d["name"], "shape": [int(x) for x in d["shape"]], "dtype": _type_name(d["dtype"]),
                "scale": float(scale), "zero_point": int(zero_point)}

    return {"inputs": [describe(d) for d in interpreter.get_input_details()],
            "outputs": [describe(d) for d in interpreter.get_output_details()]}


WEIGHT_OPS = ("CONV_2D", "FULLY_CONNECTED")


def weight_sparsity(path, ops=WEIGHT_OPS) -> float | None:
    """Fraction of exact zeros in the constant weight tensors (input 1) of `ops`, read back from the .tflite.
    Quantized weights are symmetric (zero point 0), so a pruned zero stays an exact zero."""
    interpreter = load_interpreter(path, xnnpack=False)
    details = interpreter._get_ops_details()
    producer = {int(i): op for op in details for i in op["outputs"]}
    zeros = total = 0
    for op in details:
        if op["op_name"] not in ops or len(op["inputs"]) < 2:
            continue
        index = int(op["inputs"][1])
        if index in producer:
            # fp16 keeps each weight as a float16 constant behind a DEQUANTIZE, whose output is only filled at run
            # time (reading it here gave all zeros): count the constant. Any other producer: not a constant weight.
            if producer[index]["op_name"] != "DEQUANTIZE":
                continue
            index = int(producer[index]["inputs"][0])
        try:
            weights = interpreter.get_tensor(index)
        except ValueError:  # not a constant (a weight computed at run time): nothing to count
            continue
        zeros += int(np.sum(weights == 0))
        total += weights.size
    return zeros / total if total else None


def gzip_size(path) -> int:
    """Size of the .tflite after gzip -9: what sparsity buys when the app ships or downloads the file."""
    import gzip
    from pathlib import Path

    return len(gzip.compress(Path(path).read_bytes(), compresslevel=9))


# Ops whose input 1 is a weight tensor and input 2 (when present) its bias.
WEIGHTED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "CONV_3D", "BATCH_MATMUL"}
_TRANSPOSE_CONV_WEIGHT = 1  # TRANSPOSE_CONV: (output_shape, weights, input, bias)


def parameters(path) -> dict:
    """Parameters stored in the file: `params` (elements) and `weight_dtypes` (dtype -> elements).

    A parameter is a constant tensor the graph reads: weights and biases of conv / depthwise / fully connected,
    and any other non-scalar float or integer constant (per-channel scales). Shape and axis operands (int32
    inputs of RESHAPE, MEAN, PAD...) and scalar constants (the 3 and 1/6 of hard-swish) are not parameters.
    A weight stored as int8 or float16 and expanded by a DEQUANTIZE node at run time counts with its stored
    dtype: an int8-weight model reads as int8 even where its kernels compute in float.
    """
    interpreter = load_interpreter(path, xnnpack=False)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    produced = {int(t): op for op in ops for t in op["outputs"]}
    graph_inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    counted: dict[int, str] = {}

    def stored(index):  # follow a DEQUANTIZE back to the constant it expands
        op = produced.get(index)
        if op is not None and op["op_name"] == "DEQUANTIZE":
            return int(op["inputs"][0])
        return index

    for op in ops:
        for position, raw in enumerate(int(t) for t in op["inputs"]):
            if raw < 0:
                continue
            index = stored(raw)
            if index in produced or index in graph_inputs or index in counted:
                continue
            detail = details[index]
            size = int(np.prod(detail["shape"])) if len(detail["shape"]) else 1
            weight_or_bias = op["op_name"] in WEIGHTED_OPS and position >= 1 and not (
                op["op_name"] == "TRANSPOSE_CONV" and position == 0)
            integer = np.issubdtype(detail["dtype"], np.integer)
            if weight_or_bias or (size > 1 and not (integer and detail["dtype"] in (np.int32, np.int64))):
                counted[index] = _type_name(detail["dtype"])
    by_dtype: Counter = Counter()
    for index, dtype in counted.items():
        shape = details[index]["shape"]
        by_dtype[dtype] += int(np.prod(shape)) if len(shape) else 1
    return {"params": int(sum(by_dtype.values())), "weight_dtypes": dict(sorted(by_dtype.items()))}


def delegation(path, threads: int = 1) -> dict:
    """What XNNPACK takes of the model (tflkit.tflite.runtime.delegation_of), or why it refused it."""
    interpreter, refused = load_interpreter_or_builtin(path, threads=threads)
    if refused:
        return {"partitions": 0, "delegated_nodes": 0, "total_nodes": None, "reference_ops": None,
                "xnnpack_failed": refused}
    d = delegation_of(interpreter)
    return {"partitions": d.partitions, "delegated_nodes": d.delegated_nodes, "total_nodes": d.total_nodes,
            "reference_ops": d.reference_ops, "xnnpack_failed": None}
