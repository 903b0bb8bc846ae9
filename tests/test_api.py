"""The Python API (tflkit.api, re-exported at `tflkit`): one run trained, converted, evaluated, benchmarked and
reported through it, and a study run and picked from, on tiny shapes: what the README's Python example does."""

from __future__ import annotations

import pytest

import tflkit
from tflkit.errors import UsageError

TINY = """\
name: api
models: [test_resnet]
datasets:
  - spec: shapes
regimes:
  scratch: {}
training: {epochs: 1, batch_size: 32, lr: 3e-3, train_limit: 256}
recipes: [fp32]
host_bench: {threads: [1], runs: 5, warmup: 1}
"""


def test_a_run_through_the_api(tmp_path):
    run = tflkit.train("test_mobilenetv3", dataset="shapes", out=tmp_path / "m", epochs=1, batch_size=64,
                       train_limit=512)
    assert isinstance(run, tflkit.Run) and run.config.model == "test_mobilenetv3" and run.files.model.is_file()
    exports = run.convert(["fp32", "dynamic_wi8_afp32"])
    assert [e.status for e in exports] == ["ok", "ok"] and len(run.tflite_files) == 2
    evals = run.evaluate()
    assert {e.model for e in evals} == {"model.keras", *(p.name for p in run.tflite_files)}
    assert all(0 <= e.top1 <= 1 for e in evals)
    benches = run.bench(threads=[1], runs=5, warmup=1)
    assert len(benches) == 2 and all(b.median_ms > 0 for b in benches)
    assert "dynamic_wi8_afp32" in run.report() and (run.path / "report.csv").is_file()
    info = tflkit.inspect(run.tflite_files[0])
    assert info["macs"] > 0 and info["ops"]


def test_a_study_through_the_api(tmp_path):
    path = tmp_path / "api.yaml"
    path.write_text(TINY)
    study = tflkit.Study.load(path)
    summary = study.run(tmp_path / "out")
    assert summary.ok and summary.stages_ok == 4
    paths = tflkit.Study.report(tmp_path / "out")
    assert all(p.is_file() for p in paths.values())
    result = tflkit.pick(tmp_path / "out")  # one file: feasible, or excluded with its reason (e.g. at chance)
    ranked = result["feasible"] + result["excluded"]
    assert len(ranked) == 1 and ranked[0]["recipe"] == "fp32" and ranked[0]["top1"] is not None


def test_a_directory_that_is_not_a_run_is_one_clear_error(tmp_path):
    with pytest.raises(UsageError, match="not a tflkit run directory"):
        tflkit.Run(tmp_path)
    with pytest.raises(AttributeError):
        tflkit.no_such_function  # noqa: B018
