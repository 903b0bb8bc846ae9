"""Every family deploys: fp32 TFLite reproduces Keras, full-integer int8 has no float or Flex ops, fp16 and
dynamic-range convert and run. Tiny test variants at 32x32, with randomized BatchNorm statistics so that folding
them into the convolutions is really exercised."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

from converters.convert import convert_saved_model, export_saved_model
from tflkit.models import create_model, get_spec, list_models
from tflkit.tflite.runtime import load_interpreter

TEST_MODELS = list_models("test_*", include_test=True)
INTEGER_TYPES = {np.dtype("int8"), np.dtype("int32")}  # int32: biases and shape operands


def _randomize_batchnorm(model, rng):
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                               rng.uniform(0.5, 1.5, c)])


@pytest.fixture(scope="module", params=TEST_MODELS)
def exported(request, tmp_path_factory):
    rng = np.random.default_rng(0)
    model = create_model(request.param)
    _randomize_batchnorm(model, rng)
    size = get_spec(request.param).default_image_size
    images = rng.uniform(0, 255, (16, size, size, 3)).astype("float32")
    saved = export_saved_model(model, tmp_path_factory.mktemp(request.param) / "saved_model")
    return request.param, model, saved, images


def _run(tflite_bytes, images, tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(tflite_bytes)
    interpreter = load_interpreter(path, threads=1)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    results = []
    for image in images:
        x = image[None]
        if inp["dtype"] == np.int8:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        results.append(y[0])
    return np.stack(results), path


def test_fp32_reproduces_keras_logits(exported, tmp_path):
    name, model, saved, images = exported
    tflite, _ = _run(convert_saved_model(saved, "fp32"), images[:4], tmp_path)
    np.testing.assert_allclose(tflite, np.asarray(model(images[:4], training=False)), atol=1e-4, rtol=1e-4)


def test_full_integer_int8_has_no_float_or_flex_ops(exported, tmp_path):
    name, model, saved, images = exported
    logits, path = _run(convert_saved_model(saved, "static_wi8_ai8", images), images[:4], tmp_path)
    assert logits.shape == (4, 10) and np.isfinite(logits).all()
    ops = load_interpreter(path, xnnpack=False)._get_ops_details()
    for op in ops:
        assert not op["op_name"].startswith(("Flex", "CUSTOM")), op["op_name"]
        types = {np.dtype(t) for t in list(op["operand_types"]) + list(op["result_types"])}
        assert types <= INTEGER_TYPES, (op["op_name"], types)


@pytest.mark.parametrize("recipe", ["fp16", "dynamic_wi8_afp32"])
def test_fp16_and_dynamic_range_convert_and_run(exported, tmp_path, recipe):
    name, model, saved, images = exported
    tflite, _ = _run(convert_saved_model(saved, recipe), images[:4], tmp_path)
    reference = np.asarray(model(images[:4], training=False))
    assert tflite.shape == reference.shape and np.isfinite(tflite).all()
    if recipe == "fp16":  # float16 weights, float32 compute: close to float, not equal
        np.testing.assert_allclose(tflite, reference, atol=2e-2 * np.abs(reference).max())
