"""Dataset sources behind one `--dataset` spec. `load_dataset(spec, data_dir)` gives a DatasetSource.

Specs:
  shapes                      the embedded generated dataset (no files)
  cifar10                     official files under --data-dir (cifar-10-batches-py or -bin), else tensorflow-datasets
  cifar100[:coarse]           official cifar-100-python under --data-dir, else tensorflow-datasets; fine labels
                              by default
  tiny_imagenet               tiny-imagenet-200 under --data-dir (its labelled val split serves as test)
  folder:PATH                 train/<class>/* with optional val/ and test/
  auto                        whichever one of the layouts above sits under --data-dir
Options after the name, comma-separated: `val=N` sets the size of a val split carved from train (0: none), e.g.
`cifar100:coarse,val=2000`.
"""

from __future__ import annotations

import os
from pathlib import Path

from tflkit.core.errors import DatasetError, UsageError, unknown_choice
from tflkit.data import cifar
from tflkit.data.folder import read_folder
from tflkit.data.shapes import load_shapes
from tflkit.data.source import DatasetSource, Split  # noqa: F401
from tflkit.data.splits import with_val
from tflkit.data.tfds_source import load_tfds
from tflkit.data.tiny_imagenet import DIRNAME, IMAGE_SIZE, read_tiny_imagenet


def _shapes(data_dir=None, seed=0, **_):
    return load_shapes(seed=seed)


def _arrays_source(parts: dict, *, name: str, label: str, seed: int, val: int | None, notes: list,
                   image_size: int = 32) -> DatasetSource:
    splits = {k: Split(labels=parts[k][1], images=parts[k][0]) for k in ("train", "test")}
    splits = with_val(splits, seed, notes, val)
    return DatasetSource(name=name, class_names=parts["class_names"], image_size=image_size, splits=splits,
                         label=label, extra={"notes": notes})


def _find(data_dir, dirname: str) -> Path | None:
    if data_dir is None:
        return None
    data_dir = Path(data_dir).expanduser()
    for candidate in (data_dir, data_dir / dirname):
        if candidate.name == dirname and candidate.is_dir():
            return candidate
    return None


def _require_data_dir(data_dir):
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise DatasetError(f"--data-dir {data_dir} is not a directory")


def _cifar10(data_dir=None, seed=0, val=None, **_):
    _require_data_dir(data_dir)
    if root := _find(data_dir, cifar.CIFAR10_PY):
        parts, origin = cifar.read_cifar10_py(root), str(root)
    elif root := _find(data_dir, cifar.CIFAR10_BIN):
        parts, origin = cifar.read_cifar10_bin(root), str(root)
    else:
        parts, origin = _via_tfds("cifar10", data_dir, "label"), "tensorflow-datasets"
    return _arrays_source(parts, name="cifar10", label="CIFAR-10", seed=seed, val=val,
                          notes=[f"read from {origin}"])


def _cifar100(data_dir=None, seed=0, val=None, label_mode="fine", **_):
    _require_data_dir(data_dir)
    if label_mode not in cifar.LABEL_MODES:
        raise UsageError(f"cifar100 labels {label_mode!r}; choose fine or coarse (e.g. cifar100:coarse)")
    if root := _find(data_dir, cifar.CIFAR100_PY):
        parts, origin = cifar.read_cifar100_py(root, label_mode), str(root)
    else:
        key = "label" if label_mode == "fine" else "coarse_label"
        parts, origin = _via_tfds("cifar100", data_dir, key), "tensorflow-datasets"
    return _arrays_source(parts, name="cifar100", label=f"CIFAR-100 ({label_mode} labels)", seed=seed, val=val,
                          notes=[f"read from {origin}", f"{label_mode} labels"])


def _via_tfds(name: str, data_dir, label_key: str) -> dict:
    if data_dir is not None and (Path(data_dir).expanduser() / "train").is_dir():  # an image-folder copy
        raise DatasetError(f"{data_dir} holds an image folder (train/...), not the official {name} files: read it "
                           f"as the dataset folder:{data_dir}")

    return load_tfds(name, data_dir, label_key)


