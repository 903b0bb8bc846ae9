"""Microcontrollers with the real tflite-micro and ethos-u-vela packages (skipped when the `mcu` extra is absent):
the arena tflkit reports is the smallest that works, refusals are named, Vela's figures and files land beside the
source, fits are budget arithmetic with the broken budget named, and `tflkit mcu` follows the CLI convention."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from tflkit.core.run import Run

pytest.importorskip("tflite_micro")
pytest.importorskip("ethosu")

TF_SLIM_UINT8 = SHARED_DATA / "weights" / "mobilenet_v3_small" / "v3-small_224_1.0_uint8.tflite"


def _convert(model, path: Path, kind: str) -> Path:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if kind != "float":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind in ("int8", "int8_float_io"):
        shape = (1, *model.input_shape[1:])
        rng = np.random.default_rng(0)
        converter.representative_dataset = lambda: ([rng.random(shape, dtype=np.float32)] for _ in range(8))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if kind == "int8":
        converter.inference_input_type = converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two small CNNs the tests build (different shapes, int8 I/O), one with float I/O, one hybrid."""
    import keras

    keras.utils.set_random_seed(0)
    out = tmp_path_factory.mktemp("mcu")
    conv = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, activation="relu"),
                             keras.layers.DepthwiseConv2D(3), keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(4)])
    wide = keras.Sequential([keras.Input((24, 24, 1)), keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
                             keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.Flatten(),
                             keras.layers.Dense(10)])
    return {"conv": _convert(conv, out / "conv.int8.tflite", "int8"),
            "wide": _convert(wide, out / "wide.int8.tflite", "int8"),
            "float_io": _convert(conv, out / "conv.fio.tflite", "int8_float_io"),
            "hybrid": _convert(wide, out / "wide.dynamic.tflite", "dynamic")}


@pytest.mark.parametrize("name", ["conv", "wide"])
def test_the_arena_is_the_smallest_that_allocates_and_invokes(models, name):
    from tflkit.mcu.tflm import attempt, check

    result = check(models[name])
    assert result.runs and result.arena_checked, result
    # Independently of the check's own runs: fresh processes at the size and a byte below it.
    assert attempt(models[name], result.arena_bytes, invoke=True).ok
    assert not attempt(models[name], result.arena_bytes - 1, invoke=True).ok
    assert result.reported_bytes is not None and result.reported_bytes <= result.arena_bytes


def test_a_size_that_crashes_the_child_counts_as_too_small_and_a_new_child_goes_on(monkeypatch):
    """The search's own logic on both sides, with TFLM replaced: below 2 KB the 'interpreter' kills its process
    (isolate's Crashed, the size being tried as its last message), below 3000 bytes it refuses the arena."""
    from tflkit.core import isolate
    from tflkit.mcu import tflm, tflm_child

    class Segfault(Exception):
        pass

    def load(path, size):
        if size < 2048:
            raise Segfault
        if size < 3000:
            raise RuntimeError("Arena size is too small")

    children = []

    def call(func, *args, on_message=None, **kwargs):  # one fresh "child": messages as sent, a crash as Crashed
        children.append(args)
        sent = []
        monkeypatch.setattr(tflm_child.isolate, "send", lambda m: (sent.append(m), on_message(m)))
        try:
            return func(*args)
        except Segfault:
            raise isolate.Crashed("search crashed (killed by SIGSEGV)", -11, sent[-1]) from None

    monkeypatch.setattr(tflm_child, "_load", load)
    monkeypatch.setattr(tflm.isolate, "call", call)
    arena, tries = tflm.smallest_arena("m.tflite")
    assert arena == 3000
    assert [lo for _, lo, _ in children] == [0, 1024]  # the crash at 1 KiB: a second child from above it
    assert tries > 2


def test_the_two_models_need_different_arenas_and_the_plan_is_compared(models):
    from tflkit.mcu.measure import measure

    conv, wide = measure(models["conv"]), measure(models["wide"])
    assert conv.arena_bytes != wide.arena_bytes
    assert conv.planned_arena_bytes is not None and wide.planned_arena_bytes is not None


def test_a_hybrid_model_is_refused_with_the_reason(models):
    from tflkit.mcu.tflm import check

    result = check(models["hybrid"])
    assert not result.runs and result.arena_bytes is None
    assert "hybrid" in result.reason and "int8" in result.reason


@pytest.mark.data
@pytest.mark.skipif(not TF_SLIM_UINT8.is_file(), reason="needs ../shared/data (the TF-slim MobileNetV3 uint8 file)")
def test_the_tf_slim_uint8_model_is_refused_by_tflm_and_compiled_by_vela():
    from tflkit.mcu.tflm import check

    result = check(TF_SLIM_UINT8)
    assert not result.runs and "uint8" in result.reason


