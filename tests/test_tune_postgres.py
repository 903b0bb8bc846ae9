"""tflkit tune on a real PostgreSQL server (tests/postgres_server.py), with the plain `postgresql://` URL a user
writes: the URL gets psycopg 3, a missing driver is one line; a study survives a server restart and an outage, and
an outage longer than the wait is one line; a dead worker on another host is failed by its heartbeat. As separate
`tflkit tune` processes (slow): two workers finish one search with no trial run twice, a worker killed mid-trial
leaves a trial the rerun fails and runs again, and a worker whose server restarts, then stops for a while,
mid-search finishes it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.postgres  # .ci/run also runs the slow ones: `-m "postgres and slow"`

from postgres_server import postgres_server, postgres_url  # noqa: E402, F401

from tflkit.core.errors import TflkitError  # noqa: E402
from tflkit.tune import search  # noqa: E402
from tflkit.tune.search import (  # noqa: E402
    TuneSettings,  # noqa: E402
    engine_url,
    fail_dead_trials,
    open_study,
)

SPACE = "batch_size: {choices: [32, 64]}\nlr: {low: 1e-3, high: 1e-2, log: true}\n"
STUDY = "tune-test_mobilenetv3-shapes"
QUIET = lambda *_: None  # noqa: E731


def _plain(url: str) -> str:
    """The URL as a user writes it, without the driver."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _settings(url: str, **kw) -> TuneSettings:
    return TuneSettings.of("test_mobilenetv3", "shapes", "unused", storage=url, **kw)


def test_a_plain_postgresql_url_gets_psycopg_and_other_urls_are_left_alone():
    pytest.importorskip("psycopg")
    assert engine_url("postgresql://me@db.lan:5433/tune") == "postgresql+psycopg://me@db.lan:5433/tune"
    assert engine_url("postgres://me@db.lan/tune") == "postgresql+psycopg://me@db.lan/tune"
    for url in ("sqlite:////tmp/out/tune.db", "postgresql+psycopg2://me@db/tune", "mysql+pymysql://me@db/tune"):
        assert engine_url(url) == url
    shown = _settings("postgresql://me:s3cret@db.lan/tune").storage_shown
    assert shown == "postgresql://me:***@db.lan/tune"
    assert _settings("postgresql://me@db.lan:5432/tune").storage_shown == "postgresql://me@db.lan:5432/tune"


