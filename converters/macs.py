"""MACs of a Keras model as deployed: converted to fp32 TFLite, then counted by tflkit.tflite.macs."""

from __future__ import annotations

from tflkit.tflite.macs import MacCount, count_macs


def count_keras_macs(model) -> MacCount:
    """MACs of a Keras model (Keras 3 or tf_keras) as deployed: converted to fp32 TFLite in a temp dir, counted.

    Not `from_concrete_functions([cf], model)`, which silently drops the weights.
    """
    import os
    import tempfile

    import keras
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="tflkit-macs-") as tmp:
        if isinstance(model, keras.Model):
            # What from_keras_model does for Keras 3, without printing the whole signature to stdout.
            model.export(os.path.join(tmp, "saved_model"), format="tf_saved_model", verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(os.path.join(tmp, "saved_model"))
        else:
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(converter.convert())
        return count_macs(path)
