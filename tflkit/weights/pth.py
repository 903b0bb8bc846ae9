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
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from tflkit.errors import ModelFileError
from tflkit.limits import PTH_MEMBER_BYTES, ZIP_RATIO

# torch storage class name -> numpy dtype (bfloat16 is widened to float32 on read)
STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    """Stands in for `torch.FloatStorage` etc. in a persistent id: only its dtype is used."""

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


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    size, stride = tuple(size), tuple(stride)
    if isinstance(storage, _Deferred):  # legacy format: the bytes come after the pickle
        return _DeferredTensor(storage, storage_offset, size, stride)
    if not size:
        return np.array(storage[storage_offset])  # a 0-d array (num_batches_tracked), not a numpy scalar
    needed = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if min(size) > 0 and needed > storage.size:
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
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _TorchUnpickler(pickle.Unpickler):
    def __init__(self, file, load_storage):
        super().__init__(file, encoding="utf-8")
        self._load_storage = load_storage

    def find_class(self, module, name):
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a state dict") from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:80]}")
        return self._load_storage(pid)


def _load_zip(path: Path, archive: zipfile.ZipFile) -> dict:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
        raise ModelFileError(f"{path}: a zip but not a torch.save file (no single data.pkl)")
    root = pickles[0][: -len("data.pkl")]
    big_endian = root + "byteorder" in names and archive.read(root + "byteorder").strip() == b"big"
    cache = {}

    def load_storage(pid):
        _, storage_type, key, _location, numel = pid[:5]
        if key not in cache:
            try:
                raw = archive.read(f"{root}data/{key}")
            except KeyError:
                raise pickle.UnpicklingError(f"storage {key} is missing from the archive") from None
            if len(raw) < int(numel) * storage_type.itemsize:
                raise pickle.UnpicklingError(f"storage {key} holds {len(raw)} bytes, needs {numel} elements")
            cache[key] = storage_type.decode(raw[: int(numel) * storage_type.itemsize], big_endian)
        return cache[key]

    return _TorchUnpickler(io.BytesIO(archive.read(pickles[0])), load_storage).load()


def _load_legacy(path: Path, data: bytes) -> dict:
    stream = io.BytesIO(data)
    header = [_TorchUnpickler(stream, _refuse_storage).load() for _ in range(3)]
    if header[0] != LEGACY_MAGIC:
        raise ModelFileError(f"{path}: not a PyTorch .pth file (neither a zip nor the legacy format)")
    storages = {}

    def load_storage(pid):
        _, storage_type, key, _location, numel = pid[:5]
        if len(pid) > 5 and pid[5] is not None:
            raise pickle.UnpicklingError("legacy storage views are not supported")
        return storages.setdefault(key, _Deferred(storage_type, int(numel)))

    state = _TorchUnpickler(stream, load_storage).load()
    keys = _TorchUnpickler(stream, _refuse_storage).load()
    for key in keys:
        if key not in storages:
            raise ModelFileError(f"{path}: storage {key} is not referenced by the state dict")
        deferred = storages[key]
        (count,) = struct.unpack("<q", stream.read(8))
        raw = stream.read(count * deferred.type.itemsize)
        if count < deferred.numel or len(raw) < count * deferred.type.itemsize:
            raise ModelFileError(f"{path}: storage {key} is truncated")
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
    tflkit.limits.PTH_MEMBER_BYTES, or a compressed member expanding more than ZIP_RATIO times (torch.save stores
    its members uncompressed). A member's declared size also bounds what zipfile inflates from it."""
    for info in archive.infolist():
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
    except pickle.UnpicklingError as exc:
        raise ModelFileError(f"{path}: refused to unpickle ({exc}); not a plain PyTorch state dict") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, struct.error,
            zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path}: not a readable .pth file ({type(exc).__name__}: {exc})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelFileError(f"{path}: holds a {type(state).__name__}, not a state dict")
    tensors = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    if not tensors:
        raise ModelFileError(f"{path}: the state dict holds no tensors")
    return tensors
