"""The embedded `shapes` dataset: ten kinds of drawn shapes, generated from a seed, no files and no network.

32x32 RGB. Each image is one shape with a random centre, size, small rotation and colours, on a colour-gradient
background, under Gaussian noise. Contrast and noise vary so that some images are genuinely hard: a small CNN
lands near 90% rather than at 100%, which leaves room for quantization to show a difference.
"""

from __future__ import annotations

import numpy as np

from tflkit.data.source import DatasetSource, Split

CLASS_NAMES = [
    "disk", "ring", "square", "frame", "triangle", "plus", "x_cross", "diamond", "h_stripes", "v_stripes",
]
IMAGE_SIZE = 32
DEFAULT_SIZES = {"train": 6000, "val": 600, "test": 2000}

_GRID = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) + 0.5  # (2, H, W): y, x


def _mask(kind: int, u: np.ndarray, v: np.ndarray, r: float, t: float) -> np.ndarray:
    """Boolean mask of shape `kind` in shape-local coordinates u (right), v (down), radius r, stroke t."""
    box = np.maximum(np.abs(u), np.abs(v))
    dist = np.hypot(u, v)
    if kind == 0:
        return dist < r
    if kind == 1:
        return np.abs(dist - 0.8 * r) < t
    if kind == 2:
        return box < 0.85 * r
    if kind == 3:
        return np.abs(box - 0.8 * r) < t
    if kind == 4:  # upward triangle: below the two slanted edges, above the base
        return (v < 0.7 * r) & (v > -r + 1.9 * np.abs(u))
    if kind == 5:
        return ((np.abs(u) < t) & (np.abs(v) < r)) | ((np.abs(v) < t) & (np.abs(u) < r))
    if kind == 6:
        a, b = (u + v) / np.sqrt(2), (u - v) / np.sqrt(2)
        return ((np.abs(a) < t) & (np.abs(b) < r)) | ((np.abs(b) < t) & (np.abs(a) < r))
    if kind == 7:
        return np.abs(u) + np.abs(v) < r
    period = max(2.0 * t, 3.0)
    if kind == 8:
        return (box < r) & (np.mod(v + r, 2 * period) < period)
    return (box < r) & (np.mod(u + r, 2 * period) < period)


def _draw(rng: np.random.Generator, kind: int) -> np.ndarray:
    y, x = _GRID
    cy, cx = rng.uniform(11, 21, size=2)
    r = rng.uniform(6.0, 11.0)
    t = rng.uniform(1.2, 2.2)
    angle = np.deg2rad(rng.uniform(-20, 20))
    dy, dx = y - cy, x - cx
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = -np.sin(angle) * dx + np.cos(angle) * dy
    mask = _mask(kind, u, v, r, t)[..., None]

    # Background: a random linear colour gradient. Foreground: a colour at a random, sometimes low, contrast.
    bg0, bg1 = rng.uniform(0, 255, size=(2, 3))
    ramp = (np.cos(rng.uniform(0, 2 * np.pi)) * x + np.sin(rng.uniform(0, 2 * np.pi)) * y) / (IMAGE_SIZE * 1.5)
    background = bg0 + (bg1 - bg0) * np.clip(ramp + 0.5, 0, 1)[..., None]
    contrast = rng.uniform(25, 110)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction) + 1e-6
    foreground = bg0 + contrast * direction * np.sqrt(3)
    image = np.where(mask, foreground, background)
    image = image + rng.normal(0, rng.uniform(8, 30), size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def generate(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(CLASS_NAMES)
    rng.shuffle(labels)
    images = np.stack([_draw(rng, int(k)) for k in labels]) if n else np.zeros((0, 32, 32, 3), np.uint8)
    return images, labels


def load_shapes(seed: int = 0, sizes: dict | None = None) -> DatasetSource:
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    splits = {}
    # Each split has its own stream so changing one split's size leaves the others unchanged.
    for offset, name in enumerate(("train", "val", "test")):
        images, labels = generate(sizes[name], seed=seed * 1000 + offset)
        splits[name] = Split(labels=labels, images=images)
    return DatasetSource(
        name="shapes", class_names=list(CLASS_NAMES), image_size=IMAGE_SIZE, splits=splits,
        label="shapes (embedded, generated)",
    )
