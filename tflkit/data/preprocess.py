"""What a classifier from elsewhere expects: its input normalization and which output is which class.

tflkit's own models take raw 0..255 RGB pixels (they normalize as their first layer) and output one logit per
dataset class. Other people's .tflite files often expect [-1, 1] or [0, 1] inputs, and ImageNet models have 1001
outputs with a background class at 0. Without the right preprocessing their top-1 is plausible-looking noise, so
it is taken, in this order, from: the flags (`--input-range` or `--mean`/`--std`), tflkit's model card, the file's
TFLite metadata, the float range its integer input quantization covers; and otherwise assumed, said once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tflkit.core.errors import UsageError
from tflkit.core.limits import LABELS_BYTES
from tflkit.core.run import card_path
from tflkit.tflite.metadata import read_metadata
from tflkit.tflite.runtime import load_interpreter

# --input-range -> (mean, std) of (pixel - mean) / std, pixels in 0..255
INPUT_RANGES = {"0,255": (0.0, 1.0), "0,1": (0.0, 255.0), "-1,1": (127.5, 127.5)}


@dataclass(frozen=True)
class Preprocessing:
    mean: tuple = (0.0, 0.0, 0.0)
    std: tuple = (1.0, 1.0, 1.0)
    origin: str = "assumed"  # flags, model card, metadata, input quantization, assumed, keras model

    @property
    def identity(self) -> bool:
        return all(m == 0 for m in self.mean) and all(s == 1 for s in self.std)

    def apply(self, images: np.ndarray) -> np.ndarray:
        """0..255 float pixels (N, H, W, 3) -> what the model's input expects (before its own quantization)."""
        if self.identity:
            return images
        return ((images - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)).astype(np.float32)

    def describe(self) -> str:
        for name, (mean, std) in INPUT_RANGES.items():
            if all(m == mean for m in self.mean) and all(s == std for s in self.std):
                return f"input range {name} ({self.origin})"
        return f"(pixel - {_fmt(self.mean)}) / {_fmt(self.std)} ({self.origin})"


def _fmt(values) -> str:
    values = [f"{v:g}" for v in values]
    return values[0] if len(set(values)) == 1 else "[" + ", ".join(values) + "]"


def _three(values, flag: str) -> tuple:
    values = [float(v) for v in values]
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise UsageError(f"{flag} takes one value or three (R G B), got {len(values)}")
    return tuple(values)


def from_flags(input_range: str | None = None, mean=None, std=None) -> Preprocessing | None:
    """The preprocessing the user asked for, or None when no flag was given."""
    if input_range is not None and (mean is not None or std is not None):
        raise UsageError("give --input-range or --mean/--std, not both")
    if input_range is not None:
        key = input_range.replace(" ", "")
        if key not in INPUT_RANGES:
            raise UsageError(f"--input-range {input_range!r}; choose one of {', '.join(INPUT_RANGES)}")
        mean_value, std_value = INPUT_RANGES[key]
        return Preprocessing((mean_value,) * 3, (std_value,) * 3, "flags")
    if mean is None and std is None:
        return None
    result = Preprocessing(_three(mean if mean is not None else [0.0], "--mean"),
                           _three(std if std is not None else [1.0], "--std"), "flags")
    if any(s == 0 for s in result.std):
        raise UsageError("--std must not be 0")
    return result


def for_model(path, flags: Preprocessing | None = None, log=print) -> Preprocessing:
    """The preprocessing of the model file at `path` (see the module docstring for the order)."""
    path = Path(path)
    if flags is not None:
        return flags
    if path.suffix == ".keras":
        return Preprocessing(origin="keras model")  # tflkit models normalize inside
    if card_path(path).is_file():
        return Preprocessing(origin="model card")  # tflkit's own file: raw pixels, normalized inside

    try:
        metadata = read_metadata(path)
    except ValueError as exc:
        metadata = None
        log(f"note: {path.name}: its TFLite metadata is not read ({exc})")
    if metadata is not None and metadata.mean and metadata.std:
        return Preprocessing(_three(metadata.mean, "metadata mean"), _three(metadata.std, "metadata std"),
                             "metadata")
    from_quantization = _from_input_quantization(path)
    if from_quantization is not None:
        return from_quantization
    log(f"note: {path.name}: no model card, no normalization in TFLite metadata and no --input-range/--mean/--std: "
        f"preprocessing assumed to be raw 0..255 RGB pixels")
    return Preprocessing(origin="assumed")


