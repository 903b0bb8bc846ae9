"""The import layers in pyproject.toml's [tool.importlinter] hold, and a deliberately broken import fails them: a
copy of the three packages where android_bench imports TensorFlow (through tflkit.training.loop) breaks its contract."""

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


BROKEN = [
    # A phone-side helper reaching into training drags TensorFlow into android_bench.
    ("android_bench", "from tflkit.training.loop import train", "android_bench imports no TensorFlow",
     "android_bench.broken -> tflkit.training.loop"),
    # Training reaching up into conversion for a weight port: the climb this layering removed.
    ("tflkit", "from converters.export import export_run", "Training and evaluation import no conversion",
     None),
]


@pytest.mark.parametrize("package, line, contract, chain", BROKEN, ids=["android_bench-tf", "training-conversion"])
def test_a_broken_import_fails_the_contract(tmp_path, package, line, contract, chain):
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = (tmp_path / "android_bench" / "broken.py" if package == "android_bench"
              else tmp_path / "tflkit/training/transfer.py")
    text = target.read_text() if target.exists() else ""
    target.write_text(text + f"\n\ndef _broken():\n    {line}\n\n    return None\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    assert contract in done.stdout and "BROKEN" in done.stdout
    assert (chain or "tflkit.training.transfer -> converters.export") in done.stdout


def in_function_imports(root: Path) -> list[str]:
    """`path:line: source` of every import of a tflkit, converters or android_bench module inside a function."""
    import ast

    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text()
            lines, seen = text.splitlines(), set()
            for function in ast.walk(ast.parse(text)):
                if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for node in ast.walk(function):
                    if id(node) in seen or not isinstance(node, (ast.Import, ast.ImportFrom)):
                        continue
                    seen.add(id(node))
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    if node.__class__ is ast.ImportFrom and node.level or any(n.split(".")[0] in PACKAGES
                                                                            for n in names):
                        found.append(f"{path.relative_to(root)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


def test_in_function_imports_are_few_and_each_says_why():
    """Modules import at the top: only a TensorFlow boundary (a TensorFlow-free module that runs TensorFlow code on
    demand) or a registration cycle imports inside a function, and says so on its line (there were 294)."""
    found = in_function_imports(ROOT)
    assert len(found) <= 16, "\n".join(found)
    unexplained = [line for line in found if "#" not in line.split(": ", 1)[1]]
    assert not unexplained, "in-function imports without their reason:\n" + "\n".join(unexplained)
