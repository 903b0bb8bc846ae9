"""A real multi-node Ray cluster on this machine: Ray's own `ray.cluster_utils.Cluster` starts a head and two worker
nodes, each with its own raylet, object store and CPU, on this machine. A 4-cell study runs on it through
`tflkit study run --executor ray --ray-address auto` (a cluster started outside tflkit, found as a user's would be,
through RAY_ADDRESS); one worker node is killed while its cell trains. The study must still finish: every cell, no
stage that had finished before the kill run again, the killed cell resumed from its last finished epoch on a node
that lives, and the same rows as the same study on one machine. Markers `cluster` and `slow`: `.ci/run` runs it. And the
cluster file docs/cluster.md describes passes Ray's own launcher schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.test_study_run import finished_at, tflkit

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

# 4 cells (2 models x 2 seeds), one CPU each: three run at once on the three nodes, the fourth waits for one.
STUDY = """\
name: cluster4
models: [test_resnet, test_mobilenetv3]
datasets:
  - spec: shapes
regimes:
  scratch: {}
seeds: [0, 1]
training: {epochs: 5, batch_size: 32, lr: 3e-3, train_limit: 512}
recipes: [fp32, dynamic_wi8_afp32]
host_bench: {threads: [1], runs: 5, warmup: 1}
resources: {num_cpus: 1}
"""
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
KEYS = ("cell", "model", "dataset", "regime", "recipe", "status")


@pytest.fixture(scope="module")
def study_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cluster") / "cluster4.yaml"
    path.write_text(STUDY)
    return path


@pytest.fixture
def cluster(monkeypatch):
    for key, value in RAY_ENV.items():
        monkeypatch.setenv(key, value)
    # The nodes take this machine's address, as Ray's own tests do: a driver joining through RAY_ADDRESS resolves
    # 127.0.0.1 to it, and GCS bound to loopback alone would not answer there.
    cluster = cluster_utils.Cluster(initialize_head=True, connect=False,
                                    head_node_args={"num_cpus": 1, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    yield cluster, workers
    cluster.shutdown()


def cell_node(out, cell_id: str) -> str | None:
    """The Ray node a cell's worker says it runs on (its latest attempt), from the cell's worker.log."""
    log = out / "cells" / cell_id / "worker.log"
    lines = [ln for ln in log.read_text().splitlines() if " on Ray node " in ln] if log.is_file() else []
    return lines[-1].rsplit(" ", 1)[1] if lines else None


def epochs_done(out, cell_id: str) -> int:
    state = out / "cells" / cell_id / "state.json"
    try:
        return json.loads(state.read_text())["epochs_done"]
    except (OSError, ValueError, KeyError):
        return 0


def rows(out):
    from tflkit.study.rows import study_rows
    from tflkit.study.store import open_store

    with open_store(out) as store:
        return sorted(({k: r.get(k) for k in KEYS} for r in study_rows(store)),
                      key=lambda r: (r["cell"], r["recipe"]))


@pytest.mark.cluster
@pytest.mark.slow
def test_a_study_survives_a_worker_node_killed_while_it_trains(cluster, study_file, tmp_path):
    cluster, workers = cluster
    worker_ids = {node.node_id: node for node in workers}
    out = tmp_path / "ray"
    driver = subprocess.Popen([sys.executable, "-m", "tflkit", "study", "run", str(study_file), "--out", str(out),
                               "--executor", "ray", "--ray-address", "auto"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **RAY_ENV, "RAY_ADDRESS": cluster.address})
    victim = None
    deadline = time.monotonic() + 600
    while victim is None and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.2)
        stages = finished_at(out) if (out / "study.db").is_file() else {}
        for cell_id in sorted({c for c, _ in stages}):
            node = cell_node(out, cell_id)
            training = stages.get((cell_id, "train"), ("", None))[0] == "running"
            if node in worker_ids and training and 1 <= epochs_done(out, cell_id) < 5:
                victim = (cell_id, node, epochs_done(out, cell_id))
                before = {k: v for k, v in finished_at(out).items() if v[0] != "running"}
                cluster.remove_node(worker_ids[node], allow_graceful=False)
                break
    assert victim is not None, "no cell was seen training on a worker node: " + (driver.stderr.read()
                                                                                   if driver.poll() is not None else "")
    stdout, stderr = driver.communicate(timeout=900)
    assert driver.returncode == 0, stdout[-2000:] + stderr[-3000:]
    assert "28 stages ok, 0 failed" in stdout, stdout[-2000:]
    cell_id, dead_node, epoch_at_kill = victim
    assert f"{cell_id}: lost its Ray worker" in stdout, stdout[-3000:]

    after = finished_at(out)
    assert len(after) == 4 * 7 and all(status == "ok" for status, _ in after.values())
    for key, value in before.items():  # nothing that had finished before the kill ran again
        assert after[key] == value, f"{key} was redone"

    # The killed cell trained on: the second session of its run started at the epoch its checkpoint held, on a node
    # that lives, and its history holds each epoch once.
    run = out / "cells" / cell_id
    sessions = json.loads((run / "environment.json").read_text())
    assert len(sessions) == 2 and sessions[0]["from_epoch"] == 0 and sessions[1]["from_epoch"] >= epoch_at_kill
    assert cell_node(out, cell_id) != dead_node
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 5

    # Every stage says where it ran: the cells spread over more than one node.
    from tflkit.study.store import open_store

    with open_store(out) as store:
        nodes = {s["provenance"]["ray_node"] for s in store.stages() if s["stage"] == "train"}
    assert len(nodes) >= 2

    local = tmp_path / "local"
    done = tflkit("study", "run", study_file, "--out", local, "--jobs", "2", "--json", timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert rows(out) == rows(local)
    assert len(rows(out)) == 2 * 2  # 2 models x 2 recipes: a cell's two seeds merge into one row (mean, sd)


def test_the_documented_cluster_file_is_valid_for_rays_launcher():
    """deploy/ray-cluster.yaml (docs/cluster.md's recipe) passes the cluster launcher's own schema and defaults."""
    from pathlib import Path

    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    path = Path(__file__).resolve().parent.parent / "deploy" / "ray-cluster.yaml"
    config = prepare_config(yaml.safe_load(path.read_text()))
    validate_config(config)
    assert config["provider"]["type"] == "local" and len(config["provider"]["worker_ips"]) == 2
    assert any("--executor ray --ray-address auto" in line for line in path.read_text().splitlines())
