"""Keras to TFLite. Export the SavedModel once, convert each recipe from it (half the time of from_keras_model,
byte-identical output: see ../shared/STACK.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from converters.calibration import representative_dataset
from converters.fuse import fuse_hard_swish
from converters.recipes import Recipe, get_recipe
from tflkit.errors import TflkitError


class ConversionError(TflkitError):
    """The converter refused a model under a recipe (the reason is the converter's own first line)."""


def export_saved_model(model, out_dir, batch_size: int | None = 1) -> Path:
    """SavedModel with a fixed batch (1 by default, what a phone app runs): with the batch left open, reshapes
    stay dynamic and ShuffleNet's channel shuffle alone adds ~70 SHAPE/PACK/STRIDED_SLICE ops to the .tflite."""
    import tensorflow as tf

    out_dir = Path(out_dir)
    signature = [tf.TensorSpec((batch_size, *model.input_shape[1:]), tf.float32, name=model.inputs[0].name)]
    model.export(str(out_dir), format="tf_saved_model", verbose=False, input_signature=signature)
    return out_dir


def convert_saved_model(saved_model_dir, recipe: Recipe | str,
                        representative_images: np.ndarray | None = None) -> bytes:
    import tensorflow as tf

    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if recipe.needs_calibration and (representative_images is None or len(representative_images) == 0):
        raise ConversionError(f"recipe {recipe.name} needs representative images for calibration")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    rep = representative_dataset(representative_images) if representative_images is not None else None
    recipe.configure(converter, rep)
    try:
        data = converter.convert()
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:  # the converter's documented failure types
        raise ConversionError(f"{recipe.name}: {_first_line(exc)}") from exc
    if recipe.activations == "float32":  # one HARD_SWISH op where the int8-friendly spelling made three
        data, _ = fuse_hard_swish(data)
    return data


def convert_model(model, recipe: Recipe | str, representative_images: np.ndarray | None = None) -> bytes:
    """One model, one recipe: export to a temporary SavedModel and convert."""
    with tempfile.TemporaryDirectory(prefix="tflkit-export-") as tmp:
        export_saved_model(model, Path(tmp) / "saved_model")
        return convert_saved_model(Path(tmp) / "saved_model", recipe, representative_images)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # The converter's MLIR errors lead with a location; the line naming the failing op is the useful one.
    for line in lines:
        if "error:" in line:
            return line[line.index("error:"):][:300]
    return (lines[0] if lines else type(exc).__name__)[:300]
