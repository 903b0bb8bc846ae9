"""A run directory copied or moved names its own .tflite files: exports.json rows are read relative to the run."""

from __future__ import annotations

import json
import shutil

from tflkit.core.run import Run


def test_a_moved_run_names_its_own_files(tmp_path):
    original = tmp_path / "original"
    (original / "tflite").mkdir(parents=True)
    name = "m.shapes.fp32.tflite"
    (original / "tflite" / name).write_bytes(b"TFL3")
    rows = [{"recipe": "fp32", "status": "ok", "path": str(original / "tflite" / name), "size_bytes": 4}]
    (original / "tflite" / "exports.json").write_text(json.dumps({"results": rows}))
    moved = tmp_path / "moved"
    shutil.copytree(original, moved)
    shutil.rmtree(original)  # the place it was converted in is gone

    assert [r["path"] for r in Run(moved).exports()] == [str(moved / "tflite" / name)]
    assert Run(moved).tflite_files() == [moved / "tflite" / name]

