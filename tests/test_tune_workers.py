"""tflkit tune as separate processes on one SQLite storage: a search killed mid-trial (SIGKILL) and rerun ends
with the requested trials complete and the killed trial's parameters run again; two workers started at once
finish a 6-trial search together with no trial run twice."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

optuna = pytest.importorskip("optuna")

SPACE = "batch_size: {choices: [32, 64]}\nlr: {low: 1e-3, high: 1e-2, log: true}\n"
STUDY = "tune-test_mobilenetv3-shapes"


def _command(tmp_path, trials: int) -> list[str]:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    return [sys.executable, "-u", "-m", "tflkit", "tune", "--model", "test_mobilenetv3", "--dataset", "shapes",
            "--epochs", "1", "--train-limit", "128", "--bn-momentum", "0.9", "--space", str(space),
            "--trials", str(trials), "--out", str(tmp_path / "tune")]


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def _study(tmp_path):
    return optuna.load_study(study_name=STUDY, storage=f"sqlite:///{tmp_path / 'tune' / 'tune.db'}")


def _started(log: str) -> list[int]:
    return [int(n) for n in re.findall(r"tune +trial (\d+) start", log)]


@pytest.mark.slow
def test_search_killed_mid_trial_resumes_without_losing_a_trial(tmp_path):
    command = _command(tmp_path, trials=3)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    deadline = time.monotonic() + 240
    for line in proc.stdout:  # kill as soon as trial 1 is training: it is RUNNING in the storage
        if "trial 1 start" in line or time.monotonic() > deadline:
            break
    time.sleep(2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed = {t.number: t for t in _study(tmp_path).trials}
    assert killed[1].state.name == "RUNNING" and killed[0].state.name == "COMPLETE"

    rerun = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "left RUNNING by a dead worker" in rerun.stdout
    trials = _study(tmp_path).trials
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") == 3 and states.count("RUNNING") == 0
    dead = trials[1]
    assert dead.state.name == "FAIL" and "died" in dead.user_attrs["fail_reason"]
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert retry.state.name == "COMPLETE" and retry.params == dead.params  # the killed trial, run again
    assert "trials: 3 complete, 1 fail" in rerun.stdout


@pytest.mark.slow
def test_two_workers_share_one_search_and_run_no_trial_twice(tmp_path):
    command = _command(tmp_path, trials=6)
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
               for _ in range(2)]
    outputs = [w.communicate(timeout=900) for w in workers]
    logs = [out for out, _ in outputs]
    assert [w.returncode for w in workers] == [0, 0], [err[-3000:] for _, err in outputs]

    trials = _study(tmp_path).trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 6
    assert all(t.state.name == "COMPLETE" or t.user_attrs.get("surplus") for t in trials)
    started = [_started(log) for log in logs]
    assert all(started), "each worker ran at least one trial"
    every = sorted(started[0] + started[1])
    assert every == sorted(t.number for t in complete)  # each trial started once, by one worker
    pids = {t.user_attrs["worker"]["pid"] for t in complete}
    assert pids == {w.pid for w in workers}
    assert len({t.user_attrs["run_dir"] for t in complete}) == 6
    assert (tmp_path / "tune" / "best.yaml").is_file() and (tmp_path / "tune" / "report.html").is_file()
