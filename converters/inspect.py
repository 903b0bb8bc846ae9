"""What is inside a .tflite: operators with their tensor types, input/output quantization. No TensorFlow import."""

from __future__ import annotations

from collections import Counter

import numpy as np

from tflkit.runtime import load_interpreter

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
    interpreter = load_interpreter(path)

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
