"""Where a number came from: software versions, the machine, the data and the files, recorded with each stage."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import tflkit
from tflkit.hostbench import cpu_name


def sha256_file(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def environment() -> dict:
    """Versions and machine, without importing TensorFlow (its version is read from the installed metadata)."""
    return {
        "tflkit": tflkit.__version__,
        "tflkit_commit": _git_commit(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "litert": _version("ai-edge-litert"),
        "tfmot": _version("tensorflow-model-optimization"),
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """The source checkout's commit (with `-dirty` when it has uncommitted changes), when tflkit runs from one."""
    root = Path(tflkit.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("-dirty" if dirty else "")) or None


def dataset_checksum(source, cache_dir=None) -> dict:
    """sha256 over every split's labels and pixels (in-memory images) or file bytes (image folders).

    Cached per dataset spec in `cache_dir`: hashing a folder of 50,000 JPEGs takes seconds, not every stage.
    """
    key = hashlib.sha256(f"{source.name}|{source.label}|{sorted(source.splits)}".encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"{key}.json" if cache_dir else None
    if cache is not None and cache.is_file():
        return json.loads(cache.read_text())
    splits = {}
    for name, split in sorted(source.splits.items()):
        digest = hashlib.sha256(split.labels.tobytes())
        if split.images is not None:
            digest.update(split.images.tobytes())
        else:
            for path in split.paths:
                digest.update(Path(path).read_bytes())
        splits[name] = {"images": len(split), "sha256": digest.hexdigest()}
    info = {"spec": source.name, "label": source.label, "classes": source.num_classes, "splits": splits}
    if cache is not None:
        from tflkit.fileio import atomic_write_text

        atomic_write_text(cache, json.dumps(info, indent=1) + "\n")
    return info