def test_float_io_is_noted_and_its_quantize_ops_stay_on_the_cpu_under_vela(models, tmp_path):
    from tflkit.mcu.tflm import check
    from tflkit.mcu.vela import VelaTarget, compile_model

    assert any("float input/output" in note for note in check(models["float_io"]).notes)
    source = Path(shutil.copy(models["float_io"], tmp_path / "m.tflite"))
    result = compile_model(source, VelaTarget.parse("ethos-u55-128"))
    assert result.ok and result.cpu_ops == 2 and result.cpu_op_names == ["Quantize", "Dequantize"]


@pytest.mark.parametrize("spec", ["ethos-u55-128", "ethos-u65-256"])
def test_vela_figures_and_files_beside_the_source(models, tmp_path, spec):
    from tflkit.mcu.vela import VelaTarget, compile_model

    source = Path(shutil.copy(models["conv"], tmp_path / "conv.int8.tflite"))
    result = compile_model(source, VelaTarget.parse(spec))
    assert result.ok, result.message
    assert result.npu_ops >= 3 and result.cpu_ops == 0 and result.sram_kib > 0
    assert result.cycles_total > 0 and result.inference_ms > 0 and result.clock_mhz > 0
    assert result.macs > 0 and result.vela_version.startswith("5.")
    compiled, layers = Path(result.compiled), Path(result.per_layer_csv)
    assert compiled.parent == layers.parent == tmp_path / "vela" and compiled.read_bytes()[4:8] == b"TFL3"
    assert "Op Cycles" in layers.read_text()
    assert not list(tmp_path.rglob(".*part*"))
    from tflkit.mcu.tflm import check

    again = check(compiled)  # a compiled file is named for what it is, not "an unknown operator"
    assert not again.runs and "compiled by Vela" in again.reason


def test_a_vela_target_outside_its_list_is_a_usage_error():
    from tflkit.core.errors import UsageError
    from tflkit.mcu.vela import VelaTarget

    with pytest.raises(UsageError, match="ethos-u55-128"):
        VelaTarget.parse("ethos-u99-1")


def test_fit_names_the_budget_it_breaks_and_by_how_much():
    from tflkit.mcu.boards import Board
    from tflkit.mcu.fit import fit

    board = Board("tiny", "Cortex-M0+", 48, sram_kb=64, flash_kb=256)
    ok = fit(board, arena_bytes=16 * 1024, model_bytes=100 * 1024)
    assert ok.fits and ok.sram_need_kb == 48.0 and ok.flash_need_kb == 228.0
    over = fit(board, arena_bytes=40 * 1024, model_bytes=200 * 1024)
    assert not over.fits
    assert "SRAM by 8.0 KB" in over.breaks and "flash by 72.0 KB" in over.breaks


def test_builtin_boards_carry_a_source_for_their_figures():
    from tflkit.mcu.boards import BOARDS

    for name in ("stm32f746g_disco", "stm32h747", "nrf52840", "esp32s3_devkitc1", "rp2350_pico2", "imxrt1170_evk"):
        assert BOARDS[name].source and BOARDS[name].sram_kb > 0
    assert BOARDS["stm32f746g_disco"].sram_kb == 320 and BOARDS["nrf52840"].sram_kb == 256
    assert any(b.ethos_u.startswith("ethos-u55") for b in BOARDS.values())


