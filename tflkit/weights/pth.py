"""Read a PyTorch `.pth` state dict into numpy arrays, without torch and without running pickle code.

`torch.save` (zip format, torch >= 1.6) writes a zip archive `<name>/data.pkl`, `<name>/data/<key>` (one raw
little-endian buffer per storage), `<name>/version` and, newer, `<name>/byteorder`. The pickle holds the state dict
(an OrderedDict) whose tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` calls,
and each storage is a persistent id `('storage', torch.FloatStorage, key, location, numel)` naming a buffer.
The legacy format (torch < 1.6, still what some published files are) is a run of pickles in one stream: magic
number, protocol version, system info, the state dict (storages as persistent ids with a root key), the storage
keys, then each storage's element count and raw bytes in that order.

`pickle.load` would import and call whatever the file names; the unpickler here resolves only the names that
format needs (below) to local stand-ins, so tensors become numpy arrays and any other global (`os.system`,
`builtins.eval`, `subprocess.Popen`, ...) is refused before it is looked up, so it never runs.
"""

from __future__ import annotations

import collections
import io
import lzma
import math
import operator
import pickle
import reprlib
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tflkit.core.errors import ModelFileError
from tflkit.core.limits import PTH_MEMBER_BYTES, ZIP_RATIO
from tflkit.data.safe_pickle import check_claimed_sizes, shown

# torch storage class name -> numpy dtype (bfloat16 is widened to float32 on read)
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    """Stands in for `torch.FloatStorage` etc. in a persistent id: only its dtype is used. One per lookup, with no
    __dict__: a pickle's BUILD on a shared instance (`ctorch\\nFloatStorage\\n}(...)b`) would otherwise change
    what FloatStorage decodes as for every later file this process reads."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    @property
    def itemsize(self) -> int:
        return 2 if self.name == "BFloat16Storage" else np.dtype(STORAGE_DTYPES[self.name]).itemsize

    def decode(self, raw: bytes, big_endian: bool = False) -> np.ndarray:
        if self.name == "BFloat16Storage":  # the top 16 bits of a float32
            halves = np.frombuffer(raw, ">u2" if big_endian else "<u2").astype(np.uint32)
            return (halves << 16).view(np.float32)
        dtype = np.dtype(STORAGE_DTYPES[self.name]).newbyteorder(">" if big_endian else "<")
        return np.frombuffer(raw, dtype).astype(np.dtype(STORAGE_DTYPES[self.name]))


class _OverLimit(Exception):
    """A tensor larger than tflkit.core.limits.PTH_MEMBER_BYTES: refused with the limit's own message."""


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    # Every number comes from the file. as_strided reads wherever they point, so a negative stride or offset read
    # memory outside the storage (garbage floats in the tensor), and a stride of 0 let a 10-element storage claim a
    # (10**9,) tensor, copied into 3.7 GiB (tests/corpus/pth/). Integers only, none negative, the copy bounded.
    size, stride = tuple(map(operator.index, size)), tuple(map(operator.index, stride))
    storage_offset = operator.index(storage_offset)
    if len(size) != len(stride) or min((storage_offset, *size, *stride)) < 0:
        raise pickle.UnpicklingError(f"tensor of size {size} stride {stride} offset {storage_offset} is not a view "
                                     f"torch writes (negative or mismatched)")
    if isinstance(storage, _Deferred):  # legacy format: the bytes come after the pickle
        return _DeferredTensor(storage, storage_offset, size, stride)
    if not isinstance(storage, np.ndarray):
        raise pickle.UnpicklingError(f"a tensor's storage is a {type(storage).__name__}, not a storage")
    count = math.prod(size)
    if count * storage.itemsize > PTH_MEMBER_BYTES.value():
        raise _OverLimit(PTH_MEMBER_BYTES.message(count * storage.itemsize, f"a tensor of size {list(size)}"))
    if not size:
        if storage_offset >= storage.size:
            raise pickle.UnpicklingError(f"scalar at {storage_offset} overruns its storage of {storage.size}")
        return np.array(storage[storage_offset])  # a 0-d array (num_batches_tracked), not a numpy scalar
    needed = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if count > 0 and needed > storage.size:
        raise pickle.UnpicklingError(f"tensor of size {size} stride {stride} overruns its storage of {storage.size}")
    view = np.lib.stride_tricks.as_strided(storage[storage_offset:], shape=size,
                                           strides=[s * storage.itemsize for s in stride])
    return np.array(view)  # a copy: the result owns its memory, in C order


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad=False, backward_hooks=None, state=None):
    return data


_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor_v2,  # legacy files: same arguments, no hooks
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
}


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, file, load_storage):
        super().__init__(file, encoding="utf-8")
        self._load_storage = load_storage

    def find_class(self, module, name):
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {shown(module)}.{shown(name)} is not allowed in a state dict") \
                from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            # reprlib: bounded in depth and length (str() of a deeply nested tuple was a RecursionError)
            raise pickle.UnpicklingError(f"unexpected persistent id {shown(reprlib.repr(pid))}")
        return self._load_storage(pid)


def _numel(pid) -> int:
    numel = operator.index(pid[4])
    if numel < 0:
        raise pickle.UnpicklingError(f"storage {shown(pid[2])} has {numel} elements")
    return numel


