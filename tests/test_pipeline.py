"""The foundation end to end on a tiny run: train, convert, evaluate, benchmark, report."""

import json

import numpy as np
import pytest

from tflkit.core.run import Run
from tflkit.tflite.inspect import float_ops, io_details
from tflkit.tflite.model import TFLiteClassifier
from tflkit.training.evaluation import evaluate, load_keras_model


def _artifact(run_dir, recipe):
    return next(r["path"] for r in Run(run_dir).exports() if r["recipe"] == recipe)


def test_run_directory_holds_model_config_history(tiny_run):
    run = Run(tiny_run)
    for path in (run.model_path, run.config_path, run.history_path, run.last_checkpoint, run.state_path):
        assert path.is_file(), path
    history = run.history()
    assert len(history["loss"]) == 4 and "val_top1" in history


def test_every_default_recipe_converts_and_runs(tiny_run, tiny_shapes):
    rows = Run(tiny_run).exports()
    assert [r["recipe"] for r in rows] == ["fp32", "fp16", "dynamic_wi8_afp32", "static_wi8_ai8"]
    images = tiny_shapes.split("test").images[:8].astype(np.float32)
    for row in rows:
        assert row["status"] == "ok", row
        assert row["path"].endswith(f"test_mobilenetv3.shapes.{row['recipe']}.tflite")
        logits = TFLiteClassifier(row["path"]).predict(images)
        assert logits.shape == (8, 10) and np.isfinite(logits).all()


def test_fp32_tflite_reproduces_keras_logits(tiny_run, tiny_shapes):
    model = load_keras_model(Run(tiny_run).model_path)
    images = tiny_shapes.split("test").images[:32].astype(np.float32)
    expected = np.asarray(model(images, training=False))
    got = TFLiteClassifier(_artifact(tiny_run, "fp32")).predict(images)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_full_integer_model_has_int8_io_and_no_float_ops(tiny_run):
    path = _artifact(tiny_run, "static_wi8_ai8")
    io = io_details(path)
    assert io["inputs"][0]["dtype"] == "int8" and io["outputs"][0]["dtype"] == "int8"
    # calibrated on 0..255 pixels: one int8 step per pixel value, zero point at -128
    assert io["inputs"][0]["scale"] == pytest.approx(1.0, rel=0.02)
    assert io["inputs"][0]["zero_point"] == -128
    assert float_ops(path) == []


def test_int8_model_agrees_with_float_on_test_split(tiny_run, tiny_shapes):
    keras_top1 = evaluate(Run(tiny_run).model_path, tiny_shapes).top1
    int8 = evaluate(_artifact(tiny_run, "static_wi8_ai8"), tiny_shapes)
    assert int8.count == 256
    assert keras_top1 > 0.3, "the tiny run should have learned something"
    assert abs(int8.top1 - keras_top1) < 0.05


def test_report_has_one_row_per_recipe_with_measured_numbers(tiny_run, tiny_shapes):
    from tflkit.bench.host import BenchSettings
    from tflkit.pipeline import stages
    from tflkit.pipeline.report import write_report

    stages.evaluate(Run(tiny_run), source=tiny_shapes)
    stages.bench_host(Run(tiny_run), threads=(1,), settings=BenchSettings(runs=5, warmup=1))
    rows, markdown = write_report(tiny_run)
    by_recipe = {r["recipe"]: r for r in rows}
    assert set(by_recipe) == {"fp32", "fp16", "dynamic_wi8_afp32", "static_wi8_ai8"}
    fp32, int8 = by_recipe["fp32"], by_recipe["static_wi8_ai8"]
    assert fp32["size_ratio"] == 1.0 and fp32["top1_drop"] == 0.0 and fp32["host_speedup_t1"] == 1.0
    assert int8["size_ratio"] < 0.6  # tiny model: quantization parameters weigh more than at real sizes
    assert int8["top1_drop"] == pytest.approx(fp32["top1"] - int8["top1"])
    for row in rows:
        assert row["host_median_ms_t1"] > 0 and row["host_p95_ms_t1"] >= row["host_median_ms_t1"]
        assert row["macs"] > 0 and row["params"] > 0
    assert "| static_wi8_ai8 | ok |" in markdown
    assert json.loads((tiny_run / "report.json").read_text()) == json.loads(json.dumps(rows))
    assert (tiny_run / "report.csv").read_text().startswith("model,dataset,recipe,status,top1,top1_drop")
