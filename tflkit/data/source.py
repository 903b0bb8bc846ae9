"""What every dataset source gives: named splits of uint8 images (in memory or as files), labels, class names."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tflkit.core.errors import DatasetError


@dataclass
class Split:
    """One split. Either `images` (N, H, W, 3) uint8 in memory, or `paths` to image files decoded on the fly."""

    labels: np.ndarray
    images: np.ndarray | None = None
    paths: list[str] | None = None

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if (self.images is None) == (self.paths is None):
            raise ValueError("a Split holds either images or paths")
        if len(self) != len(self.labels):
            raise ValueError(f"{len(self)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images) if self.images is not None else len(self.paths)

    def take(self, indices) -> Split:
        indices = np.asarray(indices)
        if self.images is not None:
            return Split(labels=self.labels[indices], images=self.images[indices])
        return Split(labels=self.labels[indices], paths=[self.paths[i] for i in indices])


@dataclass
class DatasetSource:
    name: str  # the spec the user gave, e.g. "shapes", "cifar10"
    class_names: list[str]
    image_size: int  # native side length; the pipeline resizes to the model's input size
    splits: dict[str, Split]  # "train", "val", "test"
    label: str = ""  # how to name the data in a report, e.g. "CIFAR-10 (JPEG copy)"
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise DatasetError(f"dataset {self.name!r} has no {name!r} split (it has {', '.join(self.splits)})")
        return self.splits[name]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "label": self.label or self.name,
            "image_size": self.image_size,
            "num_classes": self.num_classes,
            "classes": list(self.class_names),
            "splits": {k: len(v) for k, v in self.splits.items()},
            "notes": list(self.extra.get("notes", [])),  # e.g. where val came from
        }
