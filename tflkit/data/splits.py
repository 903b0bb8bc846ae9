"""Carving a validation split out of train: seeded, stratified, and stable (the kept images keep their order)."""

from __future__ import annotations

import numpy as np

from tflkit.data.source import Split


def holdout_indices(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """`size` indices drawn per class in proportion to the class counts, sorted. A pure function of its arguments."""
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 0x7A1])  # its own stream: unrelated to the per-epoch shuffle
    classes, counts = np.unique(labels, return_counts=True)
    # Largest-remainder apportionment so the per-class shares add up to exactly `size`.
    exact = counts * size / len(labels)
    take = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - take), kind="stable")[: size - take.sum()]:
        take[k] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:t] for c, t in zip(classes, take)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def carve_val(train: Split, size: int, seed: int) -> tuple[Split, Split]:
    """(train without the holdout, the holdout as val)."""
    size = min(int(size), len(train) - 1)
    held = holdout_indices(train.labels, size, seed)
    keep = np.setdiff1d(np.arange(len(train)), held)
    return train.take(keep), train.take(held)


def val_size(n_train: int, fraction: float = 0.1, cap: int = 5000) -> int:
    """10% of train, at most 5,000 (the common CIFAR 45k/5k split)."""
    return max(1, min(cap, int(round(n_train * fraction))))


def with_val(splits: dict, seed: int, notes: list, size: int | None = None) -> dict:
    """Add a carved `val` split when a source has none, and say so in `notes`."""
    if "val" in splits:
        return splits
    train = splits["train"]
    size = val_size(len(train)) if size is None else size
    if size <= 0:
        notes.append("no val split (carving disabled)")
        return splits
    train, val = carve_val(train, size, seed)
    notes.append(f"val: {len(val):,} images carved from train (stratified, seed {seed})")
    return {"train": train, "val": val, **{k: v for k, v in splits.items() if k != "train"}}
