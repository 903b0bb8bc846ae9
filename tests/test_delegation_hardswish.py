"""Issue 14: hard-swish built so that int8 files run in one XNNPACK partition, with the same float function.

The old activation (one `Activation("hard_swish")` layer) became a HARD_SWISH op, which XNNPACK does not take in
int8 (each one cut the graph) and 16x8 quantization refuses. The registry's hard-swish is now (x / 6) *
(relu6(x + 3) * x) / 6 from plain layers, a spelling the converter does not fuse back into HARD_SWISH; float
recipes convert a twin of the model with one hard-swish layer each (converters.convert.float_graph), whose
HARD_SWISH XNNPACK runs as one op.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tflkit.models import create_model, list_models  # noqa: E402
from tflkit.models.layers import hard_swish_op  # noqa: E402

TEST_MODELS = list_models("test_*", include_test=True)


def _with_batchnorm_statistics(model, images):
    """Moving statistics from one batch, so activations have trained-like ranges (a freshly initialised model's
    vanish, and int8 scales that extreme are refused by XNNPACK whatever the activation)."""
    norms = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    return model


def _pixels(n, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype(np.float32)


def test_float_function_and_weights_unchanged(monkeypatch):
    import tflkit.models.layers as layers

    new = _with_batchnorm_statistics(create_model("test_mobilenetv3"), _pixels(16))
    monkeypatch.setattr(layers, "hard_swish", hard_swish_op)
    old = create_model("test_mobilenetv3")
    # Same weighted layers under the same names: only weightless layers were added.
    assert [w.shape for w in new.weights] == [w.shape for w in old.weights]
    weights = {layer.name: layer.get_weights() for layer in new.layers}
    for layer in old.layers:
        if weights.get(layer.name):
            layer.set_weights(weights[layer.name])
    x = _pixels(8, seed=1)
    a, b = new.predict_on_batch(x), old.predict_on_batch(x)
    assert np.abs(b).max() > 0.1  # logits that mean something
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
    names = {layer.name for layer in new.layers}
    assert "head_hard_swish" in names and "stem_hard_swish" in names  # the activation keeps its layer name


@pytest.mark.parametrize("name", TEST_MODELS)
def test_int8_runs_in_one_xnnpack_partition(name, tmp_path):
    from converters.convert import convert_model
    from tflkit.tflite.inspect import op_counts
    from tflkit.tflite.runtime import delegation_of, load_interpreter

    images = _pixels(16)
    model = _with_batchnorm_statistics(create_model(name), images)
    path = tmp_path / f"{name}.static_wi8_ai8.tflite"
    path.write_bytes(convert_model(model, "static_wi8_ai8", images[:8]))
    assert "HARD_SWISH" not in op_counts(path)
    d = delegation_of(load_interpreter(path, threads=1))
    assert (d.partitions, d.delegated_nodes, d.reference_ops) == (1, d.total_nodes, {}), d


def test_static_wi8_ai16_converts_and_runs_for_mobilenetv3(tmp_path):
    from converters.convert import convert_model
    from tflkit.tflite.model import TFLiteClassifier

    images = _pixels(16)
    model = _with_batchnorm_statistics(create_model("test_mobilenetv3"), images)
    path = tmp_path / "test_mobilenetv3.static_wi8_ai16.tflite"
    path.write_bytes(convert_model(model, "static_wi8_ai16", images[:8]))
    logits = TFLiteClassifier(path).predict(images[:4])
    expected = model.predict_on_batch(images[:4])
    assert np.isfinite(logits).all()
    assert (logits.argmax(1) == expected.argmax(1)).mean() >= 0.75  # 16-bit activations track the float model


def _hard_swish_count(model) -> int:
    return sum(1 for layer in model.layers if layer.name.endswith("hard_swish") and
               type(layer).__name__ in ("Rescaling", "Multiply"))


def _split_hard_swish_before(x, keras, name):
    """The int8-friendly spelling of the first change, (x / 6) * relu6(x + 3): models saved then carry it."""
    shifted = keras.layers.Rescaling(1.0, offset=3.0, name=f"{name}_plus3")(x)
    gate = keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(shifted)
    scaled = keras.layers.Rescaling(1.0 / 6.0, name=f"{name}_div6")(x)
    return keras.layers.Multiply(name=name)([scaled, gate])


@pytest.mark.parametrize("recipe, spelling", [
    ("fp32", "today"), *(pytest.param(*p, marks=pytest.mark.integration)
                         for p in [("fp16", "today"), ("dynamic_wi8_afp32", "today"), ("fp32", "split_before")])])
def test_float_files_get_one_hard_swish_op_each(recipe, spelling, tmp_path, monkeypatch):
    """Float recipes convert the model's float graph (converters.convert.float_graph): one HARD_SWISH op per
    hard-swish (one XNNPACK op instead of two or three), with the same outputs as the Keras model; models saved with
    the earlier split spelling get the same."""
    import keras

    import tflkit.models.layers as layers
    from converters.convert import convert_model
    from tflkit.tflite.inspect import op_counts
    from tflkit.tflite.model import TFLiteClassifier

    if spelling == "split_before":
        monkeypatch.setattr(layers, "hard_swish", _split_hard_swish_before)
    keras.utils.set_random_seed(0)  # the same weights every run: the tolerance below is checked on them
    images = _pixels(16)
    model = _with_batchnorm_statistics(create_model("test_mobilenetv3"), images)
    path = tmp_path / f"test_mobilenetv3.{recipe}.tflite"
    path.write_bytes(convert_model(model, recipe))
    assert op_counts(path).get("HARD_SWISH") == _hard_swish_count(model) > 0
    expected = model.predict_on_batch(images[:4])
    np.testing.assert_allclose(TFLiteClassifier(path).predict(images[:4]), expected,
                               rtol=0, atol=(5e-2 if recipe != "fp32" else 1e-4) * np.abs(expected).max())


def test_the_float_graph_shares_the_weights_and_computes_the_same():
    from converters.convert import float_graph

    model = _with_batchnorm_statistics(create_model("test_mobilenetv3"), _pixels(16))
    twin = float_graph(model)
    assert {id(w) for w in twin.weights} == {id(w) for w in model.weights}
    assert sum(type(layer).__name__ == "Activation" and layer.name.endswith("hard_swish") for layer in twin.layers) \
        == _hard_swish_count(model)
    x = _pixels(4, seed=2)
    np.testing.assert_allclose(twin.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-5, atol=1e-6)
    assert float_graph(create_model("test_resnet")) is None  # nothing to rewrite


def test_a_model_saved_with_the_earlier_split_converts_with_today_s(monkeypatch, tmp_path):
    """A model saved with (x / 6) * relu6(x + 3) is exported with (relu6(x + 3) * x) / 6 (converters.convert.
    integer_graph): the same float function, the same int8 graph as a model built today."""
    import keras

    import tflkit.models.layers as layers
    from converters.convert import convert_model, integer_graph
    from tflkit.tflite.inspect import op_counts

    keras.utils.set_random_seed(0)
    images = _pixels(16)
    today = _with_batchnorm_statistics(create_model("test_mobilenetv3"), images)
    assert integer_graph(today) is None  # nothing to rewrite
    monkeypatch.setattr(layers, "hard_swish", _split_hard_swish_before)
    earlier = create_model("test_mobilenetv3")
    monkeypatch.undo()
    weights = {layer.name: layer.get_weights() for layer in today.layers}
    for layer in earlier.layers:
        if weights.get(layer.name):
            layer.set_weights(weights[layer.name])
    rewritten = integer_graph(earlier)
    assert {layer.name for layer in rewritten.layers} == {layer.name for layer in today.layers}
    x = _pixels(4, seed=3)
    np.testing.assert_allclose(rewritten.predict_on_batch(x), earlier.predict_on_batch(x), rtol=1e-5, atol=1e-6)
    a = tmp_path / "earlier.tflite"
    b = tmp_path / "today.tflite"
    a.write_bytes(convert_model(earlier, "static_wi8_ai8", images[:8]))
    b.write_bytes(convert_model(today, "static_wi8_ai8", images[:8]))
    assert op_counts(a) == op_counts(b)
