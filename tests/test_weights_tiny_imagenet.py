"""Tiny ImageNet for real: the shared subset (200 classes, 200 train images each, the full val split as test),
materialized once per machine into ~/.cache/tflkit-data, read by `tflkit data tiny_imagenet`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tflkit.data import load_dataset

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def data_dir():
    if not (SHARED_DATA / "tiny_imagenet").is_dir():
        pytest.skip(f"no shared Tiny ImageNet at {SHARED_DATA}")
    out = Path("~/.cache/tflkit-data").expanduser()
    subprocess.run([sys.executable, str(SHARED_DATA / "materialize.py"), str(out), "--only", "tiny-imagenet"],
                   check=True, capture_output=True)
    return out


def test_counts_names_and_sorted_wnid_order(data_dir):
    root = data_dir / "tiny-imagenet-200"
    source = load_dataset("tiny_imagenet", data_dir=data_dir)
    info = source.describe()
    assert info["num_classes"] == 200 and info["image_size"] == 64
    assert info["splits"] == {"train": 36_000, "val": 4_000, "test": 10_000}  # val carved from the 40,000
    wnids = source.extra["wnids"]
    assert wnids == sorted((root / "wnids.txt").read_text().split())  # torchvision ImageFolder's numbering
    words = dict(line.split("\t", 1) for line in (root / "words.txt").read_text().splitlines())
    assert source.class_names == [words[w].split(",")[0].strip() for w in wnids]
    assert source.class_names[0] == "goldfish"  # n01443537, the smallest wnid
    train, val, test = (source.split(s).labels for s in ("train", "val", "test"))
    assert np.bincount(np.concatenate([train, val]), minlength=200).tolist() == [200] * 200
    assert np.bincount(test, minlength=200).tolist() == [50] * 200
    # a test image's label is its val_annotations.txt wnid's position in the sorted list
    first = (root / "val" / "val_annotations.txt").read_text().splitlines()[0].split("\t")
    assert source.split("test").paths[0].endswith(first[0]) and wnids[test[0]] == first[1]


def test_data_command_prints_the_splits(data_dir):
    out = subprocess.run([sys.executable, "-m", "tflkit", "data", "tiny_imagenet", "--data-dir", str(data_dir)],
                         capture_output=True, text=True, check=True).stdout
    assert "200 classes" in out and "36,000" in out and "10,000" in out and "goldfish" in out
