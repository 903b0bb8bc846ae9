"""The paper's protocol as a study file (benchmarks/studies/paper_protocol.yaml): every cell it declares builds,
and --max-steps cuts each to a few steps; the slow test runs one cell per model and dataset that way on the real
data (from scratch: the ImageNet regime downloads weights, which this machine cannot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "benchmarks" / "studies" / "paper_protocol.yaml"
DATA = Path(os.path.expanduser("~/.cache/tflkit-data"))
MODELS = ("mobilenetv3_small_100", "resnet18", "squeezenet1_1", "efficientnetv2_s", "shufflenetv2_x1_0")


def test_every_cell_of_the_protocol_builds_and_max_steps_cuts_it():
    from tflkit.study.spec import build_cells, load_study, with_max_steps

    spec = load_study(STUDY)
    cells = build_cells(spec)
    assert len(cells) == 5 * 3 * 2 * 3  # models x datasets x regimes x seeds
    assert {c.model for c in cells} == set(MODELS) and {c.config["seed"] for c in cells} == {0, 1, 2}
    scratch = next(c.config for c in cells if c.id == "resnet18.cifar10.scratch.s0")
    assert scratch["epochs"] == 50 and scratch["patience"] == 10 and scratch["image_size"] == 224
    assert scratch["augment"] == "paper" and scratch["train_limit"] is None
    assert next(c.config for c in cells if c.id == "squeezenet1_1.cifar10.scratch.s0")["lr"] == 5e-4
    pretrained = next(c.config for c in cells if c.id == "resnet18.tiny_imagenet.imagenet.s1")
    assert pretrained["epochs"] + pretrained["finetune_epochs"] == 50

    short = with_max_steps(spec, 2)
    assert short.eval_limit == 32 and short.host_bench.runs == 3 and short.calib_samples == 16
    for cell in build_cells(short):  # batches of 16: the protocol's 128 at 224 px is 22 GB for EfficientNetV2-S
        assert cell.config["epochs"] == 1 and cell.config["train_limit"] == 32 and cell.config["batch_size"] == 16
        assert cell.config["patience"] is None
        assert cell.config["finetune_epochs"] in (0, 1)


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "cifar-10-batches-py").is_dir(), reason="real datasets not materialized")
def test_the_protocol_runs_end_to_end_for_a_step_per_cell(tmp_path):
    cells = [f"{m}.cifar10.scratch.s0" for m in MODELS]
    cells += ["mobilenetv3_small_100.cifar100.scratch.s0", "mobilenetv3_small_100.tiny_imagenet.scratch.s0"]
    out = tmp_path / "check"
    run = subprocess.run([sys.executable, "-m", "tflkit", "study", "run", str(STUDY), "--out", str(out),
                          "--max-steps", "1", "--cells", *cells, "--json"], capture_output=True, text=True,
                         timeout=7200)  # 35-50 min alone on 2 cores; 67 min of stages beside other jobs (2026-12-03)
    summary = json.loads(run.stdout)
    assert run.returncode == 0 and summary["ok"], run.stderr[-3000:]
    assert summary["cells"] == len(cells) and summary["stages_failed"] == 0
    from tflkit.study.report import load_study

    rows, _, meta = load_study(out)
    assert meta["max_steps"] == 1
    assert {(r["cell"], r["recipe"]) for r in rows if r["status"] == "ok"} >= {
        (c.rsplit(".", 1)[0], "fp32") for c in cells}
