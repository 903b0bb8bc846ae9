"""The tune search space: the default per model, a YAML file laid over it, and one-line errors (exit 2) for an
unknown parameter, an empty range or a wrong type, before anything trains."""

from __future__ import annotations

import pytest

from tflkit.core.errors import UsageError
from tflkit.core.trainconfig import TrainConfig
from tflkit.tune.space import default_space, load_space, parse_space


def _write(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_default_space_covers_the_training_knobs_and_differs_by_family():
    space = default_space("mobilenetv3_small_100")
    assert {"lr", "batch_size", "optimizer", "weight_decay", "label_smoothing", "lr_schedule", "warmup_epochs",
            "augment"} <= set(space.names())
    lr = {p.name: p for p in space.params}["lr"]
    assert lr.log and lr.low < lr.high
    assert "finetune_lr" not in space.names()
    assert {"finetune_epochs", "finetune_lr"} <= set(default_space("mobilenetv3_small_100", pretrained=True).names())
    resnet_lr = {p.name: p for p in default_space("resnet18").params}["lr"]
    assert resnet_lr.high > lr.high  # SGD-style range for ResNet


def test_space_file_overrides_default_coerces_yaml_strings_and_fixes_values(tmp_path):
    path = _write(tmp_path, "lr: {low: 1e-4, high: 1e-2, log: true}\n"  # PyYAML reads 1e-4 as a string
                            "batch_size: {choices: [32, 64]}\nlabel_smoothing: 0.1\nwarmup_epochs: null\n")
    space = load_space(path, "test_mobilenetv3")
    params = {p.name: p for p in space.params}
    assert params["lr"].low == pytest.approx(1e-4) and isinstance(params["lr"].low, float)
    assert params["batch_size"].choices == (32, 64)
    assert space.fixed == {"label_smoothing": 0.1}
    assert "warmup_epochs" not in params and "label_smoothing" not in params
    assert "augment" in params  # kept from the default space


@pytest.mark.parametrize("text, message", [
    ("learning_rate: {low: 0.1, high: 1}\n", "unknown parameter 'learning_rate'"),
    ("model: {choices: [resnet18]}\n", "unknown parameter 'model' (not searchable"),
    ("lr: {low: 0.01, high: 0.001}\n", "empty range"),
    ("lr: {low: 0.0, high: 0.1, log: true}\n", "log range needs low > 0"),
    ("batch_size: {choices: []}\n", "empty choices"),
    ("batch_size: {choices: [32, big]}\n", "batch_size must be an integer, got 'big'"),
    ("lr: {low: fast, high: 1}\n", "lr must be a number, got 'fast'"),
    ("optimizer: {choices: [adam, lion]}\n", "unknown choice 'lion'"),
    ("lr: {low: 0.001, high: 0.1, scale: log}\n", "unknown field(s) scale"),
    ("lr: {low: 0.001}\n", "needs both low and high"),
    ("- lr\n", "expected a mapping"),
])
def test_bad_space_file_is_one_usage_error_line(tmp_path, text, message):
    with pytest.raises(UsageError) as info:
        load_space(_write(tmp_path, text), "test_mobilenetv3")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_space_checked_against_the_base_config():
    base = TrainConfig(model="test_mobilenetv3", train_limit=64, batch_size=32)
    with pytest.raises(UsageError, match=r"batch_size=128 is not a valid setting here .*below one batch"):
        parse_space({"batch_size": {"choices": [32, 128]}}).check_against(base)
    with pytest.raises(UsageError, match="finetune_epochs"):
        parse_space({"finetune_epochs": {"low": 1, "high": 2}}).check_against(base)
    parse_space({"batch_size": {"choices": [32, 64]}}).check_against(base)


def test_cli_bad_space_file_exits_2_with_one_line(tmp_path, capsys):
    from tflkit.cli import main

    space = _write(tmp_path, "lr: {low: 0.01, high: 0.001}\n")
    code = main(["tune", "--model", "test_mobilenetv3", "--dataset", "shapes", "--trials", "2",
                 "--out", str(tmp_path / "out"), "--space", str(space)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "empty range" in err and err.startswith("tflkit: error:")
    assert not (tmp_path / "out" / "tune.db").exists()  # nothing stored for a search that cannot start


def test_cli_budget_without_a_recipe_objective_exits_2(tmp_path, capsys):
    from tflkit.cli import main

    code = main(["tune", "--model", "test_mobilenetv3", "--dataset", "shapes", "--out", str(tmp_path / "o"),
                 "--max-size-mb", "1"])
    assert code == 2 and "--objective RECIPE" in capsys.readouterr().err
    code = main(["tune", "--model", "test_mobilenetv3", "--dataset", "shapes", "--out", str(tmp_path / "o"),
                 "--objective", "int8"])
    assert code == 2 and "unknown recipe" in capsys.readouterr().err


def test_best_yaml_of_a_trial_run_on_another_machine_is_rebuilt_from_the_settings(tmp_path):
    """With a shared --storage the best trial's run directory may be elsewhere: best.yaml comes from the search's
    settings, the space's fixed keys and the trial's parameters, and `tflkit train --config` takes it."""
    optuna = pytest.importorskip("optuna")
    from tflkit.core.config import load_yaml
    from tflkit.tune.report import write_best_yaml
    from tflkit.tune.search import TuneSettings

    settings = TuneSettings.of("test_mobilenetv3", "shapes", tmp_path, epochs=2, train_limit=256)
    space = parse_space({"lr": {"low": 1e-3, "high": 1e-2, "log": True}, "augment": {"choices": ["none", "mixup"]},
                         "label_smoothing": 0.1})
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    space.sample(trial)
    trial.set_user_attr("run_dir", "/elsewhere/trials/trial_0000")
    study.tell(trial, 0.5)
    write_best_yaml(study.best_trial, settings, space, tmp_path / "best.yaml")
    config = load_yaml(TrainConfig, tmp_path / "best.yaml")
    assert config.lr == pytest.approx(study.best_trial.params["lr"]) and config.label_smoothing == 0.1
    assert (config.model, config.epochs, config.train_limit) == ("test_mobilenetv3", 2, 256)


def test_baseline_is_the_default_config_where_the_space_holds_it():
    space = parse_space({"lr": {"low": 1e-3, "high": 1e-2, "log": True}, "batch_size": {"choices": [32, 64]},
                         "augment": {"choices": ["none", "basic"]}, "label_smoothing": {"low": 0.05, "high": 0.2}})
    base = TrainConfig(model="test_mobilenetv3")
    assert space.baseline(base) == {"lr": 1e-3, "augment": "none"}  # batch 128 and smoothing 0 lie outside
    assert space.baseline(base) == {k: v for k, v in default_space("mobilenetv3_small_100").baseline(base).items()
                                    if k in ("lr", "augment")}
    assert set(default_space("mobilenetv3_small_100").baseline(base)) == set(default_space("mobilenetv3_small_100")
                                                                               .names())