def test_a_users_boards_file(tmp_path):
    from tflkit.core.errors import UsageError
    from tflkit.mcu.boards import read_boards

    good = tmp_path / "boards.yaml"
    good.write_text("boards:\n  my_m4: {core: Cortex-M4F, clock_mhz: 80, sram_kb: 128, flash_kb: 512}\n")
    assert read_boards(good)["my_m4"].sram_kb == 128
    bad = tmp_path / "bad.yaml"
    bad.write_text("boards:\n  my_m4: {core: Cortex-M4F, clock_mhz: 80, sram: 128, flash_kb: 512}\n")
    with pytest.raises(UsageError, match="unknown key"):
        read_boards(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("boards:\n  my_m4: {core: [\n")
    with pytest.raises(UsageError, match="line"):
        read_boards(broken)


def test_tflkit_mcu_measures_the_others_when_one_file_is_refused(models, tmp_path, capsys):
    from tflkit.cli import main

    files = [shutil.copy(models[k], tmp_path / Path(models[k]).name) for k in ("conv", "hybrid")]
    code = main(["mcu", *map(str, files), "--board", "nrf52840", "stm32f746g_disco", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["ok"] is False
    assert [r["runs"] for r in out["results"]] == [True, False]
    assert len(out["errors"]) == 1 and "wide.dynamic.tflite" in out["errors"][0]["item"]
    fits = out["results"][0]["fits"]
    assert {f["board"] for f in fits} == {"nrf52840", "stm32f746g_disco"} and all(f["fits"] for f in fits)


def test_without_the_extra_the_command_says_how_to_install_it(models, monkeypatch, capsys):
    import importlib.util

    from tflkit.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tflite_micro" else real(name, *a))
    assert main(["mcu", str(models["conv"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'tflkit[mcu]'" in err[0]


def test_top1_under_tflm_agrees_with_litert_and_lands_in_the_run_report(tiny_run, tiny_shapes, tmp_path):
    from tflkit.cli.mcu import format_result
    from tflkit.mcu.measure import measure
    from tflkit.pipeline.rows import run_rows
    from tflkit.training.evaluation import evaluate

    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    int8 = next((run / "tflite").glob("*.static_wi8_ai8.tflite"))
    result = evaluate(int8, tiny_shapes, limit=64, runtime="tflm", compare=True)
    assert result.runtime == "tflm" and result.count == 64

    # TFLM's reference kernels and LiteRT's round differently, so their int8 logits differ by a few output steps
    # (up to 6 over 9 seeds of this tiny model, oneDNN on and off; the flips were at LiteRT margins up to 2 steps).
    # How many top-1 classes flip depends on how many images are near-ties (0-14% of 64 here), so the test bounds
    # the steps and asks that every flip is a near-tie under LiteRT, not a fixed agreement rate.
    from ai_edge_litert.interpreter import Interpreter

    from tflkit.data.preprocess import for_model
    from tflkit.data.splits import holdout_indices
    from tflkit.training.evaluation import Predictor

    step = Interpreter(model_path=str(int8)).get_output_details()[0]["quantization"][0]
    test = tiny_shapes.split("test")
    chosen = np.sort(holdout_indices(test.labels, 64, 0))  # the images evaluate(limit=64, seed=0) scored
    images = for_model(int8, log=lambda *_: None).apply(test.images[chosen].astype(np.float32))
    tflm, litert = Predictor(int8, runtime="tflm").predict(images), Predictor(int8).predict(images)
    assert np.abs(tflm - litert).max() <= 8 * step + 1e-6
    top2 = np.sort(litert, axis=1)[:, -2:]
    flipped = tflm.argmax(1) != litert.argmax(1)
    assert np.all(top2[flipped, 1] - top2[flipped, 0] <= 4 * step + 1e-6)
    # evaluate's figures are these images' (one of them a wrong pairing of runtimes or images would break)
    assert result.agreement == pytest.approx(np.mean(~flipped))
    assert result.reference_top1 == pytest.approx(np.mean(litert.argmax(1) == test.labels[chosen]))

    from tflkit.mcu.boards import BOARDS

    measured = measure(int8, [BOARDS["nrf52840"]])
    Run(run).record_mcu(measured.to_dict())
    assert "runs under TFLite Micro" in format_result(measured)
    row = next(r for r in run_rows(Run(run)) if r["recipe"] == "static_wi8_ai8")
    assert row["tflm_arena_bytes"] == measured.arena_bytes and row["fits_on"] == "nrf52840"


def test_an_npu_fit_needs_operators_on_the_npu_and_cpu_operators_tflm_runs():
    from tflkit.mcu.fit import npu_problem

    compiled = {"ok": True, "npu_ops": 10, "cpu_ops": 2, "cpu_op_names": ["Quantize", "Dequantize"]}
    assert npu_problem(compiled, runs_under_tflm=True) == ""
    assert "do not run under TFLite Micro" in npu_problem(compiled, runs_under_tflm=False)
    assert "no operator on the NPU" in npu_problem({"ok": True, "npu_ops": 0, "cpu_ops": 5}, True)
    assert npu_problem({"ok": False, "message": "Vela failed: x"}, True) == "Vela failed: x"


def test_list_boards_needs_no_file_and_a_damaged_file_is_one_line(models, tmp_path, capsys):
    from tflkit.cli import main

    assert main(["mcu", "--list-boards", "--json"]) == 0
    assert {b["name"] for b in json.loads(capsys.readouterr().out)["results"]} >= {"nrf52840", "alif_e7_hp"}
    damaged = tmp_path / "damaged.tflite"
    damaged.write_bytes(b"xxxxTFL3" + b"\x7f" * 64)  # the identifier, then nonsense offsets
    code = main(["mcu", str(damaged), str(models["conv"]), "--board", "nrf52840", "--json"])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert code == 1 and [r["model"] for r in out["results"]] == ["conv.int8.tflite"]
    assert len(out["errors"]) == 1 and "damaged.tflite" in out["errors"][0]["item"]
    assert "Traceback" not in captured.err
