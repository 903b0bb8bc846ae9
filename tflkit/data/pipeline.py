"""tf.data input pipelines: decode, resize to the model's input size, cache, shuffle deterministically, augment,
batch, prefetch.

Models normalize their own input, so the pipeline hands them float32 pixels in 0..255 (the same values a camera
gives a deployed .tflite). Shuffling is a pure function of (seed, epoch), and the stateless augmentations are a
pure function of (seed, epoch, step): a run resumed at epoch k sees exactly the batches an uninterrupted run would
have.

Images held in memory are gathered a whole batch at a time (one gather and one resize per batch rather than per
image): on two cores the input pipeline shares the CPU with training, so its cost shows up directly in images/s.
Images that live as files are decoded once into memory when they fit (`CACHE_BUDGET_BYTES`), else per epoch.
"""

from __future__ import annotations

import numpy as np

from tflkit.core.tfenv import quiet_tensorflow
from tflkit.data.check import require_decodable
from tflkit.data.source import Split

tf = quiet_tensorflow()

CACHE_BUDGET_BYTES = 3 << 30  # decoded uint8 images kept in memory up to this size


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def _decode_file(path):
    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _resize(images, image_size):
    images = tf.cast(images, tf.float32)
    if image_size is None or images.shape[-2] == image_size and images.shape[-3] == image_size:
        return images
    return tf.image.resize(images, (image_size, image_size), method="bilinear", antialias=True)


def _decoded(split: Split, image_size: int | None) -> np.ndarray | None:
    """Decode a file split once, resized to image_size, as uint8 in memory; None when it would not fit."""
    if split.images is not None:
        return split.images
    if image_size is None or len(split) * image_size * image_size * 3 > CACHE_BUDGET_BYTES:
        return None
    cache = split.__dict__.setdefault("_decoded", {})
    if image_size not in cache:
        ds = tf.data.Dataset.from_tensor_slices(tf.constant(split.paths))
        ds = ds.map(lambda p: tf.cast(tf.round(tf.clip_by_value(_resize(_decode_file(p), image_size), 0, 255)),
                                      tf.uint8), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        cache[image_size] = np.concatenate([b.numpy() for b in ds.batch(1024)])
    return cache[image_size]


def _epoch_batches(order: np.ndarray, batch_size: int, drop_remainder: bool, epoch: int):
    """(epoch, step, indices) per batch of one epoch."""
    ds = tf.data.Dataset.from_tensor_slices(order.astype(np.int64)).batch(batch_size, drop_remainder=drop_remainder)
    return ds.enumerate().map(lambda step, idx: (tf.constant(epoch, tf.int64), step, idx))


def make_dataset(split: Split, image_size: int | None, batch_size: int, *, shuffle: bool = False, seed: int = 0,
                 epochs: int = 1, initial_epoch: int = 0, drop_remainder: bool = False, augment=None,
                 num_classes: int | None = None):
    """Batches of (float32 pixels 0..255 at image_size, labels).

    Labels are int64 class indices, or float32 one-hot rows when `num_classes` is given (for soft-label losses).
    With `shuffle`, the dataset covers epochs initial_epoch..epochs-1 back to back, each in its own seeded order;
    pass `steps_per_epoch=len(split) // batch_size` to Keras' fit with drop_remainder=True.
    `augment` is applied per batch: an `augment.Augment` (called with a per-batch seed derived from seed, epoch and
    step, so it replays exactly on resume) or any callable (images, labels) -> (images, labels).
    """
    n = len(split)
    epoch_range = range(initial_epoch, epochs) if shuffle else range(1)
    orders = [(epoch_order(n, seed, e) if shuffle else np.arange(n), e) for e in epoch_range]
    index_ds = None
    for order, epoch in orders:
        part = _epoch_batches(order, batch_size, drop_remainder, epoch)
        index_ds = part if index_ds is None else index_ds.concatenate(part)
    if index_ds is None:  # no epochs left to run
        index_ds = _epoch_batches(np.zeros(0, np.int64), batch_size, drop_remainder, 0)

    labels_t = tf.constant(split.labels)
    images = _decoded(split, image_size)
    if images is not None:
        images_t = tf.constant(images)

        def load(idx):
            return _resize(tf.gather(images_t, idx), image_size)
    else:
        paths_t = tf.constant(split.paths)

        def load(idx):
            return tf.map_fn(lambda p: _resize(_decode_file(p), image_size), tf.gather(paths_t, idx),
                             fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32))

    takes_seed = getattr(augment, "takes_seed", False)

    def batch(epoch, step, idx):
        x, y = load(idx), tf.gather(labels_t, idx)
        if num_classes is not None:
            y = tf.one_hot(y, num_classes, dtype=tf.float32)
        if augment is not None:
            if takes_seed:
                x, y = augment(x, y, tf.stack([tf.constant(seed, tf.int64), epoch * (1 << 20) + step]))
            else:
                x, y = augment(x, y)
        return x, y

    ds = index_ds.map(batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def load_images(split: Split, image_size: int | None, indices=None) -> np.ndarray:
    """A numpy batch of preprocessed images (float32, 0..255, resized), e.g. for calibration or validation."""
    sub = split.take(indices) if indices is not None else split
    if sub.paths is not None:  # not screened (a benchmark's inputs, calibration): headers checked before decoding

        require_decodable(sub.paths)
    ds = make_dataset(sub, image_size, batch_size=256)
    return np.concatenate([x.numpy() for x, _ in ds]) if len(sub) else np.zeros((0, image_size, image_size, 3))
