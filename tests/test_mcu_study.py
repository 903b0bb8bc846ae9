"""A real tiny study with `mcu:`: every file gets an mcu stage (TFLite Micro arena, top-1 under TFLM, Vela, the
boards' fits), the report gets its "fits on" table, and `tflkit pick --board` keeps only files whose measured
arena and flash fit, naming the budget the others break."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("tflite_micro")
pytest.importorskip("ethosu")
pytestmark = pytest.mark.slow  # a real study (train, 2 conversions, TFLM, Vela): ~1 min; .ci/run runs it

STUDY = """\
name: tiny_mcu
models: [test_mobilenetv3]
datasets:
  - spec: shapes
regimes:
  scratch: {}
training: {epochs: 4, batch_size: 32, lr: 3e-3, train_limit: 1280, bn_momentum: 0.9}
recipes: [static_wi8_ai8, dynamic_wi8_afp32]
host_bench: {threads: [1], runs: 5, warmup: 1}
mcu: {boards: [nrf52840, tiny_m0, alif_e7_hp], boards_file: boards.yaml, ethos_u: [ethos-u55-128], eval_limit: 32}
"""
BOARDS = "boards:\n  tiny_m0: {core: Cortex-M0+, clock_mhz: 48, sram_kb: 16, flash_kb: 64}\n"


def tflkit(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "tflkit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mcu_study")
    (folder / "boards.yaml").write_text(BOARDS)
    (folder / "study.yaml").write_text(STUDY)
    out = folder / "out"
    done = tflkit("study", "run", folder / "study.yaml", "--out", out)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_every_file_has_its_mcu_figures(study):
    from tflkit.study.rows import study_rows
    from tflkit.study.store import open_store

    with open_store(study) as store:
        rows = {r["recipe"]: r for r in study_rows(store)}
        stage = store.stage("test_mobilenetv3.shapes.scratch", "mcu/static_wi8_ai8")
    int8, hybrid = rows["static_wi8_ai8"], rows["dynamic_wi8_afp32"]
    assert int8["tflm"] == "runs" and int8["tflm_arena_bytes"] > 0 and int8["tflm_eval_images"] == 32
    assert 0 <= int8["tflm_top1"] <= 1 and int8["tflm_agreement"] >= 0.8
    assert int8["fits_nrf52840"] is True and int8["fits_tiny_m0"] is False
    assert "flash by" in int8["fits_tiny_m0_breaks"] or "SRAM by" in int8["fits_tiny_m0_breaks"]
    assert int8["fits_alif_e7_hp_npu"] is True and int8["vela_ethos_u55_128_sram_kib"] > 0
    assert hybrid["tflm"].startswith("refused: uint8 or hybrid") and hybrid["fits_nrf52840"] is False
    assert stage["provenance"]["vela_version"].startswith("5.")


def test_the_report_has_the_fits_on_table(study):
    done = tflkit("study", "report", study)
    assert done.returncode == 0, done.stderr
    text = (study / "report.md").read_text()
    assert "## Microcontrollers: fits on" in text and "nrf52840" in text and "tiny_m0" in text
    assert 'id="mcu"' in (study / "report.html").read_text()


def test_pick_for_a_board_keeps_only_files_that_fit(study):
    done = tflkit("pick", study, "--board", "nrf52840", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [c["recipe"] for c in result["feasible"]] == ["static_wi8_ai8"]
    (excluded,) = result["excluded"]
    assert excluded["recipe"] == "dynamic_wi8_afp32"
    assert any("does not fit nrf52840: does not run under TFLite Micro" in r for r in excluded["reasons"])
    none = tflkit("pick", study, "--board", "tiny_m0")
    assert none.returncode == 1 and "does not fit tiny_m0" in none.stdout
