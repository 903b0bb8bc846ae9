"""Magnitude pruning with tfmot to a constant 50% sparsity, then `strip_pruning`; full-integer conversion follows.

`ConstantSparsity(0.5, begin_step=0, frequency=1)`: the mask is applied from the first step and updated every
step, so even a short fine-tune ends at exactly 50% (the default frequency=100 left 0% after a few steps, see
../shared/STACK.md). Only Conv2D and Dense kernels are pruned: depthwise kernels are tiny and sensitive, and the
frozen normalization layer (a depthwise conv holding the mean and std) must keep all its weights.
"""

from __future__ import annotations

from converters.qat import progress_callback
from converters.recipes import FineTuneSettings
from converters.twin import TfmotError, fine_tune, import_tfmot, tf_keras_twin
from tflkit.models.layers import NORMALIZE_LAYER

SPARSITY = 0.5


def _prunable(layer) -> bool:
    return type(layer).__name__ in ("Conv2D", "Dense") and layer.name != NORMALIZE_LAYER


def prune(twin, sparsity: float = SPARSITY):
    tfmot = import_tfmot()
    import tf_keras

    schedule = tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=1)

    def wrap(layer):
        if _prunable(layer):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    try:
        return tf_keras.models.clone_model(twin, clone_function=wrap)
    except (ValueError, TypeError) as exc:
        raise TfmotError(f"tfmot prune_low_magnitude: {str(exc).splitlines()[0][:300]}") from exc


def pruned_model(model, name: str, source, image_size: int, small_input: bool, settings: FineTuneSettings = None,
                 seed: int = 0, sparsity: float = SPARSITY, log=print):
    """Keras 3 trained model -> fine-tuned, stripped tf_keras model with `sparsity` zeros in Conv2D/Dense kernels."""
    tfmot = import_tfmot()
    settings = (settings or FineTuneSettings()).resolved(len(source.split("train")))
    twin = tf_keras_twin(model, name, source.num_classes, image_size, small_input)
    pmodel = prune(twin, sparsity)
    fine_tune(pmodel, source, image_size, settings.steps, settings.batch_size, settings.lr, seed=seed,
              callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), progress_callback("prune50", settings.steps, log)],
              log=log)
    return tfmot.sparsity.keras.strip_pruning(pmodel)
