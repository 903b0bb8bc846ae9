"""CIFAR-10 and CIFAR-100 from the official files as users download them (python pickles or the binary version).

  cifar-10-batches-py/   data_batch_1..5, test_batch, batches.meta        (pickles, read with safe_pickle)
  cifar-10-batches-bin/  data_batch_1..5.bin, test_batch.bin, batches.meta.txt
  cifar-100-python/      train, test, meta                                (fine and coarse labels)

Images come back in the files' order, as (N, 32, 32, 3) uint8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tflkit.core.errors import DatasetError
from tflkit.core.limits import CIFAR_FILE_BYTES
from tflkit.data.safe_pickle import safe_load, shown

CIFAR10_PY = "cifar-10-batches-py"
CIFAR10_BIN = "cifar-10-batches-bin"
CIFAR100_PY = "cifar-100-python"
LABEL_MODES = ("fine", "coarse")
_RECORD = 1 + 3072  # binary version: one label byte, then 1024 R, 1024 G, 1024 B


def _rows_to_images(rows, where="CIFAR rows") -> np.ndarray:
    # The official files hold a uint8 array, taken as it is: np.asarray of a list of lists (each row 2 bytes in the
    # pickle, shared by reference: any number of rows from a small file), of floats (cast, wrapped) or of ints over
    # 2**63 (OverflowError) was a conversion a file should not get to ask for.
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.ndim != 2 or rows.shape[1] != 3072:
        found = (f"{rows.dtype} of shape {rows.shape}" if isinstance(rows, np.ndarray)
                 else f"a {type(rows).__name__}")
        raise DatasetError(f"{where}: image rows are {found}, expected a uint8 array of shape (N, 3072)")
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


def _labels(values, rows: int, classes: int, where: str) -> np.ndarray:
    """`rows` class indices in 0..classes-1 from a list (the official files) or a 1-d integer array. Out of range,
    they trained until the loss went NaN or the one-hot was all zeros; a count that differs from the images' was a
    ValueError from Split."""
    if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "iu":
        values = values.tolist()
    if not isinstance(values, (list, tuple)) or not all(type(v) is int for v in values):
        kinds = sorted({type(v).__name__ for v in values}) if isinstance(values, (list, tuple)) else []
        raise DatasetError(f"{where}: labels are a {type(values).__name__}"
                           + (f" of {', '.join(kinds)}" if kinds else "") + ", expected a list of integers")
    if len(values) != rows:
        raise DatasetError(f"{where}: {len(values):,} labels for {rows:,} images")
    bad = next((v for v in values if not 0 <= v < classes), None)
    if bad is not None:
        raise DatasetError(f"{where}: label {bad:,} is not a class index (0..{classes - 1}, {classes} classes)")
    return np.asarray(values, dtype=np.int64)


def _require(path: Path) -> Path:
    """`path`, a file within tflkit.core.limits.CIFAR_FILE_BYTES (every CIFAR file is read whole)."""
    if not path.is_file():
        raise DatasetError(f"missing CIFAR file {path}; is the download complete?")
    CIFAR_FILE_BYTES.check(path.stat().st_size, path, DatasetError)
    return path


def _get(batch, key: str, path: Path):
    if not isinstance(batch, dict):  # an array here answered `in` and then raised IndexError
        raise DatasetError(f"{path}: holds a {type(batch).__name__}, not a CIFAR batch (a dict)")
    try:
        return batch[key.encode()] if key.encode() in batch else batch[key]
    except KeyError:
        raise DatasetError(f"{path}: no {key!r} entry; not a CIFAR batch") from None


def _names(values, path: Path) -> list[str]:
    # each a bytes or str: str() of anything else can be the repr of a structure the pickle shares many times over
    if not isinstance(values, (list, tuple)) or not values or not all(isinstance(v, (bytes, str)) for v in values):
        raise DatasetError(f"{path}: class names are not a list of strings")
    try:
        return [v.decode() if isinstance(v, bytes) else v for v in values]
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: a class name is not UTF-8") from None


def read_cifar10_py(root) -> dict:
    """{"train": (images, labels), "test": (images, labels), "class_names": [...]} in the official order."""
    root = Path(root)
    meta_path = _require(root / "batches.meta")
    parts = {"class_names": _names(_get(safe_load(meta_path), "label_names", meta_path), meta_path)}
    for split, files in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        images, labels = [], []
        for name in files:
            path = _require(root / name)
            batch = safe_load(path)
            images.append(_rows_to_images(_get(batch, "data", path), path))
            labels.append(_labels(_get(batch, "labels", path), len(images[-1]), len(parts["class_names"]), path))
        parts[split] = (np.concatenate(images), np.concatenate(labels))
    return parts


def read_cifar10_bin(root) -> dict:
    root = Path(root)
    parts = {"class_names": _names_txt(_require(root / "batches.meta.txt"))}
    for split, files in (("train", [f"data_batch_{i}.bin" for i in range(1, 6)]), ("test", ["test_batch.bin"])):
        images, labels = [], []
        for name in files:
            path = _require(root / name)
            size = path.stat().st_size
            if size % _RECORD:  # from the size, before a byte is read
                raise DatasetError(f"{path}: size {size:,} is not a whole number of CIFAR records ({_RECORD:,} bytes)")
            records = np.fromfile(path, dtype=np.uint8).reshape(-1, _RECORD)
            labels.append(_labels(records[:, 0], len(records), 10, root / name))
            images.append(_rows_to_images(records[:, 1:], root / name))
        parts[split] = (np.concatenate(images), np.concatenate(labels))
    return parts


def _names_txt(path: Path) -> list[str]:
    """The binary version's ten class names, one a line. Taken as whatever words it held, an empty file gave a
    dataset of no classes whose labels were 0..9, and one of other bytes a UnicodeDecodeError (found by
    tests/test_fuzz_cifar_binary.py)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at {exc.start})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(names) != 10:
        raise DatasetError(f"{path}: {len(names)} class names, expected CIFAR-10's 10, one a line")
    odd = next((n for n in names if not n.isprintable()), None)
    if odd is not None:
        raise DatasetError(f"{path}: class name '{shown(odd, 40)}' holds a control character")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise DatasetError(f"{path}: class name '{shown(twice, 40)}' appears twice")
    return names


def read_cifar100_py(root, label_mode: str = "fine") -> dict:
    if label_mode not in LABEL_MODES:
        raise DatasetError(f"CIFAR-100 label mode {label_mode!r}; choose fine or coarse")
    root = Path(root)
    meta_path = _require(root / "meta")
    names = _names(_get(safe_load(meta_path), f"{label_mode}_label_names", meta_path), meta_path)
    parts = {"class_names": names}
    for split in ("train", "test"):
        path = _require(root / split)
        batch = safe_load(path)
        images = _rows_to_images(_get(batch, "data", path), path)
        parts[split] = (images, _labels(_get(batch, f"{label_mode}_labels", path), len(images), len(names), path))
    return parts
