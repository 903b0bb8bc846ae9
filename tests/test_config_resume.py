"""`tflkit train` end to end with a YAML config (`lr: 1e-3` trains) and `--resume --epochs N` (trains the extra
epochs; another changed setting is refused with one line, exit 2). A tiny model on 64 shapes images."""

from __future__ import annotations

import json

import pytest
import yaml

from tflkit.cli import main


@pytest.mark.slow  # two trainings through the CLI: 20 s of CPU, 75 s wall on the shared 2-core machine
def test_yaml_config_trains_and_resume_applies_more_epochs(tmp_path, capsys):
    config = tmp_path / "train.yaml"
    config.write_text("model: test_mobilenetv3\ndataset: shapes\nepochs: 1\nbatch_size: 32\nlr: 1e-3\n"
                      "train_limit: 64\nbn_momentum: 0.9\n")
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["ok"] and reply["command"] == "train" and reply["errors"] == []
    assert reply["results"][0]["epochs_done"] == 1
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["lr"] == 1e-3 and isinstance(saved["lr"], float) and saved["image_size"] == 32  # resolved

    assert main(["train", "--out", str(run), "--resume", "--epochs", "2", "--json"]) == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["results"][0]["epochs_done"] == 2
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 2
    assert json.loads((run / "state.json").read_text())["epochs_done"] == 2
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 2

    assert main(["train", "--out", str(run), "--resume", "--epochs", "3", "--lr", "0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--lr 0.001, not 0.1; only --epochs can change" in err and "\n" not in err
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 2  # a refused resume changes nothing
