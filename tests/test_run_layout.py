"""Only tflkit.core.run spells a path inside a run directory: every other module asks a Run for it, so the layout
can change in one place. The test greps the product's source for the file names the Run owns."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OWNER = ROOT / "tflkit" / "core" / "run.py"
# The names of the files and folders inside a run directory, as a string literal would spell them.
OWNED = ("config.yaml", "model.keras", "last.keras", "best.keras", "checkpoints", "history.json", "state.json",
         "pretrained.json", "environment.json", "model_info.json", "eval.json", "mcu.json", "exports.json",
         "host.json", "android.json", ".card.json", ".validation.json")
LITERAL = re.compile(r"""["'][^"'\n]*?({})["']""".format("|".join(re.escape(n) for n in OWNED)))
# `/ "tflite"` or `/ "bench"`: a run's sub-folders joined onto a path
JOINED = re.compile(r"""/\s*["'](tflite|bench|checkpoints)["']""")


def _product_files():
    for package in ("tflkit", "converters", "android_bench"):
        yield from (p for p in (ROOT / package).rglob("*.py") if p != OWNER)


def test_no_path_inside_a_run_is_spelled_outside_the_run_module():
    found = []
    for path in _product_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if LITERAL.search(code) or JOINED.search(code):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "paths inside a run spelled outside tflkit/core/run.py:\n" + "\n".join(found)


def test_the_grep_sees_a_spelled_path(tmp_path):
    """The patterns catch what they are for (a test that cannot fail proves nothing)."""
    assert LITERAL.search('path = run_dir / "model.keras"') and LITERAL.search("out / 'bench' / 'host.json'")
    assert JOINED.search('folder / "tflite"') and not LITERAL.search('"a .tflite file"')
