"""Weight import from a .tflite: a tflkit model's own float and fp16 files back into Keras (by logits), and the
TF-slim 8-bit MobileNetV3-Small onto `mobilenetv3_small_100_tf` (layer-local against the file's own tensors)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import SHARED_DATA

from tflkit.core.errors import ModelFileError
from tflkit.models import count_params, create_model
from tflkit.weights.tflite import import_tflite_weights, model_from_tflite

TF_SLIM = SHARED_DATA / "weights" / "mobilenet_v3_small" / "v3-small_224_1.0_uint8.tflite"
needs_tf_slim = pytest.mark.skipif(not TF_SLIM.is_file(), reason="no shared TF-slim MobileNetV3 file")


def _randomized(name, num_classes, seed, small_input=False):
    model = create_model(name, num_classes=num_classes, image_size=32, small_input=small_input)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights and layer.name != "normalize":
            layer.set_weights([(rng.uniform(0.5, 1.5, tuple(w.shape)) if "variance" in w.path
                                else rng.normal(0, 0.3, tuple(w.shape))).astype(np.float32) for w in layer.weights])
    return model


def _convert(model, path, fp16=False):
    """The toolkit's own float file (converters.convert: one HARD_SWISH per hard-swish). A plain
    TFLiteConverter run on the split hard-swish may fold its / 6 into the next convolution's weights, which then
    do not read back as the model's."""
    from converters.convert import convert_model

    path.write_bytes(convert_model(model, "fp16" if fp16 else "fp32"))
    return path


@pytest.mark.parametrize("name", [pytest.param("test_mobilenetv3", marks=pytest.mark.integration), "test_resnet"])
def test_own_float_and_fp16_files_import_back_by_logits(tmp_path, name):
    source = _randomized(name, 6, seed=0)
    images = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype(np.float32)
    want = source.predict_on_batch(images)
    for fp16, tolerance in ((False, 1e-4), (True, 2e-2)):
        path = _convert(source, tmp_path / f"m{int(fp16)}.tflite", fp16=fp16)
        target = create_model(name, num_classes=6, image_size=32)
        report = import_tflite_weights(target, path)
        assert report["skipped_layers"] == [] and report["num_outputs"] == 6
        got = target.predict_on_batch(images)
        np.testing.assert_allclose(got, want, atol=tolerance * np.abs(want).max(), err_msg=f"fp16={fp16}")


@pytest.mark.parametrize("name", ["test_resnet", "test_mobilenetv3"])  # a 3x3 stem instead of 7x7; only strides
def test_model_from_a_small_input_export_finds_the_strides(tmp_path, name):
    source = _randomized(name, 4, seed=3, small_input=True)
    path = _convert(source, tmp_path / "small.tflite")
    model, report = model_from_tflite(path, name)
    images = np.random.default_rng(4).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    want = source.predict_on_batch(images)
    np.testing.assert_allclose(model.predict_on_batch(images), want, atol=1e-4 * np.abs(want).max())
    assert model.get_layer("pool").input.shape[1:3] == source.get_layer("pool").input.shape[1:3]


def test_other_architecture_is_refused_in_one_line(tmp_path):
    path = _convert(_randomized("test_resnet", 6, seed=0), tmp_path / "r.tflite")
    with pytest.raises(ModelFileError, match="not the same architecture") as info:
        import_tflite_weights(create_model("test_mobilenetv3", num_classes=6, image_size=32), path)
    assert "\n" not in str(info.value)


def test_tf_layout_matches_keras_applications_parameter_count():
    import keras

    reference = keras.applications.MobileNetV3Small(weights=None, input_shape=(224, 224, 3))
    model = create_model("mobilenetv3_small_100_tf")
    assert count_params(model) == sum(int(np.prod(w.shape)) for w in reference.trainable_weights) == 2_542_856
    # the same tensors in the same order, up to the head's 1x1 convs being Dense kernels here
    ours = [int(np.prod(w.shape)) for layer in model.layers if layer.name != "normalize" for w in layer.weights]
    assert ours == [int(np.prod(w.shape)) for layer in reference.layers for w in layer.weights]


