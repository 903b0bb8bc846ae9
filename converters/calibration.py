"""Representative images for full-integer calibration: distinct training images, training preprocessing."""

from __future__ import annotations

import numpy as np

DEFAULT_CALIB_SAMPLES = 200


def calibration_indices(n_available: int, n_samples: int, seed: int) -> np.ndarray:
    """`n_samples` different indices, deterministic in `seed` (all of them when fewer are available)."""
    n_samples = min(n_samples, n_available)
    return np.sort(np.random.default_rng([seed, 0xCA1B]).choice(n_available, size=n_samples, replace=False))


def calibration_images(split, image_size: int, n_samples: int = DEFAULT_CALIB_SAMPLES, seed: int = 0) -> np.ndarray:
    from tflkit.data.pipeline import load_images  # TensorFlow: the CLI reads this module's default

    return load_images(split, image_size, calibration_indices(len(split), n_samples, seed))


def representative_dataset(images: np.ndarray):
    """The generator the TFLite converter calls: one image a step, batch of 1, float32 pixels."""

    def generate():
        for image in images:
            yield [image[None].astype(np.float32)]

    return generate
