"""tf.data input pipelines: decode, resize to the model's input size, shuffle deterministically, batch, prefetch.

Models normalize their own input, so the pipeline hands them float32 pixels in 0..255 (the same values a camera
gives a deployed .tflite). Shuffling is a pure function of (seed, epoch): a run resumed at epoch k sees exactly the
batches an uninterrupted run would have.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tflkit.data.source import Split


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def _decode_file(path):
    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _resize(image, image_size):
    image = tf.cast(image, tf.float32)
    if image_size is None:
        return image
    return tf.image.resize(image, (image_size, image_size), method="bilinear", antialias=True)


def _element_source(split: Split):
    """A function index -> uint8 image tensor, and whether the images are already in memory."""
    if split.images is not None:
        images = tf.constant(split.images)
        return (lambda i: tf.gather(images, i)), True
    paths = tf.constant(split.paths)
    return (lambda i: _decode_file(tf.gather(paths, i))), False


def make_dataset(split: Split, image_size: int | None, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 epochs: int = 1, initial_epoch: int = 0, drop_remainder: bool = False, augment=None):
    """Batches of (float32 pixels 0..255 at image_size, int64 labels).

    With `shuffle`, the dataset covers epochs initial_epoch..epochs-1 back to back, each in its own seeded order;
    pass `steps_per_epoch=len(split) // batch_size` to Keras' fit with drop_remainder=True.
    `augment` is a callable on a batch (images, labels) -> (images, labels), applied after batching.
    """
    n = len(split)
    if shuffle:
        order = np.concatenate([epoch_order(n, seed, e) for e in range(initial_epoch, epochs)])
    else:
        order = np.arange(n)
    labels = tf.constant(split.labels)
    load, in_memory = _element_source(split)
    ds = tf.data.Dataset.from_tensor_slices(order.astype(np.int64))
    ds = ds.map(lambda i: (_resize(load(i), image_size), tf.gather(labels, i)),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def load_images(split: Split, image_size: int | None, indices=None) -> np.ndarray:
    """A numpy batch of preprocessed images (float32, 0..255, resized), e.g. for calibration or validation."""
    sub = split.take(indices) if indices is not None else split
    ds = make_dataset(sub, image_size, batch_size=256)
    return np.concatenate([x.numpy() for x, _ in ds]) if len(sub) else np.zeros((0, image_size, image_size, 3))
