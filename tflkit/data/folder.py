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
    """{"train": Split, ["val": Split], ["test": Split], "class_names": [...], "image_size": int, "size_note": str
    or None}. `empty`: collect empty class folders there instead of raising."""
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
    parts["image_size"], parts["size_note"] = _probe_size(parts["train"].paths)
    return parts


SIZE_SAMPLE = 32  # images whose size sets the native size, spread evenly over train/ (every class's files)


def _probe_size(paths: list[str]) -> tuple[int, str | None]:
    """The native size a model is trained at unless --image-size says otherwise: the most common longer side among
    up to SIZE_SAMPLE readable images spread over `paths` (a tie: the smaller), and a note when they differ. It was
    the first readable image's: one 8,000-pixel photo sorted first set a dataset of 32-pixel images to train at
    8,000. Unreadable files are skipped here; training skips (or, --strict, names) them later."""
    from collections import Counter

    from PIL import Image, UnidentifiedImageError


    sample = paths[::max(1, len(paths) // SIZE_SAMPLE)][:SIZE_SAMPLE]
    sizes = Counter()
    for path in sample:
        if image_header_problem(path) is not None:  # over the pixel limit: not decoded, not the native size
            continue
        try:
            with Image.open(path) as image:
                image.load()
                sizes[max(image.size)] += 1
        # ValueError: Pillow's "tile cannot extend outside image", a GIF whose frame lies outside its 1 x 1 screen
        # (a traceback in `tflkit train folder:...`, found by tests/test_fuzz_weights_data.py)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
            continue
    if not sizes:
        raise DatasetError(f"{paths[0]}: not a readable image (nor any of the {len(sample)} sampled in train/)")
    top = max(sizes.values())
    size = min(s for s, n in sizes.items() if n == top)
    if len(sizes) == 1:
        return size, None
    return size, (f"native size {size} px: the most common longer side of {sum(sizes.values())} sampled train "
                  f"images ({min(sizes)} to {max(sizes)} px); --image-size N to choose another")