def _load_zip(path: Path, archive: zipfile.ZipFile) -> dict:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
        raise ModelFileError(f"{path}: a zip but not a torch.save file (no single data.pkl)")
    root = pickles[0][: -len("data.pkl")]
    big_endian = root + "byteorder" in names and archive.read(root + "byteorder").strip() == b"big"
    cache = {}

    def load_storage(pid):
        _, storage_type, key, _location = pid[:4]
        numel = _numel(pid)
        if key not in cache:
            try:
                raw = archive.read(f"{root}data/{key}")
            except KeyError:
                raise pickle.UnpicklingError(f"storage {shown(key)} is missing from the archive") from None
            if len(raw) < numel * storage_type.itemsize:
                raise pickle.UnpicklingError(f"storage {shown(key)} holds {len(raw)} bytes, needs {numel} elements")
            cache[key] = storage_type.decode(raw[: numel * storage_type.itemsize], big_endian)
        return cache[key]

    return _unpickle_next(io.BytesIO(archive.read(pickles[0])), load_storage)


def _unpickle_next(stream: io.BytesIO, load_storage):
    """The next pickle in `stream`, its counted lengths checked against the bytes left first."""
    check_claimed_sizes(stream)
    return _TorchUnpickler(stream, load_storage).load()


def _load_legacy(path: Path, data: bytes) -> dict:
    stream = io.BytesIO(data)
    header = [_unpickle_next(stream, _refuse_storage) for _ in range(3)]
    if header[0] != LEGACY_MAGIC:
        raise ModelFileError(f"{path}: not a PyTorch .pth file (neither a zip nor the legacy format)")
    storages = {}

    def load_storage(pid):
        _, storage_type, key, _location = pid[:4]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("legacy storage views are not supported")
        return storages.setdefault(key, _Deferred(storage_type, _numel(pid)))

    state = _unpickle_next(stream, load_storage)
    keys = _unpickle_next(stream, _refuse_storage)
    for key in keys:
        if key not in storages:
            raise ModelFileError(f"{path}: storage {shown(key)} is not referenced by the state dict")
        deferred = storages[key]
        (count,) = struct.unpack("<q", stream.read(8))
        size = count * deferred.type.itemsize
        # checked before reading: a count of 2**62 was an OverflowError from read(), and a negative one read the rest
        if count < deferred.numel or size > len(data) - stream.tell():
            raise ModelFileError(f"{path}: storage {shown(key)} is truncated ({count:,} elements claimed)")
        raw = stream.read(size)
        deferred.value = deferred.type.decode(raw)
    return {k: v.resolve() if isinstance(v, _DeferredTensor) else v for k, v in state.items()}


class _Deferred:
    """A legacy-format storage: its bytes follow the pickle, so tensors on it are rebuilt once it is read."""

    def __init__(self, storage_type: _StorageType, numel: int):
        self.type, self.numel, self.value = storage_type, numel, None


class _DeferredTensor:
    def __init__(self, storage: _Deferred, offset, size, stride):
        self.storage, self.args = storage, (offset, size, stride)

    def resolve(self) -> np.ndarray:
        if self.storage.value is None:
            raise ModelFileError("a tensor's storage is missing from the file")
        return _rebuild_tensor_v2(self.storage.value, *self.args)


def _refuse_storage(pid):
    raise pickle.UnpicklingError("a storage outside the state dict")


def check_members(path: Path, archive: zipfile.ZipFile) -> None:
    """Refuse a zip bomb posing as a .pth from its directory alone, before a byte is inflated: a member larger than
    tflkit.core.limits.PTH_MEMBER_BYTES, or a compressed member expanding more than ZIP_RATIO times (torch.save stores
    its members uncompressed). A member's declared size also bounds what zipfile inflates from it."""
    for info in archive.infolist():
        # zipfile raises RuntimeError for an encrypted member and NotImplementedError for a method it lacks (one
        # flipped bit in a header, fuzzed): named here instead, before anything is read
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{path}: member {shown(info.filename)} is encrypted; not a torch.save file")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
            raise ModelFileError(f"{path}: member {shown(info.filename)} uses compression method "
                                 f"{info.compress_type}, which zipfile cannot read; not a torch.save file")
        PTH_MEMBER_BYTES.check(info.file_size, f"{path} (member {info.filename})", ModelFileError)
        if info.compress_type != zipfile.ZIP_STORED and info.file_size > 1 << 20:
            ratio = info.file_size // max(info.compress_size, 1)
            ZIP_RATIO.check(ratio, f"{path} (member {info.filename}, {info.file_size:,} bytes inflated from "
                                   f"{info.compress_size:,})", ModelFileError)


def load_state_dict(path) -> dict[str, np.ndarray]:
    """The tensors of a .pth file by name, as numpy arrays; nested dicts (`{"state_dict": ...}`) are unwrapped."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"weights file not found: {path}")
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                check_members(path, archive)
                state = _load_zip(path, archive)
        else:
            PTH_MEMBER_BYTES.check(path.stat().st_size, path, ModelFileError)  # read whole: one member, in effect
            state = _load_legacy(path, path.read_bytes())
    except _OverLimit as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    except pickle.UnpicklingError as exc:
        raise ModelFileError(f"{path}: refused to unpickle ({shown(exc, 300)}); not a plain PyTorch state dict") \
            from None
    # zlib.error, LZMAError and OSError (bz2): a compressed member whose stream is damaged
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, struct.error,
            zipfile.BadZipFile, zlib.error, lzma.LZMAError, OSError) as exc:
        raise ModelFileError(f"{path}: not a readable .pth file ({type(exc).__name__}: {shown(exc, 300)})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelFileError(f"{path}: holds a {type(state).__name__}, not a state dict")
    tensors = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    if not tensors:
        raise ModelFileError(f"{path}: the state dict holds no tensors")
    named = [k for k in tensors if not isinstance(k, str)]
    if named:  # the port splits each name at its dots: an int key was an AttributeError there
        raise ModelFileError(f"{path}: a tensor is named by a {type(named[0]).__name__}, not a string; "
                             f"not a state dict")
    return tensors
