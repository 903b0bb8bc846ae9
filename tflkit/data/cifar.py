"""CIFAR-10 and CIFAR-100 from the official files as users download them (python pickles or the binary version).

  cifar-10-batches-py/   data_batch_1..5, test_batch, batches.meta        (pickles, read with safe_pickle)
  cifar-10-batches-bin/  data_batch_1..5.bin, test_batch.bin, batches.meta.txt
  cifar-100-python/      train, test, meta                                (fine and coarse labels)

Images come back in the files' order, as (N, 32, 32, 3) uint8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tflkit.data.safe_pickle import safe_load
from tflkit.errors import DatasetError

CIFAR10_PY = "cifar-10-batches-py"
CIFAR10_BIN = "cifar-10-batches-bin"
CIFAR100_PY = "cifar-100-python"
LABEL_MODES = ("fine", "coarse")
_RECORD = 1 + 3072  # binary version: one label byte, then 1024 R, 1024 G, 1024 B


def _rows_to_images(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.uint8)
    if rows.ndim != 2 or rows.shape[1] != 3072:
        raise DatasetError(f"CIFAR rows have shape {rows.shape}, expected (N, 3072)")
    return rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DatasetError(f"missing CIFAR file {path}; is the download complete?")
    return path


def _get(batch: dict, key: str, path: Path):
    try:
        return batch[key.encode()] if key.encode() in batch else batch[key]
    except (KeyError, TypeError):
        raise DatasetError(f"{path}: no {key!r} entry; not a CIFAR batch") from None


def _names(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_cifar10_py(root) -> dict:
    """{"train": (images, labels), "test": (images, labels), "class_names": [...]} in the official order."""
    root = Path(root)
    parts = {}
    for split, files in (("train", [f"data_batch_{i}" for i in range(1, 6)]), ("test", ["test_batch"])):
        images, labels = [], []
        for name in files:
            path = _require(root / name)
            batch = safe_load(path)
            images.append(_rows_to_images(_get(batch, "data", path)))
            labels.append(np.asarray(_get(batch, "labels", path), dtype=np.int64))
        parts[split] = (np.concatenate(images), np.concatenate(labels))
    meta_path = _require(root / "batches.meta")
    parts["class_names"] = _names(_get(safe_load(meta_path), "label_names", meta_path))
    return parts


def read_cifar10_bin(root) -> dict:
    root = Path(root)
    parts = {}
    for split, files in (("train", [f"data_batch_{i}.bin" for i in range(1, 6)]), ("test", ["test_batch.bin"])):
        images, labels = [], []
        for name in files:
            raw = np.fromfile(_require(root / name), dtype=np.uint8)
            if raw.size % _RECORD:
                raise DatasetError(f"{root / name}: size {raw.size} is not a whole number of CIFAR records")
            records = raw.reshape(-1, _RECORD)
            labels.append(records[:, 0].astype(np.int64))
            images.append(_rows_to_images(records[:, 1:]))
        parts[split] = (np.concatenate(images), np.concatenate(labels))
    meta = _require(root / "batches.meta.txt").read_text().split()
    parts["class_names"] = meta[:10]
    return parts


def read_cifar100_py(root, label_mode: str = "fine") -> dict:
    if label_mode not in LABEL_MODES:
        raise DatasetError(f"CIFAR-100 label mode {label_mode!r}; choose fine or coarse")
    root = Path(root)
    parts = {}
    for split in ("train", "test"):
        path = _require(root / split)
        batch = safe_load(path)
        parts[split] = (_rows_to_images(_get(batch, "data", path)),
                        np.asarray(_get(batch, f"{label_mode}_labels", path), dtype=np.int64))
    meta_path = _require(root / "meta")
    parts["class_names"] = _names(_get(safe_load(meta_path), f"{label_mode}_label_names", meta_path))
    return parts
