"""Structure-aware mutants of a .tflite: where, in the bytes of a real file, each field a reader trusts lives.

`field_sites(data)` walks the flatbuffer (tensorflow/lite/schema/schema.fbs, field slots in declaration order) with
the plain `flatbuffers` runtime and returns, per kind, the byte positions of: uoffsets (the root, every table,
vector and string reference, every vtable reference), tensor shape dims, tensor buffer indices, operator opcode
indices, tensor indices (operator and subgraph inputs/outputs), tensor types, vector lengths and string bytes.
`mutate(data, kind, site, value)` writes a value there. Hypothesis picks the kind, the site and the value
(tests/test_fuzz_readers.py); random byte flips and truncations need no map. QUANT_KINDS (a quantized tensor's
scales, zero points, their vectors' lengths and its quantized dimension: what a weights importer dequantizes with,
tests/test_fuzz_mobilenetv3.py) are mapped beside KINDS, not in it, so the .tflite fuzzer's inputs stay as they were.
"""

from __future__ import annotations

import struct

from flatbuffers.table import Table

# slots
MODEL_OPCODES, MODEL_SUBGRAPHS, MODEL_DESCRIPTION, MODEL_BUFFERS = 1, 2, 3, 4
SUB_TENSORS, SUB_INPUTS, SUB_OUTPUTS, SUB_OPERATORS, SUB_NAME = 0, 1, 2, 3, 4
TENSOR_SHAPE, TENSOR_TYPE, TENSOR_BUFFER, TENSOR_NAME, TENSOR_QUANTIZATION = 0, 1, 2, 3, 4
QUANT_SCALE, QUANT_ZERO_POINT, QUANT_DIMENSION = 2, 3, 6
OP_OPCODE, OP_INPUTS, OP_OUTPUTS = 0, 1, 2
CODE_DEPRECATED, CODE_CUSTOM, CODE_BUILTIN = 0, 1, 3

KINDS = ("offset", "shape", "buffer_index", "opcode_index", "tensor_index", "type", "vector_length", "string")
WIDTH = {"offset": 4, "shape": 4, "buffer_index": 4, "opcode_index": 4, "tensor_index": 4, "type": 1,
         "vector_length": 4, "string": 1}
QUANT_KINDS = ("scale", "zero_point", "quant_length", "quant_dim")
WIDTH.update({"scale": 4, "zero_point": 8, "quant_length": 4, "quant_dim": 4})