def _tiny_imagenet(data_dir=None, seed=0, val=None, **_):
    root = _find(data_dir, DIRNAME)
    if root is None:
        raise DatasetError(f"tiny_imagenet needs {DIRNAME}/ (wnids.txt, train/, val/) in --data-dir, $TFLKIT_DATA or "
                           f"~/.cache/tflkit-data")
    parts = read_tiny_imagenet(root)
    notes = [f"read from {root}", "test: the labelled official val split"]
    splits = with_val({"train": parts["train"], "test": parts["test"]}, seed, notes, val)
    return DatasetSource(name="tiny_imagenet", class_names=parts["class_names"], image_size=IMAGE_SIZE,
                         splits=splits, label="Tiny ImageNet", extra={"notes": notes, "wnids": parts["wnids"]})


def _folder(data_dir=None, seed=0, val=None, path=None, allow_empty_classes=False, **_):
    root = Path(path).expanduser() if path else (Path(data_dir).expanduser() if data_dir else None)
    if root is None:
        raise UsageError("folder needs a path: --dataset folder:PATH")
    if not root.is_absolute() and data_dir and not root.exists():
        root = Path(data_dir).expanduser() / root
    empty = [] if allow_empty_classes else None
    parts = read_folder(root, empty)
    notes = [f"read from {root}"] + ([parts["size_note"]] if parts["size_note"] else [])
    splits = with_val({k: parts[k] for k in ("train", "val", "test") if k in parts}, seed, notes, val)
    return DatasetSource(name=f"folder:{root}", class_names=parts["class_names"], image_size=parts["image_size"],
                         splits=splits, label=f"image folder {root.name}",
                         extra={"notes": notes, "empty_class_folders": empty or []})


# spec name -> loader(data_dir=..., seed=..., **options).
SOURCES = {
    "shapes": _shapes,
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "tiny_imagenet": _tiny_imagenet,
    "folder": _folder,
}


def detect_layouts(data_dir) -> list[str]:
    """The dataset specs whose official layout sits in (or is) `data_dir`."""
    found = []
    for spec, dirname in (("cifar10", cifar.CIFAR10_PY), ("cifar10", cifar.CIFAR10_BIN),
                          ("cifar100", cifar.CIFAR100_PY), ("tiny_imagenet", DIRNAME)):
        if _find(data_dir, dirname) and spec not in found:
            found.append(spec)
    if not found and (Path(data_dir).expanduser() / "train").is_dir():
        found.append("folder")
    return found


def parse_spec(spec: str) -> tuple[str, dict]:
    """'cifar100:coarse,val=2000' -> ('cifar100', {'label_mode': 'coarse', 'val': 2000}); folder takes a path."""
    name, _, arg = spec.partition(":")
    if name == "folder":
        return name, ({"path": arg} if arg else {})
    options = {}
    for item in filter(None, arg.split(",")):
        key, eq, value = item.partition("=")
        if key in ("fine", "coarse") and not eq:
            options["label_mode"] = key
        elif key == "val" and eq and value.isdigit():
            options["val"] = int(value)
        else:
            raise UsageError(f"dataset option {item!r} in {spec!r}; options are fine, coarse, val=N")
    return name, options


# Where the real datasets are looked for when no --data-dir is given (`python ../shared/data/materialize.py DIR`
# or the official downloads unpacked there); the committed study files name it too.
DATA_DIR_ENV = "TFLKIT_DATA"
DEFAULT_DATA_DIR = Path("~/.cache/tflkit-data")
FILE_DATASETS = ("cifar10", "cifar100", "tiny_imagenet")


def default_data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def load_dataset(spec: str, data_dir=None, seed: int = 0, **options) -> DatasetSource:
    name, parsed = parse_spec(spec)
    if data_dir is None and name in FILE_DATASETS and default_data_dir().is_dir():
        data_dir = default_data_dir()
    if name == "auto":
        if data_dir is None:
            raise UsageError("--dataset auto needs --data-dir")
        _require_data_dir(data_dir)
        found = detect_layouts(data_dir)
        if len(found) != 1:
            raise DatasetError(f"{data_dir}: " + (f"several datasets ({', '.join(found)}); name one with --dataset"
                                                  if found else "no known dataset layout found"))
        name = found[0]
    if name not in SOURCES:
        raise unknown_choice("dataset", spec, [*SOURCES, "auto"])
    source = SOURCES[name](data_dir=data_dir, seed=seed, **{**parsed, **options})
    if name != "folder":
        source.name = spec if spec.partition(":")[0] != "auto" else name
    return source
