"""Augmentation presets, applied to whole batches of float32 pixels (0..255) inside tf.data.

  none         nothing
  basic        pad-and-crop (pad = size/8, zeros) and horizontal flip
  randaugment  basic, then Keras' RandAugment (2 ops, magnitude 0.5)
  mixup        basic, then MixUp (alpha 0.2): needs one-hot labels
  cutmix       basic, then CutMix (alpha 1.0): needs one-hot labels
  paper        the paper's policy: basic, RandAugment (the AutoAugment-style policy), then per batch MixUp or
               CutMix with equal odds (timm's mixup_switch_prob 0.5): needs one-hot labels

basic, mixup and cutmix use stateless random ops seeded per batch from (seed, epoch, step), so a resumed run
replays them exactly. RandAugment is Keras 3's layer (seeded, but its generator state lives in the process, so a
resumed run draws different operations from the point of the restart).
"""

from __future__ import annotations

from tflkit.core.errors import unknown_choice
from tflkit.core.tfenv import quiet_tensorflow

tf = quiet_tensorflow()

PRESETS = ("none", "basic", "randaugment", "mixup", "cutmix", "paper")
SOFT_LABEL_PRESETS = ("mixup", "cutmix", "paper")


def _seeds(seed, count: int):
    split = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=count)
    return [split[i] for i in range(count)]


def pad_crop_flip(images, seed):
    s_crop, s_flip = _seeds(seed, 2)
    batch, size = tf.shape(images)[0], images.shape[1]
    pad = max(1, size // 8)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offsets = tf.random.stateless_uniform([batch, 2], s_crop, 0, 2 * pad + 1, dtype=tf.int32)
    # crop_and_resize on integer-aligned boxes samples exact pixels: a per-image crop in one op.
    full = tf.cast(size + 2 * pad - 1, tf.float32)
    start = tf.cast(offsets, tf.float32)
    boxes = tf.concat([start, start + (size - 1)], axis=1) / full
    boxes = tf.gather(boxes, [0, 1, 2, 3], axis=1)  # (y1, x1, y2, x2)
    crops = tf.image.crop_and_resize(padded, boxes, tf.range(batch), (size, size), method="nearest")
    flip = tf.random.stateless_uniform([batch, 1, 1, 1], s_flip) < 0.5
    return tf.where(flip, tf.reverse(crops, axis=[2]), crops)


def _beta(shape, alpha: float, seed):
    s1, s2 = _seeds(seed, 2)
    a = tf.random.stateless_gamma(shape, s1, alpha)
    b = tf.random.stateless_gamma(shape, s2, alpha)
    return a / (a + b)


def _partner(batch, seed):
    return tf.argsort(tf.random.stateless_uniform([batch], seed))


def mixup(images, labels, seed, alpha: float = 0.2):
    s_lam, s_perm = _seeds(seed, 2)
    batch = tf.shape(images)[0]
    lam = _beta([batch], alpha, s_lam)
    perm = _partner(batch, s_perm)
    mixed = lam[:, None, None, None] * images + (1 - lam[:, None, None, None]) * tf.gather(images, perm)
    return mixed, lam[:, None] * labels + (1 - lam[:, None]) * tf.gather(labels, perm)


def cutmix(images, labels, seed, alpha: float = 1.0):
    s_lam, s_perm, s_pos = _seeds(seed, 3)
    batch, size = tf.shape(images)[0], images.shape[1]
    lam = _beta([batch], alpha, s_lam)
    perm = _partner(batch, s_perm)
    cut = tf.sqrt(1.0 - lam) * size
    centre = tf.random.stateless_uniform([batch, 2], s_pos, 0, size)
    lo = tf.clip_by_value(centre - cut[:, None] / 2, 0, size)
    hi = tf.clip_by_value(centre + cut[:, None] / 2, 0, size)
    grid = tf.range(size, dtype=tf.float32) + 0.5
    in_y = (grid[None, :] >= lo[:, :1]) & (grid[None, :] < hi[:, :1])
    in_x = (grid[None, :] >= lo[:, 1:]) & (grid[None, :] < hi[:, 1:])
    box = tf.cast(in_y[:, :, None] & in_x[:, None, :], tf.float32)[..., None]  # (B, H, W, 1)
    mixed = images * (1 - box) + tf.gather(images, perm) * box
    kept = 1.0 - tf.reduce_mean(box, axis=[1, 2, 3])  # the actual share of each image left, after clipping
    return mixed, kept[:, None] * labels + (1 - kept[:, None]) * tf.gather(labels, perm)


class Augment:
    """A preset as a per-batch function (images, labels, seed) -> (images, labels) for `make_dataset`."""

    takes_seed = True

    def __init__(self, preset: str, seed: int = 0):
        if preset not in PRESETS:
            raise unknown_choice("augmentation preset", preset, PRESETS)
        self.preset = preset
        self._randaugment = None
        if preset in ("randaugment", "paper"):
            import keras

            self._randaugment = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.5, seed=seed)

    @property
    def soft_labels(self) -> bool:
        return self.preset in SOFT_LABEL_PRESETS

    def __call__(self, images, labels, seed):
        if self.preset == "none":
            return images, labels
        s_basic, s_extra = _seeds(seed, 2)
        images = pad_crop_flip(images, s_basic)
        if self._randaugment is not None:
            images = tf.cast(self._randaugment(images, training=True), tf.float32)
        if self.preset == "paper":
            s_switch, s_mix = _seeds(s_extra, 2)
            use_cutmix = tf.random.stateless_uniform([], s_switch) < 0.5
            images, labels = tf.cond(use_cutmix, lambda: cutmix(images, labels, s_mix),
                                     lambda: mixup(images, labels, s_mix))
        elif self.preset == "mixup":
            images, labels = mixup(images, labels, s_extra)
        elif self.preset == "cutmix":
            images, labels = cutmix(images, labels, s_extra)
        return images, labels


def make_augment(preset: str | None, seed: int = 0) -> Augment | None:
    return None if preset in (None, "none") else Augment(preset, seed)
