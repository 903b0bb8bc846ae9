"""Load the CIFAR python batches without letting a pickle run code.

`pickle.load` calls whatever global a file names (`os.system`, `subprocess.Popen`, ...) through `__reduce__`, so a
downloaded batch file is code, not data. The official batches need only plain containers, bytes, str, numbers and
numpy arrays. Any other global is refused before it is looked up, so it never runs.

Nor are numpy's own reconstructors called: they trust the pickle. A dtype's pickled state sets its internal flags
(one changed byte flagged a uint8 dtype as holding Python objects, and numpy raised SystemError), _reconstruct
allocates the shape it is given, and an object array's state allocates the shape it claims before looking at the
data (tests/corpus/cifar/). The names numpy pickles under resolve to stand-ins (`_Dtype`, `_Array`, `_scalar`)
that rebuild plain arrays of numbers or strings from their bytes, sizes checked; the loaded object then holds real
numpy arrays.
"""

from __future__ import annotations

import io
import math
import operator
import pickle
import pickletools
import reprlib
from pathlib import Path

import numpy as np

from tflkit.core.errors import DatasetError

PLAIN_KINDS = "biufSU"  # booleans, integers, floats, bytes and str: no object references, no structure
MAX_DEPTH = 32  # containers inside containers: a batch is a dict of arrays and lists


class _Dtype:
    """Stands in for numpy.dtype: the type code, and the byte order from the state BUILD gives it."""

    def __init__(self, spec, align=False, copy=True):
        self.spec, self.byteorder = spec, "="

    def __setstate__(self, state):
        # (version, byteorder, subarray, names, fields, elsize, alignment, flags); only the byte order is taken
        if not isinstance(state, tuple) or len(state) < 2 or state[1] not in ("<", ">", "|", "=", b"<", b">", b"|"):
            raise pickle.UnpicklingError(f"numpy dtype state {shown(state)}")
        self.byteorder = state[1].decode() if isinstance(state[1], bytes) else state[1]

    def real(self) -> np.dtype:
        spec = self.spec.decode() if isinstance(self.spec, bytes) else self.spec
        if not isinstance(spec, str):
            raise pickle.UnpicklingError(f"numpy dtype {shown(spec)}")
        dtype = np.dtype(spec)  # TypeError for a code numpy does not know
        if dtype.kind not in PLAIN_KINDS or dtype.fields or dtype.subdtype:
            raise pickle.UnpicklingError(f"numpy dtype {shown(dtype)} is not a plain number or string type")
        return dtype.newbyteorder(self.byteorder) if self.byteorder in "<>" else dtype


def _real_dtype(value) -> np.dtype:
    if not isinstance(value, _Dtype):
        raise pickle.UnpicklingError(f"a numpy dtype expected, found a {type(value).__name__}")
    return value.real()


class _Array:
    """Stands in for numpy's _reconstruct(ndarray, (0,), b"b"): BUILD then gives (version, shape, dtype, fortran,
    bytes), from which the array is made, its size checked against the bytes first."""

    def __init__(self, subtype, shape, dtype):
        if subtype is not np.ndarray:
            raise pickle.UnpicklingError(f"numpy array of class {shown(subtype)}")
        self.array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise pickle.UnpicklingError("numpy array state is not (version, shape, dtype, fortran, data)")
        shape, dtype, fortran, raw = state[-4:]
        shape = tuple(map(operator.index, shape))
        dtype = _real_dtype(dtype)
        if min(shape, default=0) < 0 or not isinstance(raw, (bytes, bytearray)):
            raise pickle.UnpicklingError(f"numpy array of shape {shown(shape)} from a {type(raw).__name__}")
        if len(raw) != math.prod(shape) * dtype.itemsize:
            raise pickle.UnpicklingError(f"numpy array of shape {shown(shape)} {dtype} from {len(raw):,} bytes")
        self.array = np.frombuffer(raw, dtype).reshape(shape, order="F" if fortran else "C").copy()


def _scalar(dtype, raw=None):
    dtype = _real_dtype(dtype)
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != dtype.itemsize:
        raise pickle.UnpicklingError(f"numpy {dtype} scalar from {shown(raw)}")
    return np.frombuffer(raw, dtype)[0]


