"""Tiny ImageNet (`tiny-imagenet-200`): 200 classes of 64x64 JPEGs, read as files.

  wnids.txt                          the 200 WordNet ids, one per line (in no particular order)
  words.txt                          wnid <tab> human-readable names (class names: the first of them)
  train/<wnid>/images/*.JPEG         500 per class
  val/val_annotations.txt            file <tab> wnid <tab> box...; images in val/images/
  test/images/*.JPEG                 unlabelled: not used

The labelled val split serves as test (the usual practice); a val split is carved from train.
Class indices follow the sorted wnids, as torchvision's ImageFolder and most published code number them (not
wnids.txt's line order), so index i is the same class here as in their checkpoints. A train folder with fewer
than the official 500 images per class (the shared subset has 200: 40,000 in all) is read as it is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tflkit.core.errors import DatasetError
from tflkit.data.source import Split

DIRNAME = "tiny-imagenet-200"
IMAGE_SIZE = 64


def _class_names(root: Path, wnids: list[str]) -> list[str]:
    words = {}
    path = root / "words.txt"
    if path.is_file():
        for line in path.read_text().splitlines():
            wnid, _, names = line.partition("\t")
            words[wnid] = names.split(",")[0].strip()
    return [words.get(w) or w for w in wnids]


def read_tiny_imagenet(root) -> dict:
    """{"train": Split, "test": Split, "class_names": [...], "wnids": [...]}."""
    root = Path(root)
    wnids_path = root / "wnids.txt"
    if not wnids_path.is_file():
        raise DatasetError(f"{root}: no wnids.txt; not a tiny-imagenet-200 directory")
    wnids = sorted({w.strip() for w in wnids_path.read_text().split() if w.strip()})
    index = {w: i for i, w in enumerate(wnids)}
    paths, labels = [], []
    for wnid in wnids:
        files = sorted((root / "train" / wnid / "images").glob("*.JPEG"))
        if not files:
            raise DatasetError(f"{root}/train/{wnid}/images has no .JPEG files")
        paths += [str(f) for f in files]
        labels += [index[wnid]] * len(files)
    train = Split(labels=np.array(labels), paths=paths)

    annotations = root / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise DatasetError(f"{annotations} is missing")
    val_paths, val_labels = [], []
    for n, line in enumerate(annotations.read_text().splitlines(), 1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise DatasetError(f"{annotations}:{n}: expected 'file<TAB>wnid', got {line[:60]!r}")
        val_paths.append(str(root / "val" / "images" / fields[0]))
        val_labels.append(index[fields[1]])
    test = Split(labels=np.array(val_labels), paths=val_paths)
    return {"train": train, "test": test, "class_names": _class_names(root, wnids), "wnids": wnids}