class _Walker:
    def __init__(self, data: bytes):
        self.buf = bytearray(data)
        self.sites = {k: [] for k in KINDS + QUANT_KINDS}

    def table_at(self, pos: int) -> Table:
        self.sites["offset"].append(pos)  # the uoffset that led here (root or vector element or field)
        return Table(self.buf, pos + struct.unpack_from("<I", self.buf, pos)[0])

    def field(self, t: Table, slot: int) -> int | None:
        o = t.Offset(4 + 2 * slot)
        return t.Pos + o if o else None

    def subtables(self, t: Table, slot: int) -> list[Table]:
        at = self.field(t, slot)
        if at is None:
            return []
        self.sites["offset"].append(at)
        start = t.Vector(at - t.Pos)
        n = struct.unpack_from("<I", self.buf, start - 4)[0]
        self.sites["vector_length"].append(start - 4)
        return [self.table_at(start + 4 * i) for i in range(n)]

    def ints(self, t: Table, slot: int, kind: str) -> None:
        at = self.field(t, slot)
        if at is None:
            return
        self.sites["offset"].append(at)
        start = t.Vector(at - t.Pos)
        n = struct.unpack_from("<I", self.buf, start - 4)[0]
        self.sites["vector_length"].append(start - 4)
        self.sites[kind] += [start + 4 * i for i in range(n)]

    def scalar(self, t: Table, slot: int, kind: str) -> None:
        at = self.field(t, slot)
        if at is not None:
            self.sites[kind].append(at)

    def string(self, t: Table, slot: int) -> None:
        at = self.field(t, slot)
        if at is None:
            return
        self.sites["offset"].append(at)
        start = t.Vector(at - t.Pos)
        n = struct.unpack_from("<I", self.buf, start - 4)[0]
        self.sites["vector_length"].append(start - 4)
        self.sites["string"] += list(range(start, start + n))

    def quantization(self, tensor: Table) -> None:
        """Its QuantizationParameters' scale (float32) and zero_point (int64) vectors and quantized_dimension (absent
        when 0, flatbuffers' default), recorded without touching the other kinds' sites."""
        at = self.field(tensor, TENSOR_QUANTIZATION)
        if at is None:
            return
        q = Table(self.buf, at + struct.unpack_from("<I", self.buf, at)[0])
        for slot, kind in ((QUANT_SCALE, "scale"), (QUANT_ZERO_POINT, "zero_point")):
            vector = self.field(q, slot)
            if vector is None:
                continue
            start = q.Vector(vector - q.Pos)
            self.sites["quant_length"].append(start - 4)
            count = struct.unpack_from("<I", self.buf, start - 4)[0]
            self.sites[kind] += [start + WIDTH[kind] * i for i in range(count)]
        self.scalar(q, QUANT_DIMENSION, "quant_dim")

    def walk(self) -> dict:
        model = self.table_at(0)
        for code in self.subtables(model, MODEL_OPCODES):
            self.scalar(code, CODE_DEPRECATED, "type")
            self.scalar(code, CODE_BUILTIN, "opcode_index")
            self.string(code, CODE_CUSTOM)
        self.string(model, MODEL_DESCRIPTION)
        self.subtables(model, MODEL_BUFFERS)
        for sub in self.subtables(model, MODEL_SUBGRAPHS):
            self.ints(sub, SUB_INPUTS, "tensor_index")
            self.ints(sub, SUB_OUTPUTS, "tensor_index")
            self.string(sub, SUB_NAME)
            for tensor in self.subtables(sub, SUB_TENSORS):
                self.ints(tensor, TENSOR_SHAPE, "shape")
                self.scalar(tensor, TENSOR_TYPE, "type")
                self.scalar(tensor, TENSOR_BUFFER, "buffer_index")
                self.string(tensor, TENSOR_NAME)
                self.quantization(tensor)
            for op in self.subtables(sub, SUB_OPERATORS):
                self.scalar(op, OP_OPCODE, "opcode_index")
                self.ints(op, OP_INPUTS, "tensor_index")
                self.ints(op, OP_OUTPUTS, "tensor_index")
        return {k: sorted(set(v)) for k, v in self.sites.items()}


def field_sites(data: bytes) -> dict[str, list[int]]:
    return _Walker(data).walk()


# values a reader is most likely to mishandle, per width
INTERESTING_32 = (-(1 << 31), -1000, -2, -1, 0, 1, 2, 3, 7, 255, 1000, 65535, 1 << 16, 1 << 24, (1 << 31) - 1)


INTERESTING_FLOATS = (0.0, -0.0, -1.0, 1e-45, 1e-30, 1.0, 1e30, 3.4e38, float("inf"), float("-inf"), float("nan"))


def mutate(data: bytes, kind: str, site: int, value) -> bytes:
    """`data` with `value` written at byte `site` as the field `kind` is stored (int32 / uint8; a scale float32, a
    zero point int64)."""
    out = bytearray(data)
    if kind == "scale":
        struct.pack_into("<f", out, site, value)
    elif kind == "zero_point":
        struct.pack_into("<q", out, site, value)
    elif WIDTH[kind] == 4:
        struct.pack_into("<i" if value < 0 else "<I", out, site, value % (1 << 32) if value >= 0 else value)
    else:
        out[site] = value & 0xFF
    return bytes(out)


def name_not_utf8(data: bytes, name: bytes, byte: int = 0xF5) -> bytes:
    """The bug of issue 26: one byte of the tensor name `name` replaced by a byte no UTF-8 text holds."""
    at = data.find(name)
    assert at >= 0, f"{name!r} not in the file"
    out = bytearray(data)
    out[at + min(2, len(name) - 1)] = byte
    return bytes(out)