def _latin1(text, encoding):
    # Python 3 writes bytes into protocol 0-2 pickles as _codecs.encode(str, "latin1"): text in, bytes out
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode of a {type(text).__name__} to {shown(encoding)}")
    return text.encode("latin1")


# (module, name) -> stand-in, for the names a numpy array or dtype pickles as in NumPy 1.x (numpy.core) and 2.x
# (numpy._core) spelling.
_GLOBALS = {
    **{(module, "_reconstruct"): _Array for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "scalar"): _scalar for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _Dtype,
    ("_codecs", "encode"): _latin1,
}


def _resolve(obj, seen: dict, depth: int = 0):
    """`obj` with every _Array made its array (in place in lists and dicts, shared ones once)."""
    if isinstance(obj, _Array):
        if obj.array is None:
            raise pickle.UnpicklingError("a numpy array without its data")
        return obj.array
    if isinstance(obj, _Dtype):
        return obj.real()
    if not isinstance(obj, (list, tuple, dict)):
        return obj
    if id(obj) in seen:
        return seen[id(obj)]
    if depth > MAX_DEPTH:
        raise pickle.UnpicklingError(f"containers nested over {MAX_DEPTH} deep")
    if isinstance(obj, tuple):
        out = seen[id(obj)] = tuple(_resolve(x, seen, depth + 1) for x in obj)
        return out
    seen[id(obj)] = obj
    if isinstance(obj, list):
        obj[:] = [_resolve(x, seen, depth + 1) for x in obj]
    else:
        for key in list(obj):
            obj[key] = _resolve(obj[key], seen, depth + 1)
    return obj


def shown(value, limit: int = 80) -> str:
    """`value` as one line of at most `limit` characters. What a file names (a global, a key, an error quoting
    them) may hold newlines: STACK_GLOBAL takes any string, and a storage key is any string."""
    text = value if isinstance(value, str) else str(value) if isinstance(value, BaseException) else \
        reprlib.repr(value)  # bounded in depth: str() of a deeply nested tuple is a RecursionError
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_claimed_sizes(stream) -> None:
    """Walk the pickle at `stream`'s position without building anything, then rewind; a ValueError for a size the
    data cannot back. pickletools reads what each opcode's length field claims and fails where the data ends first:
    the C unpickler allocates what BINBYTES, BINBYTES8 and BYTEARRAY8 claim before it reads a byte (a 20-byte file
    claiming 2**40 bytes was a MemoryError; a claim of a few GB, that many bytes allocated). And a memo index: the
    C unpickler grows its memo table to twice the largest index it is given and zeroes it, so LONG_BINPUT 1.6e9 in a
    25 KB .pth asked for 25 GB (found by tests/test_fuzz_weights_data.py); a pickler numbers its memo entries from 0,
    one per object, so no index reaches the byte it is written at."""
    start = stream.tell()
    for op, arg, pos in pickletools.genops(stream):
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and arg > pos - start:
            raise ValueError(f"memo index {arg:,} at byte {pos - start:,} of the pickle")
    stream.seek(start)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {shown(module)}.{shown(name)} is not allowed") from None


def safe_load(path) -> object:
    """Unpickle a CIFAR batch file (Python 2 or 3 pickles; str in Python 2 files stays bytes)."""
    path = Path(path)
    try:
        # read whole (the official batches are 31 MB, CIFAR-100's train 150 MB): a file object would be asked for
        # each claimed length at once, and a BytesIO gives only what is there
        stream = io.BytesIO(path.read_bytes())
        check_claimed_sizes(stream)
        return _resolve(_RestrictedUnpickler(stream, encoding="bytes").load(), {})
    except pickle.UnpicklingError as exc:
        raise DatasetError(f"{path}: refused to unpickle ({shown(exc, 300)}); not a plain CIFAR batch file") \
            from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise DatasetError(f"{path}: not a readable CIFAR batch file ({type(exc).__name__}: {shown(exc, 300)})") \
            from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