def test_without_a_postgresql_driver_tune_says_which_extra_to_install(monkeypatch, capsys, tmp_path):
    for module in ("psycopg", "psycopg2"):
        monkeypatch.setitem(sys.modules, module, None)  # `import psycopg` raises ImportError
    with pytest.raises(TflkitError, match=r"neither psycopg nor psycopg2 imports: pip install 'tflkit\[tune\]'"):
        engine_url("postgresql://me@db.lan/tune")
    assert engine_url("sqlite:///x.db") == "sqlite:///x.db"

    from tflkit.cli import main

    code = main(["tune", "--model", "test_mobilenetv3", "--dataset", "shapes", "--out", str(tmp_path / "tune"),
                 "--storage", "postgresql://me@127.0.0.1:1/tune"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "pip install 'tflkit[tune]'" in err and "\n" not in err, err


def test_a_study_survives_a_server_restart_and_waits_out_an_outage(postgres_server, postgres_url):  # noqa: F811
    """A restart cuts every pooled connection: without pool_pre_ping the next storage call failed. While the server
    is down a storage call waits for it (a worker mid-trial would otherwise lose the trial)."""
    logs = []
    study = open_study(_settings(_plain(postgres_url)), log=logs.append)
    study.tell(study.ask(), 0.5)
    postgres_server.restart()
    study.tell(study.ask(), 0.6)

    postgres_server.stop()
    timer = threading.Timer(2.0, postgres_server.start)
    timer.start()
    try:
        start = time.monotonic()
        study.tell(study.ask(), 0.7)
        waited = time.monotonic() - start
    finally:
        timer.join()
    assert waited >= 2.0
    assert [t.value for t in study.trials] == [0.5, 0.6, 0.7]
    assert logs[0].startswith("tune     storage unreachable (") and "waiting up to 300 s" in logs[0]
    assert logs[1:] == ["tune     storage reachable again"]


def test_an_outage_longer_than_the_wait_ends_the_worker_with_one_line(postgres_server, postgres_url,  # noqa: F811
                                                                      monkeypatch, tmp_path):
    """The server goes away once the search is open and stays away past STORAGE_WAIT_S: the worker stops with one
    line saying to rerun (no traceback), before it trained anything."""
    from types import SimpleNamespace

    from tflkit.tune.search import run_search

    monkeypatch.setattr(search, "STORAGE_WAIT_S", 1)
    work = search._work

    def server_gone(*args, **kwargs):
        postgres_server.stop()
        return work(*args, **kwargs)

    monkeypatch.setattr(search, "_work", server_gone)
    settings = TuneSettings.of("test_mobilenetv3", "shapes", tmp_path / "tune",
                            storage=_plain(postgres_url).replace("tflkit@", "tflkit:pw@"))  # trust auth ignores it
    try:
        with pytest.raises(TflkitError) as raised:
            run_search(settings, log=QUIET, source=SimpleNamespace(splits={"val": None}, label="no data"))
    finally:
        postgres_server.start()
    message = str(raised.value)
    assert message.startswith("the tune storage postgresql://tflkit:***@127.0.0.1:") and "pw" not in message
    assert "is unreachable (" in message and "Connection refused" in message and "\n" not in message
    assert message.endswith("rerun the same command when it is back: the search goes on")


def test_a_dead_worker_on_another_host_is_failed_by_its_heartbeat_and_queued_again(postgres_url,  # noqa: F811
                                                                                     monkeypatch):
    """Optuna's stale-heartbeat check on PostgreSQL (server-side timestamps): a RUNNING trial of a worker on
    another host (its process cannot be checked from here) is left alone within the grace period, then failed and
    its parameters queued again."""
    monkeypatch.setattr(search, "GRACE_S", 2)
    settings = _settings(_plain(postgres_url))
    study = open_study(settings, log=QUIET)
    trial = study.ask()
    trial.set_user_attr("worker", {"host": "another-node", "pid": 1})
    space = settings.search_space()
    params = space.sample(trial)
    study._storage.record_heartbeat(trial._trial_id)
    assert fail_dead_trials(study, log=QUIET) == [] and study.trials[0].state.name == "RUNNING"
    time.sleep(3)
    fail_dead_trials(study, log=QUIET)  # the same-host list stays empty: Optuna's heartbeat check failed it
    dead, queued = study.trials
    assert dead.state.name == "FAIL" and queued.state.name == "WAITING"
    retry = study.ask()
    assert retry.number == queued.number and space.sample(retry) == params
    assert retry.user_attrs["retry_of"] == trial.number


# ---- tflkit tune as separate processes, on one PostgreSQL database ------------------------------------------------

def _command(tmp_path, url: str, trials: int, node: str = "node0") -> list[str]:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    return [sys.executable, "-u", "-m", "tflkit", "tune", "--model", "test_mobilenetv3", "--dataset", "shapes",
            "--epochs", "1", "--train-limit", "128", "--bn-momentum", "0.9", "--space", str(space),
            "--trials", str(trials), "--out", str(tmp_path / node), "--storage", _plain(url)]


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def _trials(url: str):
    return optuna.load_study(study_name=STUDY, storage=url).trials


def _started(log: str) -> list[int]:
    return [int(n) for n in re.findall(r"tune +trial (\d+) start", log)]


@pytest.mark.slow  # two processes, 4 tiny trials: 50-80 s on 2 cores shared with another test
def test_two_workers_share_one_search_and_run_no_trial_twice(tmp_path, postgres_url):  # noqa: F811
    """Two nodes (each its own --out, as on two machines) start at once on one database."""
    workers = [subprocess.Popen(_command(tmp_path, postgres_url, trials=4, node=f"node{i}"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_env()) for i in range(2)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err[-3000:] for _, err in outputs]

    trials = _trials(postgres_url)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4
    assert all(t.state.name == "COMPLETE" or t.user_attrs.get("surplus") for t in trials)
    started = [_started(out) for out, _ in outputs]
    assert all(started), "each worker ran at least one trial"
    assert sorted(started[0] + started[1]) == sorted(t.number for t in complete)  # each trial started once
    assert {t.user_attrs["worker"]["pid"] for t in complete} == {w.pid for w in workers}
    assert len({tuple(sorted(t.params.items())) for t in complete}) == 4  # four configurations, none run twice
    assert [t.user_attrs.get("baseline") for t in complete].count(True) == 1
    for i, (out, _) in enumerate(outputs):  # each node wrote the whole search's results
        assert "trials: 4 complete" in out and f"storage {_plain(postgres_url)}" in out
        assert (tmp_path / f"node{i}" / "best.yaml").is_file()
        assert len((tmp_path / f"node{i}" / "trials.csv").read_text().splitlines()) == 1 + len(trials)


@pytest.mark.slow  # one worker killed in its second trial, then rerun: 35-60 s
def test_worker_killed_mid_trial_and_rerun_finishes_without_losing_a_trial(tmp_path, postgres_url):  # noqa: F811
    command = _command(tmp_path, postgres_url, trials=3)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    deadline = time.monotonic() + 240
    for line in proc.stdout:  # kill as soon as trial 1 is training: it is RUNNING in the storage
        if "trial 1 start" in line or time.monotonic() > deadline:
            break
    time.sleep(2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed = {t.number: t.state.name for t in _trials(postgres_url)}
    assert killed == {0: "COMPLETE", 1: "RUNNING"}

    rerun = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "left RUNNING by a dead worker" in rerun.stdout
    trials = _trials(postgres_url)
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == 3 and states.count("RUNNING") == 0
    dead = trials[1]
    assert dead.state.name == "FAIL" and "died" in dead.user_attrs["fail_reason"]
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert retry.state.name == "COMPLETE" and retry.params == dead.params  # the killed trial, run again
    assert "trials: 3 complete, 1 fail" in rerun.stdout


@pytest.mark.slow  # one worker, 3 tiny trials and a few seconds without a server: 30-57 s
def test_worker_finishes_its_search_through_a_server_restart_and_an_outage(tmp_path, postgres_server,  # noqa: F811
                                                                           postgres_url):  # noqa: F811
    """Restarted (connections cut) while trial 1 trains; stopped while trial 2 trains and started again only once
    the worker says it is waiting for it. The worker loses nothing: 3 trials complete, none failed, in one run."""
    proc = subprocess.Popen(_command(tmp_path, postgres_url, trials=3), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_env())
    lines, deadline = [], time.monotonic() + 300
    try:
        for line in proc.stdout:
            lines.append(line)
            if "trial 1 start" in line:
                postgres_server.restart()
            elif "trial 2 start" in line:
                postgres_server.stop()
            elif "storage unreachable" in line:
                time.sleep(2)  # the worker retries meanwhile
                postgres_server.start()
            if time.monotonic() > deadline:
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if not postgres_server.running:
            postgres_server.start()
    log = "".join(lines)
    assert proc.returncode == 0, log[-3000:]
    assert "storage unreachable" in log and "storage reachable again" in log
    assert [t.state.name for t in _trials(postgres_url)] == ["COMPLETE"] * 3
    assert "trials: 3 complete" in log
