"""Dataset sources: safe pickles, the official CIFAR layouts, Tiny ImageNet, image folders, carving, fail-fast."""

from __future__ import annotations

import json
import os
import pickle
import time

import numpy as np
import pytest
from PIL import Image

from tflkit.core.errors import DatasetError, UsageError
from tflkit.data import load_dataset
from tflkit.data.safe_pickle import safe_load
from tflkit.data.splits import holdout_indices


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_code_is_rejected_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _RunsCode(marker)}))
    with pytest.raises(DatasetError, match="refused to unpickle.*(posix|os)\\.system"):
        safe_load(path)
    assert not marker.exists()


def test_safe_pickle_loads_numpy_batches(tmp_path):
    rows = np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8)
    for protocol in (2, 4):
        path = tmp_path / f"b{protocol}"
        path.write_bytes(pickle.dumps({b"data": rows, b"labels": [1, 2], b"batch_label": "x"}, protocol=protocol))
        batch = safe_load(path)
        assert np.array_equal(batch[b"data"], rows) and batch[b"labels"] == [1, 2]


def _write_cifar10_py(root, n_per_batch=20):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, n_per_batch)]}
        (root / name).write_bytes(pickle.dumps(batch, protocol=2))
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))


def test_cifar10_py_and_bin_layouts_agree(tmp_path):
    _write_cifar10_py(tmp_path / "cifar-10-batches-py")
    binary = tmp_path / "bin" / "cifar-10-batches-bin"
    binary.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = safe_load(tmp_path / "cifar-10-batches-py" / name)
        records = np.concatenate([np.array(batch[b"labels"], np.uint8)[:, None], batch[b"data"]], axis=1)
        records.tofile(binary / f"{name}.bin")
    (binary / "batches.meta.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n")
    a = load_dataset("cifar10:val=10", data_dir=tmp_path)
    b = load_dataset("cifar10:val=10", data_dir=tmp_path / "bin")
    assert a.describe()["splits"] == {"train": 90, "val": 10, "test": 20}
    for split in ("train", "val", "test"):
        assert np.array_equal(a.split(split).images, b.split(split).images)
        assert np.array_equal(a.split(split).labels, b.split(split).labels)
    assert a.class_names == b.class_names == [f"c{i}" for i in range(10)]
    assert any("carved" in note for note in a.describe()["notes"])


def _write_images(folder, n, rng, size=32):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_folder_source_carves_a_stratified_seeded_val(tmp_path):
    rng = np.random.default_rng(1)
    for c, n in (("cat", 30), ("dog", 10)):
        _write_images(tmp_path / "train" / c, n, rng)
        _write_images(tmp_path / "test" / c, 2, rng)
    a = load_dataset(f"folder:{tmp_path}", seed=3, val=8)
    b = load_dataset(f"folder:{tmp_path}", seed=3, val=8)
    assert a.describe()["splits"] == {"train": 32, "val": 8, "test": 4}
    assert a.class_names == ["cat", "dog"] and a.image_size == 32
    assert np.bincount(a.split("val").labels).tolist() == [6, 2]  # the 3:1 class ratio
    assert a.split("val").paths == b.split("val").paths


def test_holdout_is_deterministic_and_exact_in_size():
    labels = np.repeat(np.arange(7), [5, 9, 13, 2, 40, 11, 20])
    held = holdout_indices(labels, 17, seed=5)
    assert len(held) == 17 and len(set(held)) == 17
    assert np.array_equal(held, holdout_indices(labels, 17, seed=5))
    assert not np.array_equal(held, holdout_indices(labels, 17, seed=6))


def _tiny_imagenet_tree(root, rng, classes=("n01443537", "n01629819", "n01641577"), per_class=4):
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(classes) + "\n")
    (root / "words.txt").write_text("n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander\n"
                                    "n01641577\tbullfrog, Rana catesbeiana\nn99999999\tunused\n")
    for wnid in classes:
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{wnid}_{i}.JPEG")
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for i, wnid in enumerate(classes * 2):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
            root / "val" / "images" / f"val_{i}.JPEG")
        lines.append(f"val_{i}.JPEG\t{wnid}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


def test_tiny_imagenet_layout_is_read_and_auto_detected(tmp_path):
    _tiny_imagenet_tree(tmp_path / "tiny-imagenet-200", np.random.default_rng(2))
    for spec in ("tiny_imagenet:val=3", "auto"):
        source = load_dataset(spec, data_dir=tmp_path, val=3)
        assert source.describe()["splits"] == {"train": 9, "val": 3, "test": 6}
        assert source.class_names == ["goldfish", "European fire salamander", "bullfrog"]
        assert source.image_size == 64
        assert source.split("test").labels.tolist() == [0, 1, 2, 0, 1, 2]
    from tflkit.data.pipeline import load_images

    images = load_images(source.split("test"), 32)
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.float32 and images.max() <= 255


def test_cifar_without_files_or_network_fails_fast(tmp_path):
    start = time.monotonic()
    with pytest.raises(DatasetError, match="--data-dir"):
        load_dataset("cifar10", data_dir=tmp_path)
    assert time.monotonic() - start < 15


def test_bad_specs_are_usage_errors():
    with pytest.raises(UsageError, match="unknown dataset"):
        load_dataset("imagenet21k")
    with pytest.raises(UsageError, match="options are fine, coarse"):
        load_dataset("cifar100:medium")


def test_data_command_prints_json(capsys):
    from tflkit.cli import main

    assert main(["data", "shapes", "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)["results"]  # tflkit's JSON envelope
    assert info["splits"] == {"train": 6000, "val": 600, "test": 2000} and len(info["classes"]) == 10


def test_without_data_dir_the_default_data_folder_is_read(tmp_path, monkeypatch):
    _write_cifar10_py(tmp_path / "cifar-10-batches-py")
    monkeypatch.setenv("TFLKIT_DATA", str(tmp_path))
    source = load_dataset("cifar10")
    assert any(str(tmp_path) in note for note in source.extra["notes"])


def test_an_image_folder_copy_is_pointed_to_folder(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetError, match=f"holds an image folder .* as the dataset folder:{tmp_path}"):
        load_dataset("cifar10", data_dir=tmp_path)
