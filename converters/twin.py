"""The tf_keras twin of a Keras 3 registry model, for tfmot (QAT and pruning), and a short fine-tune of it.

tfmot 0.8.1 accepts only tf_keras models (../shared/STACK.md). The twin is built by the same registry builder with
`keras_module=tf_keras`, so the architecture is never forked, and the trained weights are copied layer by layer
(the builders give both flavours the same layer names).

Importing tfmot sets TF_USE_LEGACY_KERAS=1 for the whole process, after which `tf.keras` would mean tf_keras for any
code that runs later. `import_tfmot` restores the variable at once, so Keras 3 code afterwards behaves as before
(tests/test_quant_tfmot.py checks a Keras 3 export and conversion after a QAT step in the same process).
"""

from __future__ import annotations

import os

from tflkit.core.errors import TflkitError
from tflkit.data.pipeline import make_dataset
from tflkit.models import create_model


class TfmotError(TflkitError):
    """tfmot or the twin refused a model; the export turns it into a failed row, not a crash."""


def import_tfmot():
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    import tensorflow_model_optimization as tfmot

    if before is None:
        os.environ.pop("TF_USE_LEGACY_KERAS", None)
    else:
        os.environ["TF_USE_LEGACY_KERAS"] = before
    return tfmot


_HARD_LAYER = None


def hard_activation_layer():
    """A named tf_keras layer for hard-swish / hard-sigmoid. In tf_keras the builders spell these as Python lambdas
    inside `Activation` (tf_keras' own hard_sigmoid is not PyTorch's), which tfmot cannot clone; this layer is
    serializable and carries its kind."""
    global _HARD_LAYER
    if _HARD_LAYER is not None:
        return _HARD_LAYER
    import tensorflow as tf
    import tf_keras

    class HardActivation(tf_keras.layers.Layer):
        def __init__(self, kind="hard_swish", **kwargs):
            super().__init__(**kwargs)
            self.kind = kind

        def call(self, x):
            gate = tf.nn.relu6(x + 3.0) / 6.0
            return x * gate if self.kind == "hard_swish" else gate

        def get_config(self):
            return {**super().get_config(), "kind": self.kind}

    _HARD_LAYER = HardActivation
    return HardActivation


def _hard_kind(layer) -> str | None:
    """hard_swish / hard_sigmoid for an `Activation` holding a lambda, else None. Probed by value (0 -> 0 or 0.5),
    so it does not depend on how the builder names its layers."""
    fn = getattr(layer, "activation", None)
    if type(layer).__name__ != "Activation" or getattr(fn, "__name__", "") != "<lambda>":
        return None
    import tensorflow as tf

    at_zero, at_ten = (float(fn(tf.constant(v))) for v in (0.0, 10.0))
    if abs(at_zero) < 1e-6 and abs(at_ten - 10.0) < 1e-6:
        return "hard_swish"
    if abs(at_zero - 0.5) < 1e-6 and abs(at_ten - 1.0) < 1e-6:
        return "hard_sigmoid"
    raise TfmotError(f"layer {layer.name}: a lambda activation that is neither hard-swish nor hard-sigmoid")


def tf_keras_twin(model, name: str, num_classes: int, image_size: int, small_input: bool):
    """The tf_keras model with `model`'s weights, lambda activations replaced by `HardActivation`."""
    import tf_keras


    twin = create_model(name, num_classes=num_classes, image_size=image_size, small_input=small_input,
                        keras_module=tf_keras)
    hard = hard_activation_layer()

    def clone(layer):
        kind = _hard_kind(layer)
        if kind is not None:
            return hard(kind=kind, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    twin = tf_keras.models.clone_model(twin, clone_function=clone)
    source = {layer.name: layer for layer in model.layers}
    twin_names = {layer.name for layer in twin.layers}
    if set(source) != twin_names:
        diff = sorted(set(source) ^ twin_names)[:5]
        raise TfmotError(f"{name}: the tf_keras twin's layers differ from the trained model's ({', '.join(diff)})")
    for layer in twin.layers:
        weights = source[layer.name].get_weights()
        if weights:
            layer.set_weights(weights)
    return twin


def custom_objects() -> dict:
    return {"HardActivation": hard_activation_layer()}


def fine_tune(model, source, image_size: int, steps: int, batch_size: int = 64, lr: float = 1e-4, seed: int = 0,
              callbacks=(), log=print) -> float:
    """A short fit on the training split (same input pipeline as training); returns the last training loss."""
    import tf_keras


    train = source.split("train")
    per_epoch = max(1, len(train) // batch_size)
    epochs = max(1, -(-steps // per_epoch))
    ds = make_dataset(train, image_size, batch_size, shuffle=True, seed=seed + 17, epochs=epochs,
                      drop_remainder=len(train) >= batch_size)
    model.compile(optimizer=tf_keras.optimizers.Adam(lr),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(ds.take(steps), epochs=1, steps_per_epoch=steps, callbacks=list(callbacks), verbose=0)
    loss = float(history.history["loss"][-1])
    log(f"finetune {steps} steps  batch {batch_size}  lr {lr:g}  loss {loss:.3f}")
    return loss


def save_for_conversion(model, out_dir) -> str:
    """A SavedModel of a tf_keras model, convertible by `convert_saved_model` like the Keras 3 export."""
    import tensorflow as tf

    out_dir = str(out_dir)
    tf.saved_model.save(model, out_dir)
    return out_dir
