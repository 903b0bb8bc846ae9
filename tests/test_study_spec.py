"""The study file: validated on load, one line naming the problem and exit 2, before anything trains."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tflkit.core.errors import UsageError
from tflkit.study.spec import EXAMPLE, build_cells, load_study

GOOD = """\
name: t
models: [test_resnet, test_squeezenet]
datasets:
  - spec: shapes
regimes:
  scratch: {}
training: {epochs: 1, lr: 1e-3, batch_size: 32}
overrides:
  test_squeezenet: {lr: 3e-3}
recipes: [fp32, static_wi8_ai8]
"""


def write(tmp_path, text, name="study.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_good_file_builds_cells_with_coerced_types_and_overrides(tmp_path):
    spec = load_study(write(tmp_path, GOOD))
    cells = build_cells(spec)
    assert [c.id for c in cells] == ["test_resnet.shapes.scratch", "test_squeezenet.shapes.scratch"]
    assert cells[0].config["lr"] == pytest.approx(1e-3)  # YAML reads 1e-3 as a string: coerced to float
    assert cells[1].config["lr"] == pytest.approx(3e-3)
    assert cells[0].fingerprint() != cells[1].fingerprint()


@pytest.mark.parametrize("change, message", [
    ("colour: red\n", "unknown key(s) colour"),
    ("training: {epochs: many}\n", "epochs must be an integer, got 'many'"),
    ("training: {learning_rate: 0.1}\n", "unknown key(s) learning_rate"),
    ("host_bench: {runs: lots}\n", "host_bench.runs must be an integer, got 'lots'"),
    ("training: {epochs: 0}\n", "epochs must be at least 1"),
    ("recipes: [fp32, int8]\n", "unknown recipe 'int8'"),
    ("models: [test_resnet, resnet19]\n", "unknown model 'resnet19'"),
    ("datasets: [{spec: imagenet22k}]\n", "unknown dataset 'imagenet22k'"),
    ("datasets: [{spec: cifar10, data_dir: no/such/dir}]\n", "data_dir of 'cifar10' not found"),
    ("regimes: {pre: {pretrained: missing.h5}}\n", "weights for test_resnet not found"),
    ("host_bench: {threads: [0]}\n", "thread counts must be 1 or more"),
    ("training: {model: test_resnet}\n", "'model' is set by the cell itself"),
])
def test_bad_file_is_one_line_naming_the_problem(tmp_path, change, message):
    key = change.split(":")[0]
    kept = "".join(line + "\n" for line in GOOD.splitlines() if not line.startswith(key + ":")
                   and not (key == "datasets" and line.startswith("  - spec")) and
                   not (key == "regimes" and line.startswith("  scratch")))
    path = write(tmp_path, kept + change)
    with pytest.raises(UsageError) as err:
        load_study(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert str(path) in str(err.value)


def test_cli_exit_2_before_training(tmp_path):
    path = write(tmp_path, GOOD.replace("test_squeezenet]", "no_such_model]"))
    done = subprocess.run([sys.executable, "-m", "tflkit", "study", "run", str(path), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "unknown model 'no_such_model'" in done.stderr
    assert not (tmp_path / "o" / "study.db").exists()  # refused before anything was written


def test_init_writes_an_example_that_loads(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tflkit", "study", "init", str(tmp_path / "s.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s.yaml").read_text() == EXAMPLE
    # The example names a data dir and a weights file relative to itself: give it both, and it validates.
    (tmp_path / "data").mkdir()
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"x")
    spec = load_study(tmp_path / "s.yaml")
    assert len(build_cells(spec)) == 3  # 2 models scratch + squeezenet imagenet


def test_a_crashed_worker_leaves_rows_that_say_why(tmp_path):
    """A worker that dies outside any stage (a crash, not a failed stage) still leaves one row per file."""
    from tflkit.study.rows import study_rows
    from tflkit.study.runner import Progress, Recorder
    from tflkit.study.store import open_store

    spec = load_study(write(tmp_path, GOOD))
    cell = build_cells(spec)[0]
    with open_store(tmp_path / "out") as store:
        store.put_cell(cell, tmp_path / "out" / "cells" / cell.id)
        recorder = Recorder(store, Progress(store, spec, [cell], log=lambda _: None))
        recorder({"kind": "start", "cell": cell.id, "stage": "train"})
        recorder.worker_failed(cell, "worker exited with code -9: killed", spec.recipes)
        stages = {s["stage"]: s for s in store.stages(cell.id)}
        rows = study_rows(store)
    assert stages["train"]["status"] == "failed" and "code -9" in stages["train"]["message"]
    assert [(r["recipe"], r["status"]) for r in rows] == [("fp32", "worker_failed"),
                                                          ("static_wi8_ai8", "worker_failed")]
    assert all("code -9" in r["message"] for r in rows)


def test_fingerprint_ignores_settings_that_do_not_shape_the_cell():
    """A setting added to TrainConfig later (finetune_bn) must not make earlier scratch cells look changed; it does
    change a cell that fine-tunes pretrained weights, where it takes effect."""
    from tflkit.study.spec import config_fingerprint

    scratch = {"model": "resnet18", "pretrained": "none", "epochs": 2, "lr": 2e-3}
    assert config_fingerprint(scratch) == config_fingerprint({**scratch, "finetune_bn": "frozen",
                                                              "finetune_lr": 1e-4, "finetune_epochs": 3})
    assert config_fingerprint(scratch) != config_fingerprint({**scratch, "lr": 1e-3})
    head_only = {**scratch, "pretrained": "imagenet", "finetune_epochs": 0}
    assert config_fingerprint(head_only) == config_fingerprint({**head_only, "finetune_bn": "train"})
    finetuned = {**scratch, "pretrained": "imagenet", "finetune_epochs": 1}
    assert config_fingerprint(finetuned) != config_fingerprint({**finetuned, "finetune_bn": "train"})


def test_a_setting_added_later_at_its_default_leaves_recorded_cells_unchanged():
    """A cell recorded before TrainConfig had `precision` and `jit_compile` (the mcu_cifar10 study's) has the
    fingerprint of the same cell with them at their defaults, which is what it trained with; any other value is a
    change."""
    from tflkit.study.spec import config_fingerprint

    recorded = {"model": "resnet8", "pretrained": "none", "epochs": 40, "lr": 2e-3, "batch_size": 64}
    today = {**recorded, "precision": "float32", "jit_compile": False, "strict": False}
    assert config_fingerprint(recorded) == config_fingerprint(today)
    assert config_fingerprint(recorded) != config_fingerprint({**today, "precision": "mixed_bfloat16"})
