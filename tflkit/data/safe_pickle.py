"""Load the CIFAR python batches without letting a pickle run code.

`pickle.load` calls whatever global a file names (`os.system`, `subprocess.Popen`, ...) through `__reduce__`, so a
downloaded batch file is code, not data. The official batches need only plain containers, bytes, str, numbers and
numpy arrays, and a numpy array needs exactly the globals below to rebuild. Anything else is refused before it is
looked up, so it never runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from tflkit.errors import DatasetError

# (module, name) pairs a numpy array or dtype pickles as, in NumPy 1.x (numpy.core) and 2.x (numpy._core) spelling.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    # Python 3 writes bytes into protocol 0-2 pickles as _codecs.encode(str, "latin1"): text in, bytes out.
    ("_codecs", "encode"),
})


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def safe_load(path) -> object:
    """Unpickle a CIFAR batch file (Python 2 or 3 pickles; str in Python 2 files stays bytes)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return _RestrictedUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DatasetError(f"{path}: refused to unpickle ({exc}); not a plain CIFAR batch file") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise DatasetError(f"{path}: not a readable CIFAR batch file ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
