"""The real CIFAR data in ../shared/data, materialized once per machine into ~/.cache/tflkit-data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tflkit.data import load_dataset

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.data


@pytest.fixture(scope="session")
def cifar_dir():
    if not (SHARED_DATA / "materialize.py").is_file():
        pytest.skip(f"no shared data at {SHARED_DATA}")
    out = Path("~/.cache/tflkit-data").expanduser()
    subprocess.run([sys.executable, str(SHARED_DATA / "materialize.py"), str(out)], check=True,
                   capture_output=True)
    return out


def test_cifar10_official_order_counts_and_names(cifar_dir):
    from tflkit.data.cifar import read_cifar10_py

    parts = read_cifar10_py(cifar_dir / "cifar-10-batches-py")
    reference = np.load(SHARED_DATA / "cifar10" / "cifar10-original-order-labels.npz")
    assert np.array_equal(parts["train"][1], reference["y_train"])
    assert np.array_equal(parts["test"][1], reference["y_test"])
    assert parts["train"][0].shape == (50000, 32, 32, 3)
    source = load_dataset("cifar10", data_dir=cifar_dir)
    assert source.describe()["splits"] == {"train": 45000, "val": 5000, "test": 10000}
    assert source.class_names[:3] == ["airplane", "automobile", "bird"] and len(source.class_names) == 10
    assert np.bincount(source.split("val").labels).tolist() == [500] * 10


def test_cifar100_fine_and_coarse(cifar_dir):
    fine = load_dataset("cifar100:val=0", data_dir=cifar_dir)
    coarse = load_dataset("cifar100:coarse,val=0", data_dir=cifar_dir)
    assert fine.describe()["splits"] == coarse.describe()["splits"] == {"train": 50000, "test": 10000}
    assert fine.num_classes == 100 and coarse.num_classes == 20
    assert "apple" in fine.class_names and "vehicles_1" in coarse.class_names
    assert np.bincount(fine.split("train").labels).tolist() == [500] * 100


def test_folder_view_agrees_with_pickle_view(cifar_dir):
    from tflkit.data.pipeline import load_images
    from tflkit.data.safe_pickle import safe_load

    folder = load_dataset(f"folder:{cifar_dir / 'CIFAR-10-images'}")
    pickles = load_dataset("cifar10", data_dir=cifar_dir)
    assert folder.class_names == pickles.class_names
    for split in ("train", "val", "test"):
        assert np.bincount(folder.split(split).labels).tolist() == np.bincount(pickles.split(split).labels).tolist()
    # Pixels: the pickle rows were decoded from these very JPEGs; the batch names the file of each row.
    test_batch = safe_load(cifar_dir / "cifar-10-batches-py" / "test_batch")
    path_of = {Path(p).parent.name + "_" + Path(p).name: i for i, p in enumerate(folder.split("test").paths)}
    rows = np.arange(0, 10000, 97)
    index = [path_of[test_batch[b"filenames"][r].decode()] for r in rows]
    from_files = load_images(folder.split("test"), None, indices=index)
    from_pickle = pickles.split("test").images[rows].astype(np.float32)
    assert folder.split("test").labels[index].tolist() == pickles.split("test").labels[rows].tolist()
    assert np.abs(from_files - from_pickle).mean() < 1.0
