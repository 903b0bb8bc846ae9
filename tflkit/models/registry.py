"""The model registry: one small entry point per variant, one typed spec per model (timm style).

An entry point is a function `fn(*, num_classes, image_size, small_input, keras) -> Model` decorated with
`@register_model(...)`; the decorator records what a user needs to deploy it (input size, pixel contract) and what
it must match (the reference parameter count and MACs).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from tflkit.core.config import from_dict
from tflkit.core.errors import UsageError, unknown_choice
from tflkit.core.trainconfig import TrainConfig

# Every model takes raw 0..255 RGB pixels and normalizes as its first layer, so a deployed .tflite eats camera
# pixels directly. These are the ImageNet statistics in that 0..255 scale.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class Normalization:
    """What a model's first layer does to raw 0..255 RGB pixels: (x - mean) / std per channel, in pixel units."""

    name: str
    mean: tuple
    std: tuple


IMAGENET = Normalization("imagenet", IMAGENET_MEAN, IMAGENET_STD)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    builder: Callable
    default_image_size: int = 224
    default_num_classes: int = 1000
    normalization: Normalization = IMAGENET  # what the built model's first layer does
    # What loading the published ImageNet weights (--pretrained imagenet) sets that layer to, when those weights
    # were trained with other statistics (SqueezeNet 1.1's Caffe weights: mean only, no scaling).
    pretrained_normalization: Normalization | None = None
    reference: str = "torchvision"  # whose layer-for-layer definition this matches
    reference_params: int | None = None  # at default_image_size with default_num_classes
    reference_macs: int | None = None
    small_input_note: str = ""  # what --small-input changes, for the docs and `tflkit models`
    # Training settings this architecture needs to learn in a short run (as timm keeps a per-model config): laid
    # over tflkit's TrainConfig defaults, under any setting a user gives (tflkit.models.train_config).
    train_defaults: dict = field(default_factory=dict)
    test_variant: bool = False  # tiny shapes for fast tests, not a real architecture

    @property
    def pixel_range(self) -> tuple:
        return (0.0, 255.0)

    @property
    def mean(self) -> tuple:
        return self.normalization.mean

    @property
    def std(self) -> tuple:
        return self.normalization.std

    def known_normalizations(self) -> list[Normalization]:
        return [self.normalization] + ([self.pretrained_normalization] if self.pretrained_normalization else [])

    @property
    def pretrained_source(self):
        """The published ImageNet weights (URL, checksum, format) behind --pretrained imagenet, or None."""
        from tflkit.models.pretrained import IMAGENET_SOURCES  # a cycle: its table names the registry's models

        return IMAGENET_SOURCES.get(self.name)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(family: str, **spec_fields):
    """Decorator that registers an entry point under its function name."""

    def wrap(fn):
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelSpec(name=name, family=family, builder=fn, **spec_fields)
        return fn

    return wrap


def list_models(pattern: str = "*", include_test: bool = False) -> list[str]:
    _load_entry_points()
    return sorted(
        n for n, s in _REGISTRY.items() if fnmatch.fnmatch(n, pattern) and (include_test or not s.test_variant)
    )


def get_spec(name: str) -> ModelSpec:
    _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        # test variants still resolve by name, but the message lists only the real architectures
        raise unknown_choice("model", name, list_models()) from None


def create_model(
    name: str,
    num_classes: int | None = None,
    image_size: int | None = None,
    small_input: bool = False,
    keras_module=None,
):
    """Build a registered model. `keras_module` picks the Keras flavour: Keras 3 (default) or `tf_keras` for tfmot."""
    spec = get_spec(name)
    if keras_module is None:
        import keras as keras_module
    image_size = image_size or spec.default_image_size
    if image_size < 32:
        raise UsageError(f"input size {image_size} is too small; models take 32x32 and up")
    return spec.builder(
        num_classes=num_classes or spec.default_num_classes,
        image_size=image_size,
        small_input=small_input,
        keras=keras_module,
    )


def count_params(model) -> int:
    """Learnable parameters, as torchvision counts them (BatchNorm moving statistics are buffers, not parameters)."""
    import numpy as np

    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _load_entry_points() -> None:
    from tflkit.models import (  # a cycle: the family modules import this one, and importing them registers them
        families,  # noqa: F401
        mobilenetv3_tf,  # noqa: F401  (TF-slim / keras.applications layout)
    )


def train_config(model: str, source: str = "settings", **settings) -> TrainConfig:
    """The config of a run of `model`: tflkit's defaults, then the architecture's training defaults
    (ModelSpec.train_defaults, e.g. SqueezeNet's lower lr and warm-up), then `settings`, which always win.
    What `tflkit train`, a study's cells, a search and the demo all build their runs with."""
    return from_dict(TrainConfig, {**get_spec(model).train_defaults, **settings, "model": model}, source=source)