def _from_input_quantization(path) -> Preprocessing | None:
    """An integer input whose quantization covers one of the usual float ranges tells the range itself."""
    detail = load_interpreter(path, xnnpack=False).get_input_details()[0]  # XNNPACK's refusal is not ours to meet
    if not np.issubdtype(detail["dtype"], np.integer):
        return None
    scale, zero_point = detail["quantization"]
    if not scale:
        return None
    info = np.iinfo(detail["dtype"])
    low, high = (info.min - zero_point) * scale, (info.max - zero_point) * scale
    for mean, std in INPUT_RANGES.values():
        want_low, want_high = (0 - mean) / std, (255 - mean) / std
        tolerance = 0.02 * (want_high - want_low)
        if abs(low - want_low) <= tolerance and abs(high - want_high) <= tolerance:
            return Preprocessing((mean,) * 3, (std,) * 3, "input quantization")
    return None


# ------------------------------------------------------------------------------------------------------- labels


def normalize_name(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


INDEXED_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.*?)\s*$")  # TF-slim's labels_1001.txt: "0:background", "1:tench"
WNID_LINE = re.compile(r"^\s*(n\d{8})\s+(.*?)\s*$")  # synset_words.txt: "n01440764 tench, Tinca tinca"


def read_labels(path) -> list[str]:
    """Class names in output order, from one of the formats models ship with: one name a line; `index:name` lines
    (TF-slim, numbered from 0 without gaps); `wnid name` lines (ImageNet's synset_words.txt: the wnid becomes one
    more synonym, so Tiny ImageNet's wnid-named classes match). Commas separate synonyms."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--labels: no such file: {path}")

    LABELS_BYTES.check(path.stat().st_size, f"--labels {path}")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise UsageError(f"--labels {path}: the file is empty (one class name a line)")
    indexed = [INDEXED_LINE.match(line) for line in lines]
    if all(indexed):
        numbers = [int(m.group(1)) for m in indexed]
        if numbers != list(range(len(numbers))):
            wrong = next(i for i, n in enumerate(numbers) if n != i)
            raise UsageError(f"--labels {path}: `index:name` lines must count from 0 without gaps; line {wrong + 1} "
                             f"is {lines[wrong]!r}")
        return [m.group(2) for m in indexed]
    wnids = [WNID_LINE.match(line) for line in lines]
    if all(wnids):
        return [f"{m.group(1)}, {m.group(2)}" for m in wnids]
    return lines


def class_outputs(num_outputs: int, class_names: list[str], labels: list[str] | None, model_name: str,
                  log=print) -> np.ndarray:
    """The model output index of each dataset class, in the dataset's class order.

    With a label list (one name a line, in output order; synonyms separated by commas as in ImageNet's), names are
    matched case- and separator-insensitively; a list one shorter than the outputs means a background class at
    output 0 (1001-class models). Without one, outputs are the dataset's classes in order (or, one more, after a
    background class)."""
    num_classes = len(class_names)
    if labels is None:
        if num_outputs == num_classes:
            return np.arange(num_classes)
        if num_outputs == num_classes + 1:
            log(f"note: {model_name}: {num_outputs} outputs for {num_classes} classes: output 0 taken as a "
                f"background class")
            return np.arange(1, num_classes + 1)
        raise UsageError(f"{model_name} has {num_outputs} outputs but the dataset has {num_classes} classes; give "
                         f"--labels FILE (the model's class names, one a line) to match them")
    offset = num_outputs - len(labels)
    if offset not in (0, 1):
        raise UsageError(f"{model_name} has {num_outputs} outputs but the labels file has {len(labels)} lines")
    if offset == 1:
        log(f"note: {model_name}: {num_outputs} outputs, {len(labels)} labels: output 0 is the background class")
    index = {}
    for position, line in enumerate(labels):
        for synonym in [line, *line.split(",")]:
            index.setdefault(normalize_name(synonym), position + offset)
    missing = [name for name in class_names if normalize_name(name) not in index]
    if missing:
        raise UsageError(f"{len(missing)} dataset class(es) not in the labels file: {', '.join(missing[:5])}"
                         + (", ..." if len(missing) > 5 else "") + f"; its first lines read {labels[:3]} (names are "
                         "matched case- and separator-insensitively, commas separating synonyms)")
    return np.array([index[normalize_name(name)] for name in class_names])
