"""Put the fused HARD_SWISH op back into float .tflite files.

The models spell hard-swish as (relu6(x + 3) * x) / 6 (tflkit/models/layers.py: the converter does not fuse that
form, so int8 graphs keep ops XNNPACK runs in int8 and stay one partition). In a float file the same spelling is
three XNNPACK ops, ADD(x, 3) with RELU6 fused, MUL(gate, x), MUL(product, 1/6), where HARD_SWISH is one: with the
three ops MobileNetV3's fp32 files ran 1.14-1.29x slower at 1 thread (benchmarks/results/int8_delegation.md). This
rewrite finds exactly that pattern in a float graph, or the one of the spelling before, MUL(x, 1/6), ADD(x, 3)
with RELU6 fused, MUL (models saved by earlier versions), and replaces it with HARD_SWISH(x), the op the converter
itself emits for x * relu6(x + 3) / 6; the float function is the same. Quantized graphs are never touched: their
pattern carries quantization parameters and int8 HARD_SWISH is what XNNPACK refuses.
"""

from __future__ import annotations

import numpy as np

_ONE_SIXTH, _THREE = 1.0 / 6.0, 3.0


def fuse_hard_swish(data: bytes) -> tuple[bytes, int]:
    """(the rewritten file, how many hard-swishes were fused); the input unchanged when there is none."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    if not _has_add_relu6(data, schema):  # no candidate: skip the object-API round trip (86 MB for EfficientNetV2)
        return data, 0
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    codes = [flatbuffer_utils.opcode_to_name(model, i) for i in range(len(model.operatorCodes))]
    fused = 0
    for graph in model.subgraphs:
        matches = _matches(model, graph, codes, schema)
        if not matches:
            continue
        code = _opcode_index(model, codes, schema)
        drop = set()
        for last, (fused_away, x) in matches.items():
            op = graph.operators[last]
            op.opcodeIndex, op.inputs = code, np.array([x], dtype=np.int32)
            op.builtinOptionsType = schema.BuiltinOptions.HardSwishOptions
            op.builtinOptions = schema.HardSwishOptionsT()
            drop |= set(fused_away)
            fused += 1
        graph.operators = [op for i, op in enumerate(graph.operators) if i not in drop]
        _drop_dead_dequantize(graph, codes)
    if not fused:
        return data, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), fused


def _has_add_relu6(data: bytes, schema) -> bool:
    model = schema.Model.GetRootAs(data, 0)
    adds = {i for i in range(model.OperatorCodesLength())
            if max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
            == schema.BuiltinOperator.ADD}
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if op.OpcodeIndex() in adds and op.BuiltinOptions() is not None:
                options = schema.AddOptions()
                options.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
                if options.FusedActivationFunction() == schema.ActivationFunctionType.RELU6:
                    return True
    return False


def _matches(model, graph, codes, schema) -> dict[int, tuple[tuple[int, ...], int]]:
    """{index of the op that becomes HARD_SWISH: (indices of the ops fused away, x)}, float tensors only."""
    producer, consumers = {}, {}
    for i, op in enumerate(graph.operators):
        for t in op.outputs:
            producer[int(t)] = i
        for t in op.inputs:
            consumers.setdefault(int(t), []).append(i)
    outputs = {int(t) for t in graph.outputs}

    def only_feeds(k, i):  # op k's output feeds op i alone: dropping op k cannot cut the graph
        t = int(graph.operators[k].outputs[0])
        return consumers.get(t) == [i] and t not in outputs

    def gate_of(k):  # x when op k is ADD(x, 3) with RELU6 fused
        op = graph.operators[k]
        return _scalar_operand(model, graph, producer, op, codes, "ADD", _THREE) if _fused_activation(op) == 3 else None

    def today(i, op):  # MUL(MUL(ADD(x, 3)+RELU6, x), 1/6): ops fused away and x, or None
        k = producer.get(_scalar_operand(model, graph, producer, op, codes, "MUL", _ONE_SIXTH))
        if k is None or codes[graph.operators[k].opcodeIndex] != "MUL" or _fused_activation(graph.operators[k]):
            return None
        first, second = (int(t) for t in graph.operators[k].inputs)
        for g, x in ((producer.get(first), second), (producer.get(second), first)):
            if g is not None and gate_of(g) == x and only_feeds(g, k) and only_feeds(k, i):
                return (g, k), x
        return None

    def before(i, op):  # MUL(MUL(x, 1/6), ADD(x, 3)+RELU6)
        a, b = (producer.get(int(t)) for t in op.inputs)
        if a is None or b is None:
            return None
        for scaled, gate in ((a, b), (b, a)):
            x = _scalar_operand(model, graph, producer, graph.operators[scaled], codes, "MUL", _ONE_SIXTH)
            if x is not None and x == gate_of(gate) and only_feeds(scaled, i) and only_feeds(gate, i):
                return (scaled, gate), x
        return None

    found = {}
    for i, op in enumerate(graph.operators):
        if codes[op.opcodeIndex] != "MUL" or len(op.inputs) != 2 or _fused_activation(op) != 0:
            continue
        if any(graph.tensors[int(t)].type != schema.TensorType.FLOAT32 for t in (*op.inputs, *op.outputs)):
            continue
        match = today(i, op) or before(i, op)
        if match:
            found[i] = match
    return found


def _scalar_operand(model, graph, producer, op, codes, name, value) -> int | None:
    """The non-constant input of `op` when it is `name`(x, constant `value`), else None. The constant is a float32
    scalar, or (fp16 files) the DEQUANTIZE of a float16 one."""
    if codes[op.opcodeIndex] != name or len(op.inputs) != 2:
        return None
    for x, c in ((op.inputs[0], op.inputs[1]), (op.inputs[1], op.inputs[0])):
        constant = _scalar(model, graph, int(c), "<f4")
        source = producer.get(int(c))
        if constant is None and source is not None and codes[graph.operators[source].opcodeIndex] == "DEQUANTIZE":
            constant = _scalar(model, graph, int(graph.operators[source].inputs[0]), "<f2")
        if constant is not None and np.isclose(constant, value, rtol=1e-3 if constant.dtype == np.float16 else 1e-6):
            return int(x)
    return None


def _scalar(model, graph, tensor: int, dtype: str):
    buffer = model.buffers[graph.tensors[tensor].buffer].data
    if buffer is None or len(buffer) != np.dtype(dtype).itemsize:
        return None
    return np.frombuffer(np.asarray(buffer, dtype=np.uint8).tobytes(), dtype=dtype)[0]


def _drop_dead_dequantize(graph, codes) -> None:
    """DEQUANTIZE ops of constants whose every consumer was fused away (fp16 files)."""
    used = {int(t) for op in graph.operators for t in op.inputs} | {int(t) for t in graph.outputs}
    graph.operators = [op for op in graph.operators
                       if codes[op.opcodeIndex] != "DEQUANTIZE" or any(int(t) in used for t in op.outputs)]


def _fused_activation(op) -> int | None:
    options = op.builtinOptions
    return getattr(options, "fusedActivationFunction", None)


def _opcode_index(model, codes, schema) -> int:
    if "HARD_SWISH" in codes:
        return codes.index("HARD_SWISH")
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.HARD_SWISH
    code.version = 1
    model.operatorCodes.append(code)
    codes.append("HARD_SWISH")
    return len(codes) - 1
