"""`folder:PATH`: any tree of images as `train/<class>/*` with optional `val/<class>/*` and `test/<class>/*`.

Class names are train's subfolder names, sorted; a class index is its position in that list. Files are decoded
on the fly (JPEG, PNG, BMP, GIF), and cached in memory by the pipeline when they fit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tflkit.core.errors import DatasetError
from tflkit.data.check import image_header_problem
from tflkit.data.source import Split

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}


def _files(class_dir: Path) -> list[Path]:
    return sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_split(split_dir: Path, class_names: list[str], empty: list | None = None) -> Split:
    """The files of one split. A class folder with no image is an error naming it (it would silently become an
    extra output that never sees an example), unless `empty` collects such folders (for `tflkit data --check`)."""
    index = {c: i for i, c in enumerate(class_names)}
    paths, labels = [], []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        if class_dir.name not in index:
            raise DatasetError(f"{class_dir}: class {class_dir.name!r} is not in train/ ({len(class_names)} classes)")
        files = _files(class_dir)
        if not files:
            if empty is None:
                raise DatasetError(f"{class_dir}: empty class folder (no {', '.join(sorted(IMAGE_SUFFIXES))} "
                                   f"files); add images or remove the folder")
            empty.append(str(class_dir))
        paths += [str(f) for f in files]
        labels += [index[class_dir.name]] * len(files)
    if not paths:
        raise DatasetError(f"{split_dir}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders")
    return Split(labels=np.array(labels), paths=paths)


def read_folder(root, empty: list | None = None) -> dict:
    """{"train": Split, ["val": Split], ["test": Split], "class_names": [...], "image_size": int}. `empty`: collect
    empty class folders there instead of raising."""
    root = Path(root).expanduser()
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise DatasetError(f"{root}: no train/ folder; expected train/<class>/<image> (and optional val/, test/)")
    class_names = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if not class_names:
        raise DatasetError(f"{train_dir}: no class subfolders")
    parts = {"class_names": class_names}
    for name in ("train", "val", "test"):
        if (root / name).is_dir():
            parts[name] = read_split(root / name, class_names, empty)
    parts["image_size"] = _probe_size(parts["train"].paths)
    return parts


def _probe_size(paths: list[str]) -> int:
    """The first readable image's longer side: the native size a model is trained at unless --image-size says
    otherwise. Unreadable files are skipped here; training skips (or, --strict, names) them later."""
    from PIL import Image, UnidentifiedImageError


    for path in paths[:50]:
        if image_header_problem(path) is not None:  # over the pixel limit: not decoded, not the native size
            continue
        try:
            with Image.open(path) as image:
                image.load()
                return max(image.size)
        # ValueError: Pillow's "tile cannot extend outside image", a GIF whose frame lies outside its 1 x 1 screen
        # (a traceback in `tflkit train folder:...`, found by tests/test_fuzz_weights_data.py)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
            continue
    raise DatasetError(f"{paths[0]}: not a readable image (nor any of the first {min(50, len(paths))} in train/)")
