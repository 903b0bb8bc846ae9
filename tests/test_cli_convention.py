"""One CLI convention, asserted for every command in one table: exit 0 when everything asked for succeeded, 1 when
some item failed (the rest done and reported), 2 for usage errors and missing inputs; under --json one object on
stdout, {"command", "ok", "results", "errors"}, with ok exactly when the exit code is 0; an error is one line.

The cheap paths only: bad arguments, missing files, a corrupt .tflite beside a good one, a run directory holding
nothing but its config. The fake adb (tests/doubles, a TEST DOUBLE) stands in for a phone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from doubles.fake_phone import fake_phone  # noqa: F401  (fixture)

from tflkit.cli import build_parser, main
from tflkit.core.config import save_yaml
from tflkit.core.trainconfig import TrainConfig


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """GOOD: a float .tflite for 32x32 RGB and 10 classes (the shapes dataset's); CORRUPT: zeros named .tflite;
    RUN: a run directory with only its config.yaml; DEMO: a demo directory of another model; GARBAGE: a log."""
    from tflkit.core.tfenv import quiet_tensorflow

    tf = quiet_tensorflow()
    import keras

    root = tmp_path_factory.mktemp("convention")
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, strides=4)(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x)))
    (root / "good.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    (root / "corrupt.tflite").write_bytes(b"\x00" * 64)
    (root / "run").mkdir()
    save_yaml(TrainConfig(model="test_resnet", image_size=32, small_input=True), root / "run" / "config.yaml")
    (root / "demo").mkdir()
    save_yaml(TrainConfig(model="mobilenetv3_small_050", epochs=5, batch_size=64, lr=3e-3, image_size=32,
                          small_input=True), root / "demo" / "config.yaml")
    (root / "demo" / "state.json").write_text('{"epochs_done": 5}')
    (root / "garbage.log").write_text("not a benchmark_model log\n")
    return root


# case -> (argv, exit code, what the JSON results hold: a count, or None without --json). The command is the
# argv's leading words (`android parse`). GOOD, CORRUPT, RUN, DEMO, GARBAGE name the fixture's files, MISSING a
# path that is not there, OUT a fresh directory.
CASES = {
    "models": (["models", "--json"], 0, ">0"),
    "models bad flag": (["models", "--bogus", "--json"], 2, 0),
    "train no model": (["train", "--out", "OUT", "--json"], 2, 0),
    "train unknown model": (["train", "--model", "nosuchnet", "--out", "OUT", "--json"], 2, 0),
    "train bad value": (["train", "--model", "test_resnet", "--lr", "fast", "--out", "OUT", "--json"], 2, 0),
    "train bad choice": (["train", "--model", "test_resnet", "--augment", "autoaugment", "--out", "OUT"], 2, None),
    "train resume nothing": (["train", "--resume", "--out", "MISSING", "--json"], 2, 0),
    "data": (["data", "shapes", "--json"], 0, 1),
    "data unknown": (["data", "nosuchdata", "--json"], 2, 0),
    "data missing dir": (["data", "cifar10", "--data-dir", "MISSING", "--json"], 2, 0),
    "convert missing run": (["convert", "MISSING", "--json"], 2, 0),
    "convert untrained run": (["convert", "RUN", "--json"], 2, 0),
    "eval": (["eval", "GOOD", "--dataset", "shapes", "--json"], 0, 1),
    "eval one corrupt": (["eval", "GOOD", "CORRUPT", "--dataset", "shapes", "--json"], 1, 1),
    "eval missing": (["eval", "MISSING", "--dataset", "shapes", "--json"], 2, 0),
    "bench": (["bench", "GOOD", "--runs", "2", "--warmup", "0", "--json"], 0, 1),
    "bench one corrupt": (["bench", "GOOD", "CORRUPT", "--runs", "2", "--warmup", "0", "--json"], 1, 2),
    "bench missing": (["bench", "MISSING", "--json"], 2, 0),
    "report nothing measured": (["report", "RUN", "--no-measure", "--json"], 0, 0),
    "report missing": (["report", "MISSING", "--json"], 2, 0),
    "demo bad value": (["demo", "--epochs", "many", "--json"], 2, 0),
    "demo of another model": (["demo", "--out", "DEMO", "--model", "test_resnet", "--json"], 2, 0),
    "inspect": (["inspect", "GOOD", "--json"], 0, 1),
    "inspect corrupt": (["inspect", "CORRUPT", "--json"], 1, 0),
    "android devices": (["android", "devices", "--json"], 0, 0),
    "android setup bad flag": (["android", "setup", "--bogus"], 2, None),
    "android bench bad delegate": (["android", "bench", "GOOD", "--delegate", "tpu"], 2, None),
    "android parse garbage": (["android", "parse", "GARBAGE", "--json"], 1, 1),
    "android parse missing": (["android", "parse", "MISSING", "--json"], 2, 0),
    "study init": (["study", "init", "OUT/study.yaml"], 0, None),
    "study run missing": (["study", "run", "MISSING", "--out", "OUT", "--json"], 2, 0),
    "study report missing": (["study", "report", "MISSING", "--json"], 2, 0),
    "pick missing": (["pick", "MISSING", "--json"], 2, 0),
    "inspect missing": (["inspect", "MISSING", "--json"], 2, 0),
    "android bench missing": (["android", "bench", "MISSING"], 2, None),
    "tune unknown model": (["tune", "--model", "nosuchnet", "--dataset", "shapes", "--out", "OUT"], 2, None),
    "mcu": (["mcu", "GOOD", "--board", "nrf52840", "--json"], 0, 1),
    "mcu one corrupt": (["mcu", "GOOD", "CORRUPT", "--board", "nrf52840", "--json"], 1, 1),
    "mcu missing": (["mcu", "MISSING", "--json"], 2, 0),
    "mcu unknown board": (["mcu", "GOOD", "--board", "nosuchboard", "--json"], 2, 0),
    "weights import missing": (["weights", "import", "MISSING", "--model", "test_resnet", "--out", "OUT/m.keras",
                                "--json"], 2, 0),
}


def _argv(argv, files, tmp_path):
    names = {"GOOD": files / "good.tflite", "CORRUPT": files / "corrupt.tflite", "RUN": files / "run",
             "DEMO": files / "demo", "GARBAGE": files / "garbage.log", "MISSING": tmp_path / "missing",
             "OUT": tmp_path / "out"}
    (tmp_path / "out").mkdir(exist_ok=True)
    return [str(names[a]) if a in names else a.replace("OUT/", f"{tmp_path / 'out'}/") for a in argv]


def _check(case, files, tmp_path, capsys):
    argv, code, results = case
    assert main(_argv(argv, files, tmp_path)) == code
    out, err = capsys.readouterr()
    if code == 2:  # one line: `tflkit: error: ...`
        assert err.startswith("tflkit: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    if results is None:
        return
    reply = json.loads(out)
    assert list(reply)[:4] == ["command", "ok", "results", "errors"]
    assert reply["command"] == _command_words(argv)
    assert reply["ok"] is (code == 0) and isinstance(reply["results"], list)
    assert bool(reply["errors"]) is (code != 0)
    assert all(set(e) == {"item", "message"} and e["message"] for e in reply["errors"])
    if results == ">0":
        assert reply["results"]
    else:
        assert len(reply["results"]) == results


def _command_words(argv) -> str:
    """The argv's leading subcommand words, as the parser knows them: `android parse`."""
    words, parser = [], build_parser()
    for token in argv:
        children = dict(_children(parser))
        if token not in children:
            break
        words.append(token)
        parser = children[token]
    return " ".join(words)


@pytest.mark.parametrize("name", CASES)
def test_exit_code_and_json(name, files, tmp_path, capsys, fake_phone):  # noqa: F811
    _check(CASES[name], files, tmp_path, capsys)


def _children(parser):
    for action in parser._actions:  # argparse has no public walk of its subparsers
        if action.dest.endswith("command") and isinstance(action.choices, dict):
            return action.choices.items()
    return ()


def _leaves(parser, words=()):
    children = list(_children(parser))
    if not children:
        yield " ".join(words), parser
    for name, child in children:
        yield from _leaves(child, (*words, name))


def test_the_table_covers_every_command():
    table = {_command_words(argv) for argv, _, _ in CASES.values()}
    assert {name for name, _ in _leaves(build_parser())} <= table


def test_every_flag_has_help_and_every_command_takes_verbose():
    missing = set()
    for name, parser in _leaves(build_parser()):
        assert "--verbose" in parser._option_string_actions, name
        for action in parser._actions:
            if action.dest != "help" and not action.help:
                missing.add((name, action.dest))
    assert missing == set()


def test_recipe_and_model_names_are_listed_in_help():
    parser = dict(_leaves(build_parser()))
    convert, train = parser["convert"].format_help(), parser["train"].format_help()
    assert "static_wi8_ai16" in convert and "prune50_static_wi8_ai8" in convert
    assert "mobilenetv3_small_100" in train and "cosine" in train and "randaugment" in train


def test_tensorflow_noise_stays_off_the_terminal_unless_verbose(files):
    """LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." on its own (fd 2, ignoring
    TF_CPP_MIN_LOG_LEVEL): filtered by default, shown with --verbose."""
    command = [sys.executable, "-m", "tflkit", "bench", str(files / "good.tflite"), "--runs", "2", "--warmup", "0"]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=120)
    loud = subprocess.run([*command, "--verbose"], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == loud.returncode == 0, quiet.stderr + loud.stderr
    assert "XNNPACK delegate" in loud.stderr
    assert quiet.stderr == "" and "median" in quiet.stdout
    assert Path(files / "good.tflite").is_file()
