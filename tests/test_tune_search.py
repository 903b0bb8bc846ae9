"""tflkit tune in one process on a tiny shapes slice: the Keras objective end to end (results a user acts on, a
rerun that continues the stored search), and a recipe objective with a budget (infeasible trials recorded)."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("optuna")

from tflkit.core.config import load_yaml  # noqa: E402
from tflkit.core.trainconfig import TrainConfig  # noqa: E402
from tflkit.tune.objective import Objective  # noqa: E402
from tflkit.tune.search import (  # noqa: E402
    TuneSettings,
    count_states,  # noqa: E402
    run_search,
)

SPACE = "batch_size: {choices: [32, 64]}\nlr: {low: 1e-3, high: 1e-2, log: true}\n"


def _settings(tmp_path, **kw):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    return TuneSettings.of("test_mobilenetv3", "shapes", tmp_path / "tune", space=str(space),
                        epochs=1, train_limit=128, bn_momentum=0.9, **kw)


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_shapes):
    """A finished 3-trial search with the Keras objective."""
    tmp_path = tmp_path_factory.mktemp("searched")
    settings = _settings(tmp_path, trials=3)
    return settings, run_search(settings, log=lambda *_: None, source=tiny_shapes)


@pytest.mark.slow  # the 3-trial fixture: ~30 s of CPU, 140 s wall on the shared 2 cores
def test_keras_objective_writes_results_a_user_acts_on(searched):
    settings, study = searched
    assert count_states(study) == {"COMPLETE": 3}
    out = Path(settings.out)
    for t in study.trials:
        assert (out / "trials" / f"trial_{t.number:04d}" / "model.keras").is_file()
        assert t.intermediate_values  # the epoch callback reported val top-1
        assert t.value == pytest.approx(t.user_attrs["keras_val_top1"])

    baseline = study.trials[0]  # TrainConfig's defaults where the space holds them (batch 128 is not in it)
    assert baseline.user_attrs["baseline"] is True
    assert baseline.params["lr"] == pytest.approx(1e-3) and baseline.params["optimizer"] == "adam"
    assert baseline.params["augment"] == "none" and baseline.params["batch_size"] in (32, 64)
    assert not any(t.user_attrs.get("baseline") for t in study.trials[1:])

    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3
    assert {"param_lr", "param_batch_size", "param_augment", "keras_val_top1"} <= set(rows[0])

    best = max(study.trials, key=lambda t: (t.value, -t.number))
    config = load_yaml(TrainConfig, out / "best.yaml")
    assert config.lr == pytest.approx(best.params["lr"]) and config.batch_size == best.params["batch_size"]
    assert config.augment == best.params["augment"] and config.train_limit == 128
    import yaml

    overrides = yaml.safe_load((out / "best_study_overrides.yaml").read_text())["overrides"]["test_mobilenetv3"]
    assert overrides == best.params
    TrainConfig(model="test_mobilenetv3", **overrides).check()

    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3  # history, importances, top-1 per augmentation preset
    md = (out / "report.md").read_text()
    assert "Parameter importances" in md and f"Best: trial {best.number}" in md


@pytest.mark.slow
def test_rerun_finds_the_search_done_and_other_settings_are_refused(searched, tiny_shapes):
    from tflkit.core.errors import UsageError

    settings, _ = searched
    assert count_states(run_search(settings, log=lambda *_: None, source=tiny_shapes)) == {"COMPLETE": 3}
    with pytest.raises(UsageError, match="other settings .*epochs"):
        run_search(replace(settings, epochs=2), log=lambda *_: None, source=tiny_shapes)


@pytest.mark.slow
def test_more_trials_continue_the_search_and_best_yaml_trains(searched, tiny_shapes, tmp_path):
    settings, _ = searched
    more = run_search(replace(settings, trials=4), log=lambda *_: None, source=tiny_shapes)
    assert count_states(more) == {"COMPLETE": 4}

    from tflkit.cli import main

    assert main(["train", "--config", str(Path(settings.out) / "best.yaml"), "--out", str(tmp_path / "retrain")]) == 0
    assert (tmp_path / "retrain" / "model.keras").is_file()


@pytest.mark.slow
def test_recipe_objective_with_a_budget_records_infeasible_trials(tmp_path, tiny_shapes):
    objective = Objective(target="static_wi8_ai8", max_size_mb=0.001, max_latency_ms=1e6, bench_runs=10)
    settings = _settings(tmp_path, trials=1, objective=objective)
    study = run_search(settings, log=lambda *_: None, source=tiny_shapes)
    [trial] = study.trials
    assert trial.state.name == "COMPLETE"
    attrs = trial.user_attrs
    assert trial.value == pytest.approx(attrs["tflite_val_top1"])  # the int8 file's val top-1, not Keras'
    assert attrs["size_bytes"] > 1000 and 0 < attrs["median_ms"] < 1e6
    assert "size" in attrs["infeasible_reason"] and "latency" not in attrs["infeasible_reason"]
    # Optuna holds the constraints too (what its sampler reads): size over budget (> 0), latency within (<= 0)
    assert attrs["constraints"]["size_mb"] > 0 and attrs["constraints"]["latency_ms"] <= 0
    stored = trial.constraints if hasattr(trial, "constraints") else trial.system_attrs["constraints"]
    assert sorted(stored.values() if isinstance(stored, dict) else stored) == sorted(attrs["constraints"].values())
    out = tmp_path / "tune"
    assert not (out / "best.yaml").exists()  # no trial meets the budget
    assert "Best: none" in (out / "report.md").read_text()
    row = next(csv.DictReader((out / "trials.csv").open()))
    assert row["feasible"] == "False" and "size" in row["infeasible_reason"]


def test_epoch_callback_reports_and_the_median_pruner_stops_a_weak_trial(tmp_path, tiny_shapes):
    """A real in-memory study whose first trial reached 100% after each epoch: the median pruner stops the second
    trial after its first epoch, and training ends there (one epoch in its history, not two)."""
    import optuna

    from tflkit.training.loop import train
    from tflkit.tune.search import _pruning_callback

    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    strong = study.ask()
    for epoch in range(2):
        strong.report(1.0, epoch)
    study.tell(strong, 1.0)
    trial = study.ask()
    callback = _pruning_callback(trial, total_epochs=2, log=lambda *_: None)
    config = TrainConfig(model="test_mobilenetv3", epochs=2, batch_size=32, train_limit=128, bn_momentum=0.9)
    history = train(config, tmp_path / "run", verbose=0, source=tiny_shapes, callbacks=[callback])
    assert callback.pruned_at == 0 and len(history["val_top1"]) == 1
    assert study._storage.get_trial(trial._trial_id).intermediate_values == {0: history["val_top1"][0]}
