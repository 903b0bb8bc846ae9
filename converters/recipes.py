"""Quantization recipes, named by what they do (ai-edge-quantizer style) and driven from one table.

`w` is the weight type, `a` the activation type; `static` recipes calibrate activation ranges on representative
images, `dynamic` ones quantize activations at run time. Adding a recipe is one row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from tflkit.core.errors import UsageError, unknown_choice


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    weights: str  # float32, float16, int8
    activations: str  # float32, int8, int16
    io_dtype: str  # the input/output tensor type a caller feeds and reads
    needs_calibration: bool
    configure: Callable  # (converter, representative_dataset) -> None
    # A training step before conversion, on the tf_keras twin with tfmot: None, "qat" or "prune50".
    prepare: str | None = None

    @property
    def integer_only(self) -> bool:
        return self.activations in ("int8", "int16")


def _fp32(converter, _rep):
    pass


def _fp16(converter, _rep):
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def _dynamic(converter, _rep):
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def _static_int8(converter, rep):
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = rep
    # Integer-only kernels: conversion fails loudly instead of silently leaving float ops in the graph.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    _per_tensor_dense(converter)


def _per_tensor_dense(converter):
    # TFLite's int8 spec quantizes FULLY_CONNECTED weights per tensor (conv and depthwise per channel); TF 2.16+
    # defaults to per-channel, which older runtimes and NNAPI drivers on phones reject, and whose per-channel
    # scales and int64 zero points (12 bytes a channel, twice with the bias) weigh on small models.
    converter._experimental_disable_per_channel_quantization_for_dense_layers = True


def _static_int8_float_io(converter, rep):
    # Integer kernels inside, QUANTIZE/DEQUANTIZE at the boundary: a drop-in for a float app.
    import tensorflow as tf

    _static_int8(converter, rep)
    converter.inference_input_type = tf.float32
    converter.inference_output_type = tf.float32


def _static_int16x8(converter, rep):
    # 16x8: int16 activations keep ~256x finer steps than int8 where ranges are wide; weights stay int8. Float I/O.
    import tensorflow as tf

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = rep
    converter.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("fp32", "float32 weights and activations (the baseline)", "float32", "float32", "float32", False,
               _fp32),
        Recipe("fp16", "float16 weights, float32 compute", "float16", "float32", "float32", False, _fp16),
        Recipe("dynamic_wi8_afp32", "int8 weights, float activations quantized at run time", "int8", "float32",
               "float32", False, _dynamic),
        Recipe("static_wi8_ai8", "full integer: int8 weights and activations, int8 input and output, calibrated",
               "int8", "int8", "int8", True, _static_int8),
        Recipe("static_wi8_ai8_fio", "full integer inside, float32 input and output (quantize/dequantize at the ends)",
               "int8", "int8", "float32", True, _static_int8_float_io),
        Recipe("static_wi8_ai16", "int8 weights, int16 activations (16x8), float32 input and output, calibrated",
               "int8", "int16", "float32", True, _static_int16x8),
        Recipe("qat_wi8_ai8", "quantization-aware fine-tune (tfmot), then full integer with int8 input and output",
               "int8", "int8", "int8", True, _static_int8, prepare="qat"),
        Recipe("prune50_static_wi8_ai8", "magnitude pruning to 50% sparse Conv2D/Dense kernels (tfmot), then full "
               "integer with int8 input and output", "int8", "int8", "int8", True, _static_int8, prepare="prune50"),
    )
}

DEFAULT_RECIPES = ("fp32", "fp16", "dynamic_wi8_afp32", "static_wi8_ai8")


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise unknown_choice("recipe", name, RECIPES) from None


def resolve_recipes(names) -> list[Recipe]:
    names = list(names)
    if names == ["all"]:
        return list(RECIPES.values())
    return [get_recipe(n) for n in names]


MAX_AUTO_STEPS = 300  # the default fine-tune: one epoch of the run's own training images, at most this many steps


@dataclass(frozen=True)
class FineTuneSettings:
    steps: int | None = None  # None: one epoch of the run's training subset, capped at MAX_AUTO_STEPS
    batch_size: int = 64
    lr: float = 1e-4
    # tfmot's activation ranges start at [-6, 6] and follow an EMA with decay 0.999: after 300 steps they are only a
    # quarter of the way to the real ranges (clipping wide layers, wasting resolution on narrow ones), and QAT ends
    # worse than post-training calibration. A short fine-tune needs a faster EMA (0.99: converged in ~300 steps).
    range_ema_decay: float = 0.99

    def resolved(self, train_images: int) -> FineTuneSettings:
        """With `steps` fixed: one pass over `train_images` (the run's own subset), capped. A fixed length whatever
        the run's budget made a small run's QAT file train several times longer than its float model did."""
        if self.steps is not None:
            if self.steps < 1:
                raise UsageError(f"fine-tune steps must be at least 1, got {self.steps}")
            return self
        return replace(self, steps=max(1, min(MAX_AUTO_STEPS, -(-train_images // self.batch_size))))
