import numpy as np

from tflkit.data import load_dataset
from tflkit.data.shapes import CLASS_NAMES, generate, load_shapes


def test_generation_is_deterministic_in_the_seed():
    a, la = generate(50, seed=3)
    b, lb = generate(50, seed=3)
    c, _ = generate(50, seed=4)
    assert a.dtype == np.uint8 and a.shape == (50, 32, 32, 3)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_splits_are_balanced_and_distinct():
    source = load_shapes(seed=0, sizes={"train": 200, "val": 50, "test": 100})
    assert source.class_names == CLASS_NAMES
    assert source.describe()["splits"] == {"train": 200, "val": 50, "test": 100}
    counts = np.bincount(source.split("train").labels, minlength=10)
    assert counts.min() == counts.max() == 20
    assert not np.array_equal(source.split("train").images[:50], source.split("val").images)


def test_shapes_differ_between_classes():
    # Each class's mean "shape mask" (pixels far from the corner colour) differs from the others'.
    images, labels = generate(400, seed=1)
    gray = images.astype(np.float32).mean(axis=3)
    centre = np.abs(gray - gray[:, :2, :2].mean(axis=(1, 2), keepdims=True))
    means = np.stack([centre[labels == k].mean(axis=0) for k in range(10)])
    distances = np.linalg.norm(means[:, None] - means[None], axis=(2, 3))
    assert distances[~np.eye(10, dtype=bool)].min() > 5.0


def test_load_dataset_by_spec():
    assert load_dataset("shapes").num_classes == 10
