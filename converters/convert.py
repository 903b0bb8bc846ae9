"""Keras to TFLite. Export the SavedModel once, convert each recipe from it (half the time of from_keras_model,
byte-identical output: see ../shared/STACK.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from converters.calibration import representative_dataset
from converters.recipes import Recipe, get_recipe
from tflkit.core.errors import TflkitError
from tflkit.models.layers import hard_swish, hard_swish_op


class ConversionError(TflkitError):
    """The converter refused a model under a recipe (the reason is the converter's own first line)."""


def export_saved_model(model, out_dir, batch_size: int | None = 1, float_recipes: bool = True) -> Path:
    """SavedModel with a fixed batch (1 by default, what a phone app runs): with the batch left open, reshapes
    stay dynamic and ShuffleNet's channel shuffle alone adds ~70 SHAPE/PACK/STRIDED_SLICE ops to the .tflite.

    A model with split hard-swishes also gets its float graph beside it (`float_graph_dir`) when `float_recipes`
    will be converted from it, which `convert_saved_model` converts for the recipes whose activations are float;
    one saved with the earlier split spelling is exported with today's (`integer_graph`)."""
    import tensorflow as tf

    out_dir = Path(out_dir)
    signature = [tf.TensorSpec((batch_size, *model.input_shape[1:]), tf.float32, name=model.inputs[0].name)]
    (integer_graph(model) or model).export(str(out_dir), format="tf_saved_model", verbose=False,
                                           input_signature=signature)
    twin = float_graph(model) if float_recipes else None
    if twin is not None:
        twin.export(str(float_graph_dir(out_dir)), format="tf_saved_model", verbose=False, input_signature=signature)
    return out_dir


def float_graph_dir(saved_model_dir) -> Path:
    return Path(saved_model_dir).with_name(Path(saved_model_dir).name + ".float_activations")


def float_graph(model):
    """The model with each split hard-swish (tflkit/models/layers.py: `N_plus3`, `N_relu6`, then `N_times_x` and
    `N`, or the earlier `N_div6` and `N`) called as one `Activation("hard_swish")` named N, sharing every weight;
    None when the model has none.

    Why: the split spelling keeps int8 graphs in one XNNPACK partition (int8 HARD_SWISH is not delegated), but in
    a float file it is two or three ops where HARD_SWISH is one (fp32 1.14-1.29x slower), and the converter folds
    its final / 6 into the next convolution's weights, so those weights would no longer read back as the model's
    (tflkit/weights/tflite.py). The float function is the same."""
    import keras


    return _with_hard_swish(model, lambda x, name: hard_swish_op(x, keras, name))


def integer_graph(model):
    """A model saved with the earlier split spelling, (x / 6) * relu6(x + 3) (`N_div6`), with today's instead
    (tflkit/models/layers.hard_swish), sharing every weight; None when it has none. The earlier spelling rounds x / 6
    before the product: its int8 files lost 3.8 points of top-1 on CIFAR-10 (benchmarks/results/
    hardswish_accuracy.md), so models trained before the change convert as well as new ones."""
    import keras


    if not any(layer.name.endswith("_div6") for layer in model.layers):
        return None
    return _with_hard_swish(model, lambda x, name: hard_swish(x, keras, name))


def _with_hard_swish(model, build):
    """`model` with every split hard-swish rebuilt by `build(x, name)`, every other layer shared; None if none."""
    import keras

    names = {layer.name for layer in model.layers}
    roots = {n[: -len("_plus3")] for n in names if n.endswith("_plus3")} & names
    if not roots:
        return None
    parts = {f"{root}_{part}" for root in roots for part in ("plus3", "relu6", "times_x", "div6")}

    def call(layer, *args, **kwargs):
        if layer.name not in parts and layer.name not in roots:
            return layer(*args, **kwargs)
        x = args[0][-1] if isinstance(args[0], (list, tuple)) else args[0]  # every part passes x through
        return build(x, layer.name) if layer.name in roots else x

    return keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call)


def convert_saved_model(saved_model_dir, recipe: Recipe | str,
                        representative_images: np.ndarray | None = None) -> bytes:
    import tensorflow as tf

    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if recipe.needs_calibration and (representative_images is None or len(representative_images) == 0):
        raise ConversionError(f"recipe {recipe.name} needs representative images for calibration")
    if recipe.activations == "float32" and float_graph_dir(saved_model_dir).is_dir():
        saved_model_dir = float_graph_dir(saved_model_dir)  # one HARD_SWISH op per hard-swish (float_graph)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    rep = representative_dataset(representative_images) if representative_images is not None else None
    recipe.configure(converter, rep)
    try:
        return converter.convert()
    except (ValueError, RuntimeError, tf.errors.OpError) as exc:  # the converter's documented failure types
        raise ConversionError(f"{recipe.name}: {_first_line(exc)}") from exc


def convert_model(model, recipe: Recipe | str, representative_images: np.ndarray | None = None) -> bytes:
    """One model, one recipe: export to a temporary SavedModel and convert."""
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    with tempfile.TemporaryDirectory(prefix="tflkit-export-") as tmp:
        export_saved_model(model, Path(tmp) / "saved_model", float_recipes=recipe.activations == "float32")
        return convert_saved_model(Path(tmp) / "saved_model", recipe, representative_images)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    # The converter's MLIR errors lead with a location; the line naming the failing op is the useful one.
    for line in lines:
        if "error:" in line:
            return line[line.index("error:"):][:300]
    return (lines[0] if lines else type(exc).__name__)[:300]
