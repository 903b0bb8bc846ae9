"""The Python API (tflkit.api, re-exported at `tflkit`): the README's Python example run as written (with the
test-sized model and fewer images), one run trained, converted, evaluated, benchmarked and reported through it, and
a study run and picked from, on tiny shapes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import tflkit
from tflkit.core.errors import UsageError

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


@pytest.mark.slow  # the study machinery itself is tested in tests/test_study_run.py
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


def readme_example() -> str:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"<!-- api-example:begin -->\n```python\n(.*?)```\n<!-- api-example:end -->", text, re.S)
    assert block, "README.md has no api-example block"
    return block.group(1)


def test_the_readme_python_example_runs(tmp_path, capsys):
    code = readme_example()
    assert "mobilenetv3_small_050" in code and "train_limit=2048" in code
    code = code.replace("mobilenetv3_small_050", "test_mobilenetv3").replace("train_limit=2048", "train_limit=512")
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, "README.md (api-example)", "exec"), {})
    finally:
        os.chdir(here)
    printed = capsys.readouterr().out
    assert "model.keras top-1" in printed and "static_wi8_ai8" in printed and " ms" in printed
    run = tflkit.Run(tmp_path / "runs" / "api")
    assert run.config.model == "test_mobilenetv3" and (run.path / "report.csv").is_file()
    assert [p.name.split(".")[-2] for p in run.tflite_files()] == ["fp32", "static_wi8_ai8"]
    info = tflkit.inspect(run.tflite_files()[1])
    assert info["macs"] > 0 and {d["dtype"] for d in info["inputs"]} == {"int8"}
