"""The sizes tflkit will read from a file it did not write, each stated once, with the variable that raises it.

A damaged or hostile input (a 10 GB file named `.tflite`, a PNG header claiming 50,000 x 50,000 pixels, a YAML
alias bomb, a zip bomb posing as a `.pth`) is refused by its header or its size before anything is decoded or read
into memory, with one line naming the file, the limit and how to raise it. No TensorFlow import.

Each limit is an environment variable (`TFLKIT_MAX_...`), read when it is checked, so it can be raised for one
command: `TFLKIT_MAX_TFLITE_BYTES=8G tflkit inspect big.tflite`. Values take a K/M/G/T suffix (powers of 1024).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from tflkit.core.errors import UsageError


@dataclass(frozen=True)
class Limit:
    env: str  # the variable that raises it
    default: int
    what: str  # "the size of a .tflite read into memory"
    unit: str = "bytes"  # bytes, pixels, aliases, nodes, x

    def value(self) -> int:
        """The limit in force: the variable's value when set, else the default."""
        text = os.environ.get(self.env, "").strip()
        if not text:
            return self.default
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", text, re.IGNORECASE)
        if not match:
            raise UsageError(f"{self.env}={text!r}: expected a number, optionally with K, M, G or T")
        scale = 1024 ** " KMGT".index(match.group(2).upper() or " ")
        return int(float(match.group(1)) * scale)

    def check(self, amount: int, subject, error=UsageError) -> None:
        """Raise `error` with one line naming `subject`, `amount` and this limit when `amount` is over it."""
        limit = self.value()
        if amount > limit:
            raise error(self.message(amount, subject, limit))

    def message(self, amount: int, subject, limit: int | None = None) -> str:
        limit = self.value() if limit is None else limit
        return (f"{subject}: {show(amount, self.unit)} is over tflkit's limit on {self.what} "
                f"({show(limit, self.unit)}); if the file is trusted, raise it with {self.env}=N")


def show(amount: int, unit: str) -> str:
    if unit == "bytes":
        for suffix, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
            if amount >= size:
                return f"{amount / size:.1f} {suffix}"
        return f"{amount} bytes"
    if unit == "x":
        return f"{amount:,}x"
    return f"{amount:,} {unit}"


# The flatbuffer format addresses 2 GiB (larger models keep their buffers after it, which LiteRT maps from disk).
TFLITE_BYTES = Limit("TFLKIT_MAX_TFLITE_BYTES", 2 << 30, "the size of a .tflite read into memory")
# Pillow's own default (MAX_IMAGE_PIXELS: 89,478,485, a quarter GiB of 24-bit pixels); checked from the header.
IMAGE_PIXELS = Limit("TFLKIT_MAX_IMAGE_PIXELS", 89_478_485, "the pixels of one image decoded", "pixels")
YAML_BYTES = Limit("TFLKIT_MAX_YAML_BYTES", 4 << 20, "the size of a YAML file")
YAML_ALIASES = Limit("TFLKIT_MAX_YAML_ALIASES", 1000, "aliases (*name) in a YAML file", "aliases")
# What the aliases expand to, counted on the composed graph before any Python object is built: a billion-laughs
# file is 396 bytes and 81 aliases, and expands to 490 million nodes.
YAML_NODES = Limit("TFLKIT_MAX_YAML_NODES", 1_000_000, "the nodes a YAML file expands to", "nodes")
LABELS_BYTES = Limit("TFLKIT_MAX_LABELS_BYTES", 64 << 20, "the size of a labels file")
# torch.save stores its members uncompressed (ratio 1); a deflated member that expands more than this is a bomb.
PTH_MEMBER_BYTES = Limit("TFLKIT_MAX_PTH_MEMBER_BYTES", 4 << 30, "one member of a .pth file read into memory")
ZIP_RATIO = Limit("TFLKIT_MAX_ZIP_RATIO", 100, "the compression ratio of a member of a .pth zip", "x")
# One weight array of an .h5 / .weights.h5, from its declared shape before it is read: HDF5 fills a dataset the file
# never stored with zeros, so a few KB can declare terabytes. As large as a .pth member may be.
H5_DATASET_BYTES = Limit("TFLKIT_MAX_H5_DATASET_BYTES", 4 << 30, "one dataset of an HDF5 weights file read into memory")
# One file of the official CIFAR layouts (batches, meta), read whole: the largest official one is CIFAR-100's train
# pickle (150 MB). A 100 GB batch file was numpy's MemoryError, a 6 GB one read into memory before it was refused.
CIFAR_FILE_BYTES = Limit("TFLKIT_MAX_CIFAR_FILE_BYTES", 1 << 30, "one CIFAR file read into memory")

# The address space of the child that loads a .tflite first (tflkit.tflite.check): this plus 4x the file's size. A
# mutant whose static output shape claims 1.1 billion floats made XNNPACK take 4.5 GB, until the OOM killer came.
TFLITE_CHECK_BYTES = Limit("TFLKIT_MAX_TFLITE_CHECK_BYTES", 2 << 30,
                           "the memory a .tflite may take to load (plus 4x its size)")

ALL = (TFLITE_BYTES, TFLITE_CHECK_BYTES, IMAGE_PIXELS, YAML_BYTES, YAML_ALIASES, YAML_NODES, LABELS_BYTES,
       PTH_MEMBER_BYTES, ZIP_RATIO, H5_DATASET_BYTES, CIFAR_FILE_BYTES)
