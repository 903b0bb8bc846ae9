"""Issue 15, part 1: nothing computed is lost. Each conversion is recorded the moment it finishes, a second convert
adds recipes, a convert killed with SIGKILL midway and run again converts only what is missing, and the report
lists every .tflite in tflite/ (also files with no record) with the figures it still lacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from quant_helpers import make_run, small_shapes

pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parents[1]
FOUR = ["fp32", "fp16", "dynamic_wi8_afp32", "static_wi8_ai8"]
KW = {"calib_samples": 32, "validate_samples": 48, "tensor_samples": 2}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("robust") / "run"
    make_run(run_dir, "test_mobilenetv3")
    return run_dir


def _rows(run_dir) -> dict:
    path = run_dir / "tflite" / "exports.json"
    return {r["recipe"]: r for r in json.loads(path.read_text())["results"]} if path.is_file() else {}


@pytest.mark.slow  # a child process converting, then a rerun: 1-3 min on the shared 2-core machine
def test_convert_killed_midway_keeps_finished_files_and_rerun_converts_only_the_rest(run):
    # A child converts four recipes and SIGKILLs itself the moment the second one is recorded: a real kill -9,
    # with conversions of the others possibly in flight in its worker processes.
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]
        from converters.export import export_run
        from quant_helpers import small_shapes
        done = []
        def on_result(result):
            done.append(result.recipe)
            if len(done) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        export_run({str(run)!r}, {FOUR!r}, source=small_shapes(), log=lambda *_: None, on_result=on_result,
                   **{KW!r})
    """)
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert child.returncode == -9, child.stderr[-2000:]
    rows = _rows(run)
    assert list(rows) == ["fp32", "fp16"] and all(r["status"] == "ok" for r in rows.values())
    kept = {name: Path(rows[name]["path"]).stat().st_mtime_ns for name in rows}

    from converters.export import export_run

    lines, recorded = [], []
    results = export_run(run, FOUR, source=small_shapes(), log=lines.append, on_result=recorded.append, **KW)
    assert [r.recipe for r in results] == FOUR and all(r.status == "ok" for r in results)
    assert [r.recipe for r in recorded] == ["dynamic_wi8_afp32", "static_wi8_ai8"]  # only the missing ones
    assert sum(line.startswith("skip ") for line in lines) == 2
    assert {name: Path(_rows(run)[name]["path"]).stat().st_mtime_ns for name in kept} == kept  # not rewritten
    assert list(_rows(run)) == FOUR
    # validated against the fp32 file converted before the kill
    assert _rows(run)["static_wi8_ai8"]["validation"]["agreement"] > 0.5

    # A later convert of one more recipe adds its row and keeps the four.
    export_run(run, ["static_wi8_ai8_fio"], source=small_shapes(), log=lambda *_: None, **KW)
    assert list(_rows(run)) == FOUR + ["static_wi8_ai8_fio"]


@pytest.mark.slow  # three exports (each loads the model and exports a SavedModel)
def test_force_converts_again_and_other_settings_are_not_done(run):
    from converters.export import export_run

    if "fp32" not in _rows(run):
        export_run(run, ["fp32", "static_wi8_ai8"], source=small_shapes(), log=lambda *_: None, **KW)
    recorded = []
    export_run(run, ["fp32"], source=small_shapes(), log=lambda *_: None, on_result=recorded.append,
               skip_done=False, **KW)
    assert [r.recipe for r in recorded] == ["fp32"]
    recorded.clear()  # a different calibration set size is a different file: converted again
    export_run(run, ["static_wi8_ai8"], source=small_shapes(), log=lambda *_: None, on_result=recorded.append,
               **{**KW, "calib_samples": 16})
    assert [r.recipe for r in recorded] == ["static_wi8_ai8"]
    assert _rows(run)["static_wi8_ai8"]["settings"]["calib_samples"] == 16


@pytest.mark.integration
def test_report_lists_every_tflite_and_the_figures_it_lacks(run, tmp_path):
    from converters.export import export_run
    from tflkit.pipeline.report import write_report

    if "fp32" not in _rows(run):
        export_run(run, ["fp32"], source=small_shapes(), log=lambda *_: None, **KW)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    records = json.loads((copy / "tflite" / "exports.json").read_text())
    for row in records["results"]:  # the record points into the copy, as it would have been written there
        row["path"] = str(copy / "tflite" / Path(row["path"]).name)
    (copy / "tflite" / "exports.json").write_text(json.dumps(records))
    # a file the record does not know: a convert killed between writing it and recording it
    orphan = copy / "tflite" / "test_mobilenetv3.shapes.fp16_orphan.tflite"
    shutil.copyfile(copy / "tflite" / "test_mobilenetv3.shapes.fp32.tflite", orphan)

    rows, markdown = write_report(copy)
    by_file = {r["file"]: r for r in rows}
    on_disk = {p.name for p in (copy / "tflite").glob("*.tflite")}
    assert set(by_file) == on_disk
    assert by_file[orphan.name]["recipe"] == "fp16_orphan"
    assert "no export record" in by_file[orphan.name]["message"]
    assert all(r["missing"] == "top1,latency" for r in rows if r["file"] != orphan.name)
    assert by_file[orphan.name]["missing"] == "top1,latency,agreement"
    assert "Missing figures:" in markdown and "fp16_orphan" in markdown

    from tflkit.core.run import Run
    from tflkit.pipeline import stages

    stages.evaluate(Run(copy), [p for p in Run(copy).unevaluated() if p.suffix == ".tflite"], small_shapes())
    rows, _ = write_report(copy)
    assert all(r["top1"] is not None and "top1" not in r["missing"] for r in rows)
