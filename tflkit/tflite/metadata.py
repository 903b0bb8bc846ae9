"""TFLite model metadata (the `TFLITE_METADATA` flatbuffer that tflite-support's writers put into public models):
the input's normalization options and the output's label file. Read with the plain `flatbuffers` runtime (a
TensorFlow dependency, no tflite-support): only the few fields needed, by their slots in the published schemas
(tensorflow/lite/schema/schema.fbs, tensorflow_lite_support/metadata/metadata_schema.fbs).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from tflkit.core.errors import ModelFileError
from tflkit.core.limits import LABELS_BYTES, TFLITE_BYTES

METADATA_NAME = "TFLITE_METADATA"
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union: NormalizationOptions is its first member
TENSOR_AXIS_LABELS = 2  # AssociatedFileType

# field slots (declaration order in the .fbs files)
MODEL_BUFFERS, MODEL_METADATA = 4, 6
METADATA_NAME_SLOT, METADATA_BUFFER_SLOT = 0, 1
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2
MODEL_METADATA_SUBGRAPHS = 3
SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS = 2, 3
TENSOR_PROCESS_UNITS, TENSOR_ASSOCIATED_FILES = 4, 6
PROCESS_UNIT_TYPE, PROCESS_UNIT_OPTIONS = 0, 1
NORMALIZATION_MEAN, NORMALIZATION_STD = 0, 1
FILE_NAME, FILE_TYPE = 0, 2


@dataclass
class ModelMetadata:
    mean: list[float] | None = None  # input normalization: (pixel - mean) / std, per channel or one value
    std: list[float] | None = None
    label_file: str | None = None  # the output's TENSOR_AXIS_LABELS file, packed in the model's zip
    labels: list[str] | None = None


class _Table:
    """A flatbuffer table: field accessors by slot."""

    def __init__(self, buf: bytes, pos: int):
        from flatbuffers.table import Table

        self.t = Table(bytearray(buf) if not isinstance(buf, bytearray) else buf, pos)

    @classmethod
    def root(cls, buf) -> _Table:
        from flatbuffers import encode, number_types

        buf = bytearray(buf)
        return cls(buf, encode.Get(number_types.UOffsetTFlags.packer_type, buf, 0))

    def _offset(self, slot: int) -> int:
        return self.t.Offset(4 + 2 * slot)

    def table(self, slot: int) -> _Table | None:
        o = self._offset(slot)
        return _Table(self.t.Bytes, self.t.Indirect(o + self.t.Pos)) if o else None

    def tables(self, slot: int) -> list[_Table]:
        o = self._offset(slot)
        if not o:
            return []
        start = self.t.Vector(o)
        return [_Table(self.t.Bytes, self.t.Indirect(start + 4 * i)) for i in range(self._length(o, start, 4))]

    def string(self, slot: int) -> str | None:
        o = self._offset(slot)
        return self.t.String(o + self.t.Pos).decode("utf-8", "replace") if o else None

    def scalar(self, slot: int, flags) -> int | float:
        o = self._offset(slot)
        return self.t.Get(flags, o + self.t.Pos) if o else 0

    def floats(self, slot: int) -> list[float]:
        from flatbuffers import number_types

        o = self._offset(slot)
        if not o:
            return []
        start = self.t.Vector(o)
        return [self.t.Get(number_types.Float32Flags, start + 4 * i) for i in range(self._length(o, start, 4))]

    def bytes(self, slot: int) -> bytes:
        o = self._offset(slot)
        if not o:
            return b""
        start = self.t.Vector(o)
        return bytes(self.t.Bytes[start:start + self._length(o, start, 1)])

    def _length(self, o: int, start: int, width: int) -> int:
        """A vector's length, or ValueError when it runs past the end of the buffer (a damaged length would
        otherwise build a list of four billion entries)."""
        n = self.t.VectorLen(o)
        if start < 0 or start + n * width > len(self.t.Bytes):
            raise ValueError(f"a vector of {n} entries at byte {start} runs past the end of the buffer")
        return n


def metadata_buffer(model_bytes: bytes) -> bytes | None:
    """The TFLITE_METADATA buffer of a .tflite, or None when the model carries none."""
    from flatbuffers import number_types as n

    model = _Table.root(model_bytes)
    buffers = model.tables(MODEL_BUFFERS)
    for entry in model.tables(MODEL_METADATA):
        if entry.string(METADATA_NAME_SLOT) != METADATA_NAME:
            continue
        index = entry.scalar(METADATA_BUFFER_SLOT, n.Uint32Flags)
        if index >= len(buffers):
            return None
        data = buffers[index].bytes(BUFFER_DATA)
        offset = buffers[index].scalar(BUFFER_OFFSET, n.Uint64Flags)
        if not data and offset > 1:  # large models keep buffers after the flatbuffer
            data = bytes(model_bytes[offset:offset + buffers[index].scalar(BUFFER_SIZE, n.Uint64Flags)])
        return data or None
    return None


def read_metadata(path) -> ModelMetadata | None:
    """The normalization and labels a .tflite's metadata declares; None without metadata. Raises ValueError
    when a metadata buffer is there but is not a readable ModelMetadata flatbuffer."""
    from flatbuffers import number_types as n


    TFLITE_BYTES.check(Path(path).stat().st_size, path, ModelFileError)
    data = Path(path).read_bytes()
    try:
        buffer = metadata_buffer(data)
    except (IndexError, ValueError, TypeError, struct.error) as exc:  # TypeError: flatbuffers' bad offset
        raise ValueError(f"model flatbuffer not readable: {exc}") from None
    if buffer is None:
        return None
    found = ModelMetadata()
    try:
        subgraphs = _Table.root(buffer).tables(MODEL_METADATA_SUBGRAPHS)
        if not subgraphs:
            return found
        inputs, outputs = subgraphs[0].tables(SUBGRAPH_INPUTS), subgraphs[0].tables(SUBGRAPH_OUTPUTS)
        for unit in inputs[0].tables(TENSOR_PROCESS_UNITS) if inputs else []:
            if unit.scalar(PROCESS_UNIT_TYPE, n.Uint8Flags) == NORMALIZATION_OPTIONS:
                options = unit.table(PROCESS_UNIT_OPTIONS)
                if options is not None:
                    found.mean, found.std = options.floats(NORMALIZATION_MEAN), options.floats(NORMALIZATION_STD)
                break
        for file in outputs[0].tables(TENSOR_ASSOCIATED_FILES) if outputs else []:
            if file.scalar(FILE_TYPE, n.Int8Flags) == TENSOR_AXIS_LABELS:
                found.label_file = file.string(FILE_NAME)
                break
    except (IndexError, ValueError, TypeError, struct.error) as exc:  # TypeError: flatbuffers' bad offset
        raise ValueError(f"TFLite metadata not readable: {exc}") from None
    if found.label_file:
        found.labels = _packed_file(data, found.label_file)
    return found


def _packed_file(model_bytes: bytes, name: str) -> list[str] | None:
    """tflite-support packs associated files as a zip appended to the model."""
    try:
        with zipfile.ZipFile(io.BytesIO(model_bytes)) as archive:
            if archive.getinfo(name).file_size > LABELS_BYTES.value():  # a zip bomb packed as a label file
                return None
            return archive.read(name).decode("utf-8").splitlines()
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, NotImplementedError, RuntimeError, EOFError, OSError,
            ValueError, zlib.error):  # damaged, encrypted or oddly compressed: no labels, as if none were packed
        return None
