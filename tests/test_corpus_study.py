"""Issue 26: the corpus through a study's stages. A study measures the files it converted itself, so a hostile
.tflite reaches its eval, bench_host and mcu stages as one of those files (damaged on disk, replaced by hand).

A tiny real study is built once (`--max-steps 1` on the embedded `shapes`); each round copies it, puts corpus files
in place of its converted ones and runs `tflkit study run --remeasure eval bench_host mcu`. Every hostile file's
stages are rows with one line (a crash in LiteRT is a failed row, not a dead worker), the intact file is still
measured, the driver exits 1 (some item failed: docs/pipeline.md), and neither the driver nor the cell's worker
printed a traceback."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")
# A study trained and replayed (~70 s); the readers themselves replay the corpus in the default suite
# (test_corpus_replay.py).
pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[1]
TFLITES = sorted((ROOT / "tests" / "corpus" / "tflite").glob("*.tflite"))
CELL = "test_resnet.shapes.scratch"
RECIPES = ("fp32", "fp16", "dynamic_wi8_afp32", "static_wi8_ai8")
MCU = importlib.util.find_spec("tflite_micro") is not None  # the mcu extra; without it the study has no mcu stage
KINDS = ("eval", "bench_host") + (("mcu",) if MCU else ())
STUDY = f"""\
name: hostile
models: [test_resnet]
datasets:
  - spec: shapes
regimes:
  scratch: {{}}
recipes: [{", ".join(RECIPES)}]
host_bench: {{threads: [1], runs: 3, warmup: 1}}
""" + ("mcu: {boards: [nrf52840], eval_limit: 8}\n" if MCU else "")
# Round 0 keeps the fp32 file as converted (the other files must still be measured); the rest take every recipe.
ROUNDS = [TFLITES[:len(RECIPES) - 1]]
ROUNDS += [TFLITES[i:i + len(RECIPES)] for i in range(len(RECIPES) - 1, len(TFLITES), len(RECIPES))]


def tflkit(*args):
    return subprocess.run([sys.executable, "-m", "tflkit", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=600)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile_study")
    (folder / "study.yaml").write_text(STUDY)
    done = tflkit("study", "run", folder / "study.yaml", "--out", folder / "out", "--max-steps", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


@pytest.mark.parametrize("files", ROUNDS, ids=[f"round{i}" for i in range(len(ROUNDS))])
def test_study_stages_replay_the_corpus(built, files, tmp_path):
    from tflkit.study.store import open_store

    out = tmp_path / "out"
    shutil.copytree(built / "out", out)
    tflite_dir = out / "cells" / CELL / "tflite"
    hostile = dict(zip(RECIPES[::-1], files))  # recipe -> the corpus file in its place; fp32 last to go
    for recipe, path in hostile.items():
        target = tflite_dir / f"test_resnet.shapes.{recipe}.tflite"
        assert target.is_file()
        shutil.copyfile(path, target)
    done = tflkit("study", "run", built / "study.yaml", "--out", out, "--max-steps", "1", "--remeasure", *KINDS)
    worker_log = (out / "cells" / CELL / "worker.log").read_text(errors="replace")
    assert "Traceback" not in done.stdout + done.stderr + worker_log, done.stdout + done.stderr + worker_log[-3000:]
    assert done.returncode == 1, done.stdout + done.stderr  # some stage failed; the study itself ran to its end

    with open_store(out) as store:
        stages = {s["stage"]: s for s in store.stages(CELL)}
        files_by_recipe = {f["recipe"]: f for f in store.files() if f["cell"] == CELL}
        host = {(lat["recipe"], lat["status"]) for lat in store.latencies() if lat["cell"] == CELL}
    assert not [s for s in stages.values() if s["status"] == "running" or "worker" in (s["message"] or "")]
    for recipe in RECIPES:
        name = f"test_resnet.shapes.{recipe}.tflite"
        for kind in KINDS:
            stage = stages[f"{kind}/{recipe}"]
            message = stage["message"] or ""
            assert "\n" not in message, (recipe, kind, message)
            if recipe not in hostile:
                assert stage["status"] == "ok" and not message, (recipe, kind, stage)
            elif stage["status"] == "failed":
                assert name in message, (recipe, kind, message, hostile[recipe].name)
            else:  # a result: TFLite Micro refusing the file is a measured fact, not a failed stage
                assert kind == "mcu" and message.startswith("does not run under TFLite Micro"), (recipe, stage)
        if recipe in hostile:  # a 3-class mutant on 10 classes, or a file LiteRT refuses: never a top-1
            assert stages[f"eval/{recipe}"]["status"] == "failed", hostile[recipe].name
    if "fp32" not in hostile:
        assert files_by_recipe["fp32"]["top1"] is not None and ("fp32", "ok") in host
