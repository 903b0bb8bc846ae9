"""CIFAR through tensorflow-datasets: from a prepared tfds directory, or downloaded when a network exists.

tfds with no network retries name resolution for minutes, so this module decides up front, in about two seconds:
a prepared directory is used as is (no network touched); otherwise the download host must answer a TCP connect
within a short time-out, and the GCS mirror is switched off (it is a second, slower way to hang).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tflkit.core.download import host_reachable
from tflkit.core.errors import DatasetError

# tfds builder name -> the host its download comes from
DOWNLOAD_HOSTS = {"cifar10": "www.cs.toronto.edu", "cifar100": "www.cs.toronto.edu"}
DEFAULT_TFDS_DIR = Path("~/tensorflow_datasets").expanduser()


def _builder(name: str, data_dir: Path):
    import tensorflow_datasets as tfds

    return tfds.builder(name, data_dir=str(data_dir))


def is_prepared(name: str, data_dir) -> bool:
    data_dir = Path(data_dir)
    if not (data_dir / name).is_dir():
        return False
    return _builder(name, data_dir).is_prepared()


def load_tfds(name: str, data_dir=None, label_key: str = "label") -> dict:
    """{"train": (images, labels), "test": (images, labels), "class_names": [...]} as numpy arrays."""
    import tensorflow_datasets as tfds

    data_dir = Path(data_dir).expanduser() if data_dir else DEFAULT_TFDS_DIR
    builder = _builder(name, data_dir)
    if not builder.is_prepared():
        host = DOWNLOAD_HOSTS.get(name, "storage.googleapis.com")
        if not host_reachable(host):
            raise DatasetError(
                f"{name}: no official files found and no prepared tensorflow-datasets copy in {data_dir}, and no "
                f"network ({host} unreachable); unpack the official python-version archive into "
                f"~/.cache/tflkit-data (or $TFLKIT_DATA, or pass --data-dir DIR), e.g. DIR/cifar-10-batches-py")
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    parts = {}
    for split in ("train", "test"):
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        parts[split] = (np.asarray(data["image"], np.uint8), np.asarray(data[label_key], np.int64))
    parts["class_names"] = list(builder.info.features[label_key].names)
    return parts
