"""The import layers in pyproject.toml's [tool.importlinter] hold, and a deliberately broken import fails them: a
copy of the three packages where android_bench imports TensorFlow (through tflkit.training) breaks its contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tflkit", "converters", "android_bench")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (test extras)")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the packages under `root`, not the installed ones
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_import_layers_hold():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_a_broken_import_fails_the_contract(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    # A phone-side helper reaching into training drags TensorFlow into android_bench.
    (tmp_path / "android_bench" / "broken.py").write_text(
        "def epochs(run_dir):\n"
        "    from tflkit.training import load_run_config\n\n"
        "    return load_run_config(run_dir).epochs\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "android_bench imports no TensorFlow" in done.stdout and "BROKEN" in done.stdout
    assert "android_bench.broken -> tflkit.training" in done.stdout
