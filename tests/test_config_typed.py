"""One typed config: TrainConfig generates `tflkit train`'s flags, loads YAML with type coercion and one-line
errors (exit 2), and decides what --resume may change. No training here (see test_config_resume.py)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import pytest
import yaml

from tflkit.cli import main
from tflkit.core.config import add_flags, coerce, flag_values, from_dict, load_yaml, save_yaml
from tflkit.core.errors import UsageError
from tflkit.core.trainconfig import AUGMENT_PRESETS, TrainConfig
from tflkit.pipeline.demo import DemoSettings


def write_yaml(path, text):
    path.write_text(text)
    return path


def test_yaml_numbers_pyyaml_reads_as_strings_are_coerced_by_annotation(tmp_path):
    path = write_yaml(tmp_path / "c.yaml", "model: resnet18\nlr: 1e-3\nfinetune_lr: 5e-5\nepochs: '12'\n"
                                          "warmup_epochs: 1\nimage_size: null\nsmall_input: true\n")
    assert isinstance(yaml.safe_load(path.read_text())["lr"], str)  # the reason coercion exists
    config = load_yaml(TrainConfig, path)
    assert config.lr == 1e-3 and isinstance(config.lr, float)
    assert config.finetune_lr == 5e-5
    assert config.epochs == 12 and isinstance(config.epochs, int)
    assert config.warmup_epochs == 1.0 and isinstance(config.warmup_epochs, float)
    assert config.image_size is None and config.small_input is True


@pytest.mark.parametrize("text, message", [
    ("model: resnet18\nlearning_rate: 0.1\n", "unknown key(s) learning_rate; valid keys:"),
    ("model: resnet18\nepochs: ten\n", "epochs must be an integer, got 'ten'"),
    ("model: resnet18\nepochs: 2.5\n", "epochs must be an integer, got 2.5"),
    ("model: resnet18\nlr: fast\n", "lr must be a number, got 'fast'"),
    ("model: resnet18\nbatch_size: true\n", "batch_size must be an integer, got True"),
    ("model: resnet18\nsmall_input: 1\n", "small_input must be true or false or null, got 1"),
    ("model: resnet18\nepochs: null\n", "epochs must be an integer, got None"),
    ("model: [resnet18]\n", "model must be a string"),
    ("lr: 0.1\n", "missing key(s) model"),
    ("- model\n", "expected a mapping"),
])
def test_bad_yaml_is_one_line_usage_error(tmp_path, text, message):
    path = write_yaml(tmp_path / "c.yaml", text)
    with pytest.raises(UsageError) as err:
        load_yaml(TrainConfig, path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_coerce_never_mixes_bools_and_numbers():
    assert coerce("3", int) == 3 and coerce(3, float) == 3.0 and coerce(" 1e-4 ", float) == 1e-4
    for value, kind in ((True, int), (False, float), (1, bool), ("yes", bool), (None, int)):
        with pytest.raises(ValueError):
            coerce(value, kind)


@dataclass(frozen=True)
class Inner:
    runs: int = 1


@dataclass(frozen=True)
class Outer:
    threads: tuple[int, ...] = (1,)
    recipes: tuple[str, ...] = ()
    limit: int | None = 5
    inner: Inner = Inner()


def test_one_loader_for_nested_optional_and_list_fields():
    """tflkit.core.config.from_dict is the loader of every config: optional, list and nested fields coerce alike."""
    from tflkit.core.config import from_dict

    got = from_dict(Outer, {"threads": ["1", 2], "recipes": "fp32", "limit": None, "inner": {"runs": "3"}})
    assert got == Outer(threads=(1, 2), recipes=("fp32",), limit=None, inner=Inner(runs=3))
    with pytest.raises(UsageError, match=r"x.yaml: inner.runs must be an integer, got 'lots'"):
        from_dict(Outer, {"inner": {"runs": "lots"}}, source="x.yaml")


def test_saved_config_round_trips(tmp_path):
    config = TrainConfig(model="resnet18", lr=3e-4, image_size=64, augment="mixup")
    save_yaml(config, tmp_path / "config.yaml")
    assert load_yaml(TrainConfig, tmp_path / "config.yaml") == config
    settings = DemoSettings(recipes=("fp32", "fp16"), threads=(1, 4))
    save_yaml(settings, tmp_path / "demo.yaml")
    assert load_yaml(DemoSettings, tmp_path / "demo.yaml") == settings


def train_parser():
    parser = argparse.ArgumentParser(prog="t")
    add_flags(parser, TrainConfig)
    return parser


def test_every_field_is_a_flag_with_help_and_choices_listed():
    parser = train_parser()
    flags = {a.dest: a for a in parser._actions if a.dest != "help"}
    assert set(flags) == {f.name for f in dataclasses.fields(TrainConfig)}
    for action in flags.values():
        assert action.help and action.default is None, action.dest
    assert list(flags["augment"].choices) == list(AUGMENT_PRESETS)
    assert all(name in flags["augment"].help for name in AUGMENT_PRESETS)
    assert "(default: 128)" in flags["batch_size"].help and "cosine" in flags["lr_schedule"].help
    assert "--lr-schedule" in parser.format_help()


def test_flags_give_typed_values_and_only_what_was_typed():
    args = train_parser().parse_args(["--model", "resnet18", "--lr", "1e-3", "--epochs", "3", "--no-small-input",
                                      "--augment", "mixup"])
    given = flag_values(args, TrainConfig)
    assert given == {"model": "resnet18", "lr": 1e-3, "epochs": 3, "small_input": False, "augment": "mixup"}
    assert from_dict(TrainConfig, given) == TrainConfig(model="resnet18", lr=1e-3, epochs=3, small_input=False,
                                                        augment="mixup")
    with pytest.raises(SystemExit):
        train_parser().parse_args(["--augment", "autoaugment"])  # not a preset: argparse lists the choices


def test_resume_applies_epochs_and_refuses_other_changes():
    saved = TrainConfig(model="resnet18", epochs=10, image_size=32, small_input=True)
    assert saved.resumed_with({"epochs": 20}, "runs/r").epochs == 20
    assert saved.resumed_with({"epochs": 10, "model": "resnet18", "image_size": 32, "lr": None}, "r") == saved
    with pytest.raises(UsageError, match=r"runs/r holds a run with --lr 0.001, not 0.01; only --epochs can change"):
        saved.resumed_with({"lr": 0.01, "epochs": 20}, "runs/r")
    with pytest.raises(UsageError, match="can only grow"):
        saved.resumed_with({"epochs": 5}, "runs/r")
    with pytest.raises(UsageError, match="cosine schedule"):
        dataclasses.replace(saved, lr_schedule="cosine").resumed_with({"epochs": 20}, "runs/r")
    with pytest.raises(UsageError, match="fine-tuning phase"):
        dataclasses.replace(saved, pretrained="imagenet", finetune_epochs=3).resumed_with({"epochs": 20}, "runs/r")


@pytest.mark.parametrize("text, message", [
    ("model: resnet18\nlearning_rate: 0.1\n", "unknown key(s) learning_rate"),
    ("model: resnet18\nepochs: ten\n", "epochs must be an integer, got 'ten'"),
    ("model: resnet18\noptimizer: adagrad\n", "unknown optimizer 'adagrad'; choose from: adam, adamw, sgd"),
])
def test_train_cli_bad_config_exits_2_with_one_line(tmp_path, capsys, text, message):
    path = write_yaml(tmp_path / "c.yaml", text)
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tflkit: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "run").exists()


def test_demo_on_another_models_run_is_refused_with_one_line(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    save_yaml(TrainConfig(model="mobilenetv3_small_050", dataset="shapes", epochs=5, batch_size=64, lr=3e-3,
                          image_size=32, small_input=True), out / "config.yaml")
    (out / "state.json").write_text('{"epochs_done": 5}')
    assert main(["demo", "--out", str(out), "--model", "resnet18"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--model mobilenetv3_small_050, not resnet18" in err and "--fresh starts over" in err
    assert "\n" not in err
    assert (out / "config.yaml").is_file()  # nothing was touched


def test_demo_fresh_replaces_the_old_run_but_not_for_a_typo(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    save_yaml(TrainConfig(model="mobilenetv3_small_050"), out / "config.yaml")
    (out / "state.json").write_text('{"epochs_done": 5}')
    assert main(["demo", "--out", str(out), "--model", "nosuchnet", "--fresh"]) == 2
    assert "unknown model 'nosuchnet'" in capsys.readouterr().err
    assert (out / "state.json").exists()  # checked before anything is removed
    # --fresh removes the old run; the new one's bad epoch count then stops it before anything is written
    assert main(["demo", "--out", str(out), "--model", "test_resnet", "--epochs", "0", "--fresh"]) == 2
    assert "epochs must be at least 1" in capsys.readouterr().err
    assert not (out / "config.yaml").exists() and not (out / "state.json").exists()
