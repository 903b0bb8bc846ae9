"""Errors a user can cause: one line, no traceback, a non-zero exit (2 for names and arguments)."""

import subprocess
import sys

import pytest

from tflkit.cli import main
from tflkit.core.fileio import atomic_path, atomic_write_bytes


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--model", "nosuchnet", "--out", "x"], "unknown model 'nosuchnet'; choose from:"),
        (["eval", "m.keras", "--dataset", "nosuchdata"], "unknown dataset 'nosuchdata'; choose from:"),
    ],
)
def test_unknown_names_exit_2_with_the_choices(capsys, argv, expected):
    code, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("tflkit: error: ") and expected in err and "\n" not in err


def test_unknown_recipe_exit_2(capsys, tiny_run):
    code, err = run_cli(capsys, "convert", str(tiny_run), "--recipe", "int8")
    assert code == 2 and "unknown recipe 'int8'; choose from:" in err and "static_wi8_ai8" in err


def test_missing_and_corrupt_models(capsys, tmp_path):
    code, err = run_cli(capsys, "bench", str(tmp_path / "missing.tflite"))
    assert code == 2 and "model file not found" in err  # a missing input: exit 2, like a bad argument
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\x00" * 64)
    code, err = run_cli(capsys, "bench", str(corrupt))
    assert code == 1
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(b"PK\x03\x04 not really a zip")
    code, err = run_cli(capsys, "eval", str(truncated), "--dataset", "shapes")
    assert code == 1 and "cannot load Keras model" in err and "\n" not in err
    assert "not a zip archive" in err and "not found" not in err  # Keras alone says "File not found" here


def test_truncated_tflite_is_a_clear_error(capsys, tiny_run, tmp_path):
    good = next((tiny_run / "tflite").glob("*.fp32.tflite")).read_bytes()
    bad = tmp_path / "half.tflite"
    bad.write_bytes(good[: len(good) // 2])
    code, err = run_cli(capsys, "eval", str(bad), "--dataset", "shapes")
    assert code == 1 and err.startswith("tflkit: error: cannot load") and "\n" not in err


def test_bench_of_a_corrupt_file_reports_a_failed_row(capsys, tmp_path):
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\x00" * 64)
    code = main(["bench", str(corrupt)])
    out = capsys.readouterr().out
    assert code == 1 and "load_failed" in out and "no TFL3 identifier" in out


def test_not_a_run_directory(capsys, tmp_path):
    code, err = run_cli(capsys, "convert", str(tmp_path))
    assert code == 2 and "not a tflkit run directory" in err


def test_cli_help_imports_no_tensorflow():
    code = ("import sys; from tflkit.cli import build_parser; build_parser(); "
            "assert 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "model.tflite"
    atomic_write_bytes(target, b"good")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("converter crashed")
    assert target.read_bytes() == b"good"
    assert target.stat().st_mode & 0o644 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]