@pytest.mark.data
@needs_tf_slim
def test_tf_slim_file_imports_with_its_own_head_and_input_contract():
    from ai_edge_litert.interpreter import Interpreter

    start = time.time()
    model, report = model_from_tflite(TF_SLIM, "mobilenetv3_small_100_tf")
    assert time.time() - start < 60
    assert model.output_shape == (None, 1001) and model.input_shape == (None, 224, 224, 3)
    assert len(report["pairs"]) == 54 and report["skipped_layers"] == []
    # BatchNorm restored as an identity carrying the folded bias
    gamma, beta, mean, var = model.get_layer("conv_bn").get_weights()
    assert np.all(gamma == 1) and np.all(mean == 0) and np.allclose(var + 1e-3, 1) and np.any(beta)
    # the input contract of the 8-bit file: (p - 128) / 127
    kernel, bias = model.get_layer("normalize").get_weights()
    np.testing.assert_allclose(kernel.ravel(), 1 / 127, rtol=1e-5)
    np.testing.assert_allclose(bias, -128 / 127, rtol=1e-5)

    # layer-local: the stem and the logits computed from the .tflite's own inputs to them match its outputs to
    # within its quantization step (end to end the 8-bit file's rounding accumulates; see benchmarks/)
    import keras

    interpreter = Interpreter(str(TF_SLIM), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    image = np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3), dtype=np.uint8)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    details = {d["name"]: d for d in interpreter.get_tensor_details()}

    def tensor(name):
        scale, zero_point = details[name]["quantization"]
        return (interpreter.get_tensor(details[name]["index"]).astype(np.float32) - zero_point) * scale, scale

    stem, step = tensor("MobilenetV3/Conv/hard_swish/mul_1")
    got = keras.Model(model.input, model.get_layer("conv_hard_swish").output).predict_on_batch(image.astype("f4"))
    assert np.abs(got - stem).max() <= 2 * step
    pooled, _ = tensor("MobilenetV3/Conv_1/hard_swish/mul_1")
    head = keras.Model(model.get_layer("pool").input, model.output)
    logits, step = tensor("MobilenetV3/Logits/SpatialSqueeze")
    got = head.predict_on_batch(pooled)
    assert np.corrcoef(got.ravel(), logits.ravel())[0, 1] > 0.99
    assert np.abs(got - logits).mean() < 2 * step


@pytest.mark.data
@needs_tf_slim
def test_weights_import_command_and_pretrained_tflite_for_training(tmp_path):
    import keras

    from tflkit.cli import main
    from tflkit.training.transfer import load_pretrained

    out = tmp_path / "m.keras"
    assert main(["weights", "import", str(TF_SLIM), "--model", "mobilenetv3_small_100_tf", "--out", str(out)]) == 0
    saved = keras.models.load_model(out, compile=False)
    assert saved.output_shape == (None, 1001)

    # --pretrained FILE.tflite: another class count and input size; the classifier keeps its own init
    model = create_model("mobilenetv3_small_100_tf", num_classes=10, image_size=32, small_input=True)
    report = load_pretrained(model, str(TF_SLIM), "mobilenetv3_small_100_tf")
    assert report["skipped_layers"] == ["logits"] and "conv_2" in report["loaded_layers"]
    np.testing.assert_array_equal(model.get_layer("expanded_conv_10_project").get_weights()[0],
                                  saved.get_layer("expanded_conv_10_project").get_weights()[0])
    assert main(["weights", "import", str(TF_SLIM), "--model", "resnet18", "--out", str(tmp_path / "r.keras")]) == 1
    assert main(["weights", "import", str(TF_SLIM), "--model", "nope", "--out", str(tmp_path / "r.keras")]) == 2
