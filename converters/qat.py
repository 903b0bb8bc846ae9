"""Quantization-aware training with tfmot: annotate, fine-tune briefly, save for full-integer conversion.

Layers tfmot's default 8-bit registry knows are annotated with its own configs (which also fold BatchNormalization
into the preceding convolution, as the converter will). Hard-swish / hard-sigmoid, which tfmot has no config for,
get an output-only fake-quant (`_OutputQuantizeConfig`), so their int8 output range is learnt during the fine-tune
too. Anything else unknown is left float in the QAT graph and calibrated by the converter like post-training
quantization.
"""

from __future__ import annotations

import contextlib
import functools
import time

from converters.recipes import FineTuneSettings
from converters.twin import TfmotError, custom_objects, fine_tune, import_tfmot, tf_keras_twin


def progress_callback(kind: str, steps: int, log, every_seconds: float = 10.0):
    """A tf_keras callback logging one line every `every_seconds` of a fine-tune (and at its end)."""
    import tf_keras

    class Progress(tf_keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = self.last = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            if now - self.last >= every_seconds or batch + 1 == steps:
                self.last = now
                loss = (logs or {}).get("loss")
                loss_text = f"  loss {float(loss):.3f}" if loss is not None else ""
                log(f"finetune {kind:<8} step {batch + 1}/{steps}{loss_text}  {now - self.start:6.1f}s")

    return Progress()


def _output_quantize_config(tfmot):
    base = tfmot.quantization.keras.QuantizeConfig
    quantizers = tfmot.quantization.keras.quantizers

    class OutputQuantizeConfig(base):
        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                      narrow_range=False)]

        def get_config(self):
            return {}

    return OutputQuantizeConfig


def quantize_aware(twin):
    """The tfmot QAT model of a tf_keras twin (not yet trained)."""
    tfmot = import_tfmot()
    import tf_keras
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    qk = tfmot.quantization.keras
    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    hard = custom_objects()["HardActivation"]
    output_config = _output_quantize_config(tfmot)

    def annotate(layer):
        if isinstance(layer, hard):
            return qk.quantize_annotate_layer(layer, quantize_config=output_config())
        if registry.supports(layer):
            return qk.quantize_annotate_layer(layer)
        return layer

    annotated = tf_keras.models.clone_model(twin, clone_function=annotate)
    scope = {**custom_objects(), "OutputQuantizeConfig": output_config}
    try:
        with qk.quantize_scope(scope):
            return qk.quantize_apply(annotated)
    except (ValueError, TypeError, RuntimeError) as exc:  # tfmot's refusals of a layer or pattern
        raise TfmotError(f"tfmot quantize_apply: {str(exc).splitlines()[0][:300]}") from exc


@contextlib.contextmanager
def range_ema_decay(decay: float):
    """Trace tfmot's activation quantizers with `decay` instead of their hard-coded 0.999 (see FineTuneSettings).
    tfmot offers no parameter for it; `MovingAverageQuantizer.__call__` looks `quant_ops.MovingAvgQuantize` up at
    trace time, so wrapping it while `fit` traces its train step is enough, and it is restored afterwards."""
    from tensorflow_model_optimization.python.core.quantization.keras import quantizers

    original = quantizers.quant_ops.MovingAvgQuantize
    patched = functools.wraps(original)(lambda *a, **kw: original(*a, **{**kw, "ema_decay": decay}))
    quantizers.quant_ops.MovingAvgQuantize = patched
    try:
        yield
    finally:
        quantizers.quant_ops.MovingAvgQuantize = original


def qat_model(model, name: str, source, image_size: int, small_input: bool, settings: FineTuneSettings = None,
              seed: int = 0, log=print):
    """Keras 3 trained model -> fine-tuned tf_keras QAT model, ready for `save_for_conversion`."""
    settings = (settings or FineTuneSettings()).resolved(len(source.split("train")))
    twin = tf_keras_twin(model, name, source.num_classes, image_size, small_input)
    qmodel = quantize_aware(twin)
    with range_ema_decay(settings.range_ema_decay):
        fine_tune(qmodel, source, image_size, settings.steps, settings.batch_size, settings.lr, seed=seed,
                  callbacks=[progress_callback("qat", settings.steps, log)], log=log)
    return qmodel


def float_fine_tuned(model, name: str, source, image_size: int, small_input: bool,
                     settings: FineTuneSettings = None, seed: int = 0, log=print):
    """Keras 3 trained model -> its plain tf_keras twin fine-tuned exactly as `qat_model` and `pruned_model` fine-tune
    theirs (same `fine_tune`, steps, batch size, lr, data order and seed), with no fake quantization and no pruning.

    The reference of a recipe with extra training: a QAT or pruned file compared with the run's fp32 file shows the
    fine-tune's effect and quantization's together (a short run's QAT file "gained" 20 points); compared with this
    model it shows quantization's (or pruning's) own."""
    settings = (settings or FineTuneSettings()).resolved(len(source.split("train")))
    twin = tf_keras_twin(model, name, source.num_classes, image_size, small_input)
    fine_tune(twin, source, image_size, settings.steps, settings.batch_size, settings.lr, seed=seed,
              callbacks=[progress_callback("fp32", settings.steps, log)], log=log)
    return twin
