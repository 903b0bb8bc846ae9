"""Where a number came from: the data and the files (the software and machine: tflkit.core.machine), with each stage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tflkit.core.fileio import atomic_write_text


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
        atomic_write_text(cache, json.dumps(info, indent=1) + "\n")
    return info
