"""Every post-training recipe on every architecture (tiny variants, 32x32): converts and runs, or is a failed row
with the reason; validation, model card and the broken-calibration check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from quant_helpers import make_run

from tflkit.core.run import validation_path

pytest.importorskip("tensorflow")

PTQ = ["fp32", "fp16", "dynamic_wi8_afp32", "static_wi8_ai8", "static_wi8_ai8_fio", "static_wi8_ai16"]
ARCHS = ["test_mobilenetv3", "test_resnet", "test_squeezenet", "test_efficientnetv2", "test_shufflenetv2"]


def _export(run, source, recipes, **kw):
    from converters.export import export_run

    kw = {"calib_samples": 32, "validate_samples": 48, "tensor_samples": 2, **kw}
    return export_run(run, recipes, source=source, log=lambda *_: None, **kw)


@pytest.mark.parametrize("arch", [a if a == "test_mobilenetv3" else pytest.param(a, marks=pytest.mark.integration)
                                  for a in ARCHS])  # the default suite keeps MobileNetV3: hard-swish, SE
def test_every_recipe_converts_and_runs_or_fails_with_reason(tmp_path, arch):
    source = make_run(tmp_path / "run", arch)
    results = _export(tmp_path / "run", source, PTQ)
    assert [r.recipe for r in results] == PTQ
    for r in results:
        if r.status != "ok":
            assert r.status == "convert_failed" and r.message, r
            continue
        assert r.validation is not None and 0.0 <= r.validation["agreement"] <= 1.0
        assert Path(r.path).with_name(Path(r.path).name.replace(".tflite", ".card.json")).is_file()
        if r.recipe.startswith("static_wi8_ai8"):
            assert r.validation["float_ops"] == "", r.validation  # integer inside, nothing float left
            assert r.validation["agreement"] >= 0.85, r.validation
    statuses = {r.recipe: r.status for r in results}
    assert statuses["static_wi8_ai8"] == "ok" and statuses["fp32"] == "ok"
    rows = json.loads((tmp_path / "run" / "tflite" / "exports.json").read_text())["results"]
    assert {row["recipe"] for row in rows} == set(PTQ)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("q") / "run"
    source = make_run(run, "test_resnet", epochs=3)
    return run, source


@pytest.mark.integration
def test_broken_calibration_is_caught_by_validation(trained):
    from converters.calibration import calibration_images

    run, source = trained
    good = _export(run, source, ["static_wi8_ai8"], tensor_samples=4, validate_samples=96)[0]
    good_record = json.loads(validation_path(good.path).read_text())
    one = calibration_images(source.split("train"), 32, 1, seed=0)
    broken = _export(run, source, ["static_wi8_ai8"], tensor_samples=4, validate_samples=96,
                     calib_images=np.repeat(one, 32, axis=0))[0]
    bad_record = json.loads(validation_path(broken.path).read_text())
    worst_good = good_record["worst_layers"][0]["snr_db"]
    worst_bad = bad_record["worst_layers"][0]["snr_db"]
    print(f"good: agreement {good.validation['agreement']}, worst {worst_good} dB; "
          f"one image repeated: agreement {broken.validation['agreement']}, worst {worst_bad} dB")
    assert broken.validation["agreement"] < good.validation["agreement"] or worst_bad < worst_good - 3.0
    assert bad_record["mean_abs_logit_diff"] > good_record["mean_abs_logit_diff"]
    assert worst_bad < worst_good


def test_int8_input_scaling_camera_pixels_give_float_top1(trained):
    from tflkit.data.pipeline import load_images
    from tflkit.tflite.model import TFLiteClassifier
    from tflkit.tflite.runtime import load_interpreter
    from tflkit.training.evaluation import load_keras_model

    run, source = trained
    result = _export(run, source, ["static_wi8_ai8"])[0]
    # uint8 camera pixels, as an app holds them; quantized with the card's scale and zero point by hand.
    pixels = load_images(source.split("test"), 32, np.arange(64)).round().clip(0, 255).astype(np.uint8)
    card = json.loads(Path(result.path).with_name(Path(result.path).name.replace(".tflite", ".card.json")).read_text())
    q = card["input"]["quantization"]
    assert card["input"]["dtype"] == "int8" and q["scale"] > 0
    assert abs(q["scale"] - 1.0) < 0.05 and abs(q["zero_point"] + 128) <= 3  # 0..255 maps onto -128..127
    interpreter = load_interpreter(result.path)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def top1(feed):
        tops = []
        for image in pixels:
            interpreter.set_tensor(inp["index"], feed(image)[None])
            interpreter.invoke()
            tops.append(interpreter.get_tensor(out["index"])[0].argmax())
        return np.array(tops)

    by_card = top1(lambda p: np.clip(np.round(p / q["scale"] + q["zero_point"]), -128, 127).astype(np.int8))
    wrapped = top1(lambda p: p.astype(np.int8))  # the classic bug: uint8 reinterpreted as int8, no shift
    float_top1 = np.asarray(load_keras_model(run / "model.keras").predict(pixels.astype(np.float32),
                                                                          verbose=0)).argmax(1)
    # The evaluation path (TFLiteClassifier quantizes float pixels itself) sees exactly what the app feeds.
    np.testing.assert_array_equal(TFLiteClassifier(result.path).predict(pixels.astype(np.float32)).argmax(1), by_card)
    agreement, wrong = np.mean(by_card == float_top1), np.mean(wrapped == float_top1)
    print(f"int8 input: top-1 agreement with float {agreement:.3f}; without the zero-point shift {wrong:.3f}")
    assert agreement >= 0.9 and agreement >= result.validation["agreement"] - 0.1
    assert wrong < agreement - 0.2


def test_model_card_describes_the_file(trained):
    from tflkit.core.fileio import sha256_file
    from tflkit.core.run import card_path

    run, source = trained
    result = _export(run, source, ["static_wi8_ai8_fio"])[0]
    card = json.loads(card_path(result.path).read_text())
    assert card["sha256"] == sha256_file(result.path)
    assert card["source"]["keras_sha256"] == sha256_file(run / "model.keras")
    assert card["input"]["dtype"] == "float32" and card["input"]["quantization"] is None
    assert card["input"]["pixel_range"] == [0.0, 255.0] and card["input"]["normalization"]["inside_model"]
    assert card["output"]["class_names"] == list(source.class_names)
    assert card["recipe"]["name"] == "static_wi8_ai8_fio" and card["calibration"]["samples"] == 32
