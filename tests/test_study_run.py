"""A tiny real study end to end: run, resume after SIGKILL with no finished stage redone, changes refused,
the Ray executor giving the same rows as the local one, and the report of a real study directory."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tflkit.study.rows import study_rows
from tflkit.study.store import open_store

TINY = """\
name: tiny
models: [test_resnet]
datasets:
  - spec: shapes
regimes:
  scratch: {}
training: {epochs: 1, batch_size: 32, lr: 3e-3, train_limit: 256}
recipes: [fp32, dynamic_wi8_afp32]
host_bench: {threads: [1], runs: 5, warmup: 1}
resources: {num_cpus: 1}
"""
# The figures that must not depend on how or where the cell ran (latency does).
STABLE = ("cell", "model", "dataset", "regime", "recipe", "status", "top1", "top5", "size_bytes", "params", "macs",
          "agreement")


def tflkit(*args, timeout=600, **kwargs):
    return subprocess.run([sys.executable, "-m", "tflkit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def stable_rows(out_dir):
    with open_store(out_dir) as store:
        return sorted(({k: r.get(k) for k in STABLE} for r in study_rows(store)), key=lambda r: r["recipe"])


def finished_at(out_dir) -> dict:
    db = sqlite3.connect(out_dir / "study.db")
    try:
        rows = db.execute("SELECT cell, stage, status, finished_at FROM stages").fetchall()
    except sqlite3.OperationalError:  # the study has created study.db but not yet its tables
        rows = []
    finally:
        db.close()
    return {(c, s): (st, t) for c, s, st, t in rows}


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("study") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def local_run(study_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    done = tflkit("study", "run", study_file, "--out", out)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done


def test_every_stage_recorded_with_provenance(local_run):
    out, done = local_run
    stages = finished_at(out)
    expected = {"train", "convert/fp32", "eval/fp32", "bench_host/fp32", "convert/dynamic_wi8_afp32",
                "eval/dynamic_wi8_afp32", "bench_host/dynamic_wi8_afp32"}
    assert {s for _, s in stages} == expected
    assert all(status == "ok" for status, _ in stages.values())
    assert "[7/7]" in done.stdout  # progress: what is done of what is planned
    rows = study_rows(open_store(out))
    assert [r["recipe"] for r in rows] == ["fp32", "dynamic_wi8_afp32"]
    for row in rows:
        assert 0 <= row["top1"] <= 1 and row["size_bytes"] > 0 and row["host_median_ms_t1"] > 0
    with open_store(out) as store:
        prov = store.stage("test_resnet.shapes.scratch", "eval/fp32")["provenance"]
        train = store.stage("test_resnet.shapes.scratch", "train")
    assert prov["tensorflow"] and prov["ai-edge-litert"] and prov["cores"] and prov["seed"] == 0
    assert "cpu_features" in prov  # "avx2 fma ..." where /proc/cpuinfo is readable
    assert len(prov["file_sha256"]) == 64 and prov["dataset"]["splits"]["test"]["images"] == 2000
    assert train["wall_s"] > 0 and train["cpu_s"] > 0 and train["result"]["history"]["top1"]


def test_a_cell_s_study_rows_are_its_run_report_rows(local_run):
    """One row builder (tflkit.pipeline.rows): the study's row of a file and the run report's row of the same file (the
    cell's run directory, where every stage recorded what it measured) have the same columns and values."""
    from tflkit.core.run import Run
    from tflkit.pipeline.rows import run_rows
    from tflkit.study.spec import cell_dir

    out, _ = local_run
    study = {r["recipe"]: r for r in study_rows(open_store(out))}
    report = {r["recipe"]: r for r in run_rows(Run(cell_dir(out, "test_resnet.shapes.scratch")))}
    assert set(study) == set(report) == {"fp32", "dynamic_wi8_afp32"}
    for recipe, row in report.items():
        shared = set(row) - {"missing", "message"}  # `missing`: what `tflkit report` would still measure
        assert {"top1", "size_bytes", "macs", "arena_bytes", "agreement", "host_median_ms_t1"} <= shared
        assert shared <= set(study[recipe]), shared - set(study[recipe])
        assert {k: study[recipe][k] for k in shared} == {k: row[k] for k in shared}, recipe
        assert study[recipe]["message"].startswith(row["message"])  # the study may add (at chance, a failed stage)


def test_rerun_redoes_nothing(local_run, study_file):
    out, _ = local_run
    before = finished_at(out)
    done = tflkit("study", "run", study_file, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "0 cells to run" in done.stdout
    assert finished_at(out) == before


def test_changed_study_is_refused_unless_allowed(local_run, study_file, tmp_path):
    out, _ = local_run
    changed = tmp_path / "changed.yaml"
    changed.write_text(TINY.replace("lr: 3e-3", "lr: 1e-3"))
    done = tflkit("study", "run", changed, "--out", out)
    assert done.returncode == 2
    assert "test_resnet.shapes.scratch (its training settings changed)" in done.stderr
    assert "--allow-changes" in done.stderr


def test_sigkill_midway_then_resume_redoes_no_finished_stage(study_file, local_run, tmp_path):
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "tflkit", "study", "run", str(study_file), "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    try:
        while time.time() < deadline:  # kill once the first conversion is recorded: mid-cell, mid-convert
            if (out / "study.db").exists() and ("test_resnet.shapes.scratch", "convert/fp32") in finished_at(out):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the study never reached its first conversion")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    before = {k: v for k, v in finished_at(out).items() if v[0] != "running"}
    assert ("test_resnet.shapes.scratch", "train") in before
    done = tflkit("study", "run", study_file, "--out", out)
    assert done.returncode == 0, done.stdout + done.stderr
    after = finished_at(out)
    for key, value in before.items():
        assert after[key] == value, f"{key} was redone"
    assert all(status == "ok" for status, _ in after.values())
    assert stable_rows(out) == stable_rows(local_run[0])


@pytest.mark.integration
def test_ray_executor_gives_the_same_rows(study_file, local_run, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    done = tflkit("study", "run", study_file, "--out", out, "--executor", "ray", "--json", env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert summary["ok"] and summary["stages_ok"] == 7
    assert stable_rows(out) == stable_rows(local_run[0])


def test_report_of_a_real_study(local_run):
    out, _ = local_run
    done = tflkit("study", "report", out)
    assert done.returncode == 0, done.stderr
    for name in ("report.html", "report.md", "results.csv", "results.json"):
        assert (out / name).stat().st_size > 0
    rows = json.loads((out / "results.json").read_text())
    rows = rows["rows"] if isinstance(rows, dict) else rows
    assert {r["recipe"] for r in rows} == {"fp32", "dynamic_wi8_afp32"}


def test_pick_on_a_real_study(local_run):
    out, _ = local_run
    done = tflkit("pick", out, "--max-size-mb", "1", "--json")
    result = json.loads(done.stdout)
    assert done.returncode == (0 if result["feasible"] else 1), done.stderr  # exit 1: nothing fits
    assert result["ok"] == bool(result["feasible"])
    assert len(result["feasible"]) + len(result["excluded"]) == 2


def test_benchmark_memory_is_the_benchmark_process_own(local_run):
    """A benchmark started by a process holding a lot of memory reports its own peak, not its parent's: Linux's
    ru_maxrss survives exec, and a study worker holds TensorFlow (1.8 GB was reported for a 50 MB process)."""
    import numpy as np

    from tflkit.bench.host import BenchSettings, bench_files
    from tflkit.core import isolate

    out, _ = local_run
    model = next((out / "cells").glob("*/tflite/*.fp32.tflite"))
    ballast = np.ones(400 * 2**20, dtype=np.uint8)  # 400 MB resident in this (the parent) process
    from tflkit.bench.host import BenchSettings, bench_files
    from tflkit.core import isolate

    peak = isolate.call(bench_files, [str(model)], (1,), BenchSettings(runs=3), timeout=120)[0].peak_memory_mb
    assert ballast.sum() > 0 and 0 < peak < 300


def fake_cell(out_dir, cell_id, done, threads=None, node=None):
    """Stands in for tflkit.study.worker.run_cell_process: two records, then what the cell id asks for."""
    from tflkit.core import isolate

    print(f"fake cell {cell_id} with {threads} threads", flush=True)
    isolate.send({"kind": "start", "cell": cell_id, "stage": "train", "threads": threads, "done": done})
    isolate.send({"kind": "start", "cell": cell_id, "stage": "convert/fp32"})
    if cell_id == "raises":
        raise KeyError("a bug in the cell")
    if cell_id == "dies":
        print("error: out of memory, it seems", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("cell, failure", [("ok", None), ("raises", "KeyError: 'a bug in the cell'"),
                                           ("dies", "worker killed by SIGKILL: error: out of memory, it seems")])
def test_a_cells_worker_streams_its_records_and_its_failure_is_the_cells(monkeypatch, tmp_path, cell, failure):
    """The executors' side of the worker, with the cell's function replaced (no TensorFlow, well under a second
    a case): records as they happen, the thread budget as an argument, the worker's output in worker.log, a
    raised error or a killed process one line for the cell's row."""
    from tflkit.study import executors

    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setattr(executors, "run_cell_process", fake_cell)
    records = []
    assert executors.run_worker(tmp_path, cell, {"train"}, 3, records.append) == failure
    assert [r["stage"] for r in records] == ["train", "convert/fp32"]
    assert records[0]["threads"] == 3 and records[0]["done"] == ["train"]
    assert f"fake cell {cell} with 3 threads" in (tmp_path / "cells" / cell / "worker.log").read_text()


def test_an_error_recording_a_cell_stops_the_study(monkeypatch, tmp_path):
    from tflkit.study import executors

    tests = str(Path(__file__).parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setattr(executors, "run_cell_process", fake_cell)

    def broken_store(record):
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        executors.run_worker(tmp_path, "ok", set(), None, broken_store)


@pytest.mark.integration
def test_remeasure_convert_converts_every_file_again(local_run, study_file, tmp_path):
    """`--remeasure convert` (a newer converter): every recipe is converted again and its file measured again;
    the trained model is kept, and the figures that do not depend on timing come out the same."""
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(local_run[0], out)
    before = finished_at(out)
    done = tflkit("study", "run", study_file, "--out", out, "--remeasure", "convert")
    assert done.returncode == 0, done.stdout + done.stderr
    after = finished_at(out)
    cell = "test_resnet.shapes.scratch"
    assert after[(cell, "train")] == before[(cell, "train")]
    for stage in ("convert/fp32", "convert/dynamic_wi8_afp32", "eval/fp32", "bench_host/fp32"):
        assert after[(cell, stage)][0] == "ok" and after[(cell, stage)][1] > before[(cell, stage)][1], stage
    assert (out / "cells" / cell / "tflite" / "exports.before-reconvert.json").is_file()
    assert stable_rows(out) == stable_rows(local_run[0])


def test_remeasure_of_chosen_cells_leaves_the_others_untouched(tmp_path):
    """`--remeasure KIND --cells PATTERN`: only the matching cells' stages and figures are dropped (no TensorFlow)."""
    with open_store(tmp_path) as store:
        for cell in ("a.shapes.scratch", "b.shapes.scratch"):
            for stage in ("train", "convert/fp32", "eval/fp32", "bench_host/fp32"):
                store.finish_stage(cell, stage, "ok")
            store.put_file(cell, "fp32", status="ok", top1=0.5, eval_images=100)
            store.put_latency(cell, "fp32", "host", "xnnpack", 1, status="ok", median_ms=1.0)
        assert store.forget_measurements("eval", ["a.shapes.scratch"]) == 1
        assert store.forget_measurements("bench_host", ["a.shapes.scratch"]) == 1
        assert {f["cell"]: f["top1"] for f in store.files()} == {"a.shapes.scratch": None, "b.shapes.scratch": 0.5}
        assert [lat["cell"] for lat in store.latencies()] == ["b.shapes.scratch"]
        assert store.forget_measurements("convert", ["b.shapes.scratch"]) == 3
        assert store.finished("b.shapes.scratch") == {"train"}
        assert store.finished("a.shapes.scratch") == {"train", "convert/fp32"}
        assert [f["cell"] for f in store.files()] == ["a.shapes.scratch"]
        assert store.forget_measurements("convert", []) == 0


def test_cells_needs_remeasure_and_a_matching_pattern(study_file, tmp_path):
    done = tflkit("study", "run", study_file, "--out", tmp_path / "a", "--cells", "test_resnet*")
    assert done.returncode == 2 and "--cells chooses the cells to --remeasure" in done.stderr
    done = tflkit("study", "run", study_file, "--out", tmp_path / "b", "--remeasure", "eval", "--cells", "zzz*")
    assert not (tmp_path / "b").exists()  # refused before anything is written
    assert done.returncode == 2
    assert "--cells 'zzz*' matches no cell of this study; cells: test_resnet.shapes.scratch" in done.stderr


def test_an_unreachable_ray_cluster_is_one_line_within_seconds(study_file, tmp_path):
    """ray.init alone retries an address that does not answer for minutes; tflkit says so at once."""
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    done = tflkit("study", "run", study_file, "--out", tmp_path / "out", "--executor", "ray", "--ray-address",
                  f"127.0.0.1:{port}", timeout=60)
    assert done.returncode == 1 and time.monotonic() - start < 30
    errors = [line for line in done.stderr.splitlines() if line.startswith("tflkit: error:")]
    assert len(errors) == 1 and f"cannot reach the Ray cluster at 127.0.0.1:{port}" in errors[0], done.stderr
