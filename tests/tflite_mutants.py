"""Structure-aware mutants of a .tflite: where, in the bytes of a real file, each field a reader trusts lives.

`field_sites(data)` walks the flatbuffer (tensorflow/lite/schema/schema.fbs, field slots in declaration order) with
the plain `flatbuffers` runtime and returns, per kind, the byte positions of: uoffsets (the root, every table,
vector and string reference, every vtable reference), tensor shape dims, tensor buffer indices, operator opcode
indices, tensor indices (operator and subgraph inputs/outputs), tensor types, vector lengths and string bytes.
`mutate(data, kind, site, value)` writes a value there. Hypothesis picks the kind, the site and the value
(tests/test_fuzz_readers.py); random byte flips and truncations need no map.
"""

from __future__ import annotations

import struct

from flatbuffers.table import Table

# slots
MODEL_OPCODES, MODEL_SUBGRAPHS, MODEL_DESCRIPTION, MODEL_BUFFERS = 1, 2, 3, 4
SUB_TENSORS, SUB_INPUTS, SUB_OUTPUTS, SUB_OPERATORS, SUB_NAME = 0, 1, 2, 3, 4
TENSOR_SHAPE, TENSOR_TYPE, TENSOR_BUFFER, TENSOR_NAME = 0, 1, 2, 3
OP_OPCODE, OP_INPUTS, OP_OUTPUTS = 0, 1, 2
CODE_DEPRECATED, CODE_CUSTOM, CODE_BUILTIN = 0, 1, 3

KINDS = ("offset", "shape", "buffer_index", "opcode_index", "tensor_index", "type", "vector_length", "string")
WIDTH = {"offset": 4, "shape": 4, "buffer_index": 4, "opcode_index": 4, "tensor_index": 4, "type": 1,
         "vector_length": 4, "string": 1}


class _Walker:
    def __init__(self, data: bytes):
        self.buf = bytearray(data)
        self.sites = {k: [] for k in KINDS}

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
            for op in self.subtables(sub, SUB_OPERATORS):
                self.scalar(op, OP_OPCODE, "opcode_index")
                self.ints(op, OP_INPUTS, "tensor_index")
                self.ints(op, OP_OUTPUTS, "tensor_index")
        return {k: sorted(set(v)) for k, v in self.sites.items()}


def field_sites(data: bytes) -> dict[str, list[int]]:
    return _Walker(data).walk()


# values a reader is most likely to mishandle, per width
INTERESTING_32 = (-(1 << 31), -1000, -2, -1, 0, 1, 2, 3, 7, 255, 1000, 65535, 1 << 16, 1 << 24, (1 << 31) - 1)


def mutate(data: bytes, kind: str, site: int, value: int) -> bytes:
    """`data` with `value` written at byte `site` as the field `kind` is stored (int32 / uint8)."""
    out = bytearray(data)
    if WIDTH[kind] == 4:
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
