"""Image files checked for real: decode every file of a source the way the input pipeline will, and list the ones
it cannot read (and classes without images), so that one corrupt JPEG is a named file, not a 12-frame TensorFlow
traceback in the middle of training.

`find_unreadable` decodes in parallel with tf.data and drops failing elements (`ignore_errors`), then decodes only
the failures again, one at a time, for their reason. `screen_images` removes unreadable files from a source (or,
strict, stops with one line naming the first); it runs once per source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tflkit.core.errors import DatasetError
from tflkit.core.fileio import atomic_write_text, cache_dir
from tflkit.core.limits import IMAGE_PIXELS

SHOWN = 3  # file names shown in a one-line summary


@dataclass
class SplitCheck:
    split: str
    images: int
    unreadable: list[tuple[str, str]]  # (path, reason)


def find_unreadable(paths: list[str]) -> list[tuple[str, str]]:
    """(path, reason) for every file TensorFlow's decoder refuses, in the order given.

    Remembered per list of files (names, sizes and modification times) in tflkit's cache: a study or a tuning search
    loads the same 50,000 files in every process, and decoding them all takes about a minute on 2 cores."""
    if not paths:
        return []
    import hashlib
    import json
    import os


    listing = hashlib.sha256(f"max_pixels={IMAGE_PIXELS.value()}\n".encode())  # a raised limit: screened again
    for path in paths:
        try:
            stat = os.stat(path)
            listing.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            listing.update(f"{path}\0missing\n".encode())
    cached = cache_dir("screened", f"{listing.hexdigest()[:32]}.json")
    if cached.is_file():
        return [tuple(item) for item in json.loads(cached.read_text())]
    bombs = {}
    for path in paths:  # headers first: an image over the pixel limit is never handed to the decoder
        if (problem := image_header_problem(path)) is not None:
            bombs[path] = problem
    decoded = _decode_all([p for p in paths if p not in bombs]) if len(bombs) < len(paths) else []
    reasons = {**dict(decoded), **bombs}
    bad = [(p, reasons[p]) for p in paths if p in reasons]
    atomic_write_text(cached, json.dumps(bad))
    return bad


def image_header_problem(path) -> str | None:
    """Why the image file at `path` must not be decoded, read from its header alone (Pillow opens lazily): more
    pixels than tflkit.core.limits.IMAGE_PIXELS (a decompression bomb: a few KB of PNG claiming 50,000 x 50,000 pixels
    would decode to 7.5 GB). None when the header is within the limit or is not one Pillow reads (the decoder then
    names the file)."""
    from PIL import Image, UnidentifiedImageError


    previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # Pillow's own check: ours, stated, instead
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError):
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    pixels = int(width) * int(height)
    if pixels <= IMAGE_PIXELS.value():
        return None
    return f"{width} x {height}: " + IMAGE_PIXELS.message(pixels, "image").split(": ", 1)[1]


def require_decodable(paths) -> None:
    """A DatasetError naming the first file in `paths` whose header claims more pixels than the limit."""
    for path in paths:
        if (problem := image_header_problem(path)) is not None:
            raise DatasetError(f"{path}: not decoded ({problem})")


def _decode_all(paths: list[str]) -> list[tuple[str, str]]:
    from tflkit.data.pipeline import _decode_file, tf  # TensorFlow's decoder: the one training reads with

    ds = tf.data.Dataset.from_tensor_slices((tf.range(len(paths), dtype=tf.int64), tf.constant(paths)))
    ds = ds.map(lambda i, p: (i, tf.shape(_decode_file(p))[0]), num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=False).ignore_errors()
    readable = np.zeros(len(paths), bool)
    for indices, _ in ds.batch(4096):
        readable[indices.numpy()] = True
    bad = []
    for i in np.flatnonzero(~readable):
        bad.append((paths[i], _reason(paths[i], tf)))
    return bad


def _reason(path: str, tf) -> str:
    try:
        data = tf.io.read_file(path)
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError, tf.errors.UnknownError) as exc:
        text = re.sub(r"\{\{.*?\}\}\s*", "", exc.message or str(exc))  # TF's "{{function_node ...}}" prefix
        return (text.strip().splitlines() or ["unreadable"])[0][:120]
    return "failed in the parallel decode only"


def empty_classes(source) -> list[str]:
    """Classes with no training image (a folder source names empty class folders itself when it loads)."""
    counts = np.bincount(source.split("train").labels, minlength=source.num_classes)
    return [name for name, count in zip(source.class_names, counts) if count == 0]


def check_source(source) -> list[SplitCheck]:
    """Decode every file of every split (in-memory splits are decoded already: nothing to read)."""
    return [SplitCheck(name, len(split), find_unreadable(split.paths) if split.paths is not None else [])
            for name, split in source.splits.items()]


def summary_line(split: str, bad: list[tuple[str, str]]) -> str:
    from pathlib import Path

    names = ", ".join(Path(p).name for p, _ in bad[:SHOWN]) + (", ..." if len(bad) > SHOWN else "")
    return f"{len(bad)} unreadable image(s) in {split}: {names}"


def screen_images(source, strict: bool = False, log=print):
    """Drop unreadable image files from `source`'s file splits, in place, with one line per split that had any;
    `strict`: stop at the first with a DatasetError naming it. Returns `source`. Done once per source."""
    if source.extra.get("screened") or all(s.paths is None for s in source.splits.values()):
        return source
    for check in check_source(source):
        if not check.unreadable:
            continue
        path, reason = check.unreadable[0]
        if strict:
            raise DatasetError(f"{path}: not a readable image ({reason}); remove it, or leave out --strict to skip "
                               f"unreadable images")
        split = source.splits[check.split]
        bad = {p for p, _ in check.unreadable}
        keep = [i for i, p in enumerate(split.paths) if p not in bad]
        source.splits[check.split] = split.take(keep)
        log(f"data     skipped {summary_line(check.split, check.unreadable)}")
        source.extra.setdefault("skipped", {})[check.split] = [p for p, _ in check.unreadable]
    source.extra["screened"] = True
    return source


def check_dataset(source, log=None) -> dict:
    """`tflkit data SPEC --check`: every file decoded; {"images", "seconds", "unreadable": [{split, path, reason}],
    "empty_classes": [class folders or names]}."""
    import time

    start = time.perf_counter()
    files = sum(len(s) for s in source.splits.values() if s.paths is not None)
    if log and files:
        log(f"check    decoding {files:,} image files ...")
    unreadable = [{"split": c.split, "path": p, "reason": r} for c in check_source(source) for p, r in c.unreadable]
    empty = list(source.extra.get("empty_class_folders", [])) or empty_classes(source)
    return {"images": sum(len(s) for s in source.splits.values()), "files_decoded": files,
            "seconds": round(time.perf_counter() - start, 1), "unreadable": unreadable, "empty_classes": empty}


def check_lines(check: dict) -> list[str]:
    lines = [f"  check: {check['files_decoded']:,} image files decoded in {check['seconds']:.1f}s"
             if check["files_decoded"] else "  check: images held in memory (decoded when loaded)"]
    for item in check["unreadable"]:
        lines.append(f"  unreadable ({item['split']}): {item['path']}  ({item['reason']})")
    for name in check["empty_classes"]:
        lines.append(f"  empty class: {name}")
    if not check["unreadable"] and not check["empty_classes"]:
        lines.append("  every image readable, every class has images")
    return lines
