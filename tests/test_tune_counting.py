"""How `tflkit tune` counts trials and what it does with a dead one: `--trials N` is N finished trials (complete or
pruned); a trial whose worker died is failed, not counted, and run again (a retried baseline stays the baseline);
a worker with nothing left to claim takes over another worker's trial that dies; the median pruner waits for 5
finished trials and half of a trial's epochs."""

from __future__ import annotations

import subprocess
import sys

import pytest

optuna = pytest.importorskip("optuna")

from test_tune_search import _settings  # noqa: E402  (one tiny search setting for both files)

from tflkit.tune import search  # noqa: E402
from tflkit.tune.search import TuneSettings, count_states, fail_dead_trials, open_study, run_search  # noqa: E402  # noqa: E402
from tflkit.tune.space import parse_space  # noqa: E402


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def _claim(study, settings, pid: int | None):
    """A trial as a worker claims it: asked, parameters drawn, its worker recorded (None: killed before that)."""
    trial = study.ask()
    if pid is not None:
        trial.set_user_attr("worker", {"host": search.socket.gethostname(), "pid": pid})
        settings.search_space().sample(trial)
    return trial


@pytest.mark.parametrize("epochs, warmup", [(1, 1), (3, 1), (6, 3), (10, 5)])
def test_median_pruner_waits_for_five_trials_and_half_the_epochs(epochs, warmup):
    pruner = search._pruner(TuneSettings.of("test_mobilenetv3", "shapes", "x", epochs=epochs))
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert pruner._n_startup_trials == 5 and pruner._n_warmup_steps == warmup


def test_median_pruner_in_a_study_judges_only_the_second_half_after_five_trials():
    settings = TuneSettings.of("test_mobilenetv3", "shapes", "x", epochs=6)
    study = optuna.create_study(direction="maximize", pruner=search._pruner(settings))

    def weak_trial_pruned_at(step: int) -> bool:
        trial = study.ask()
        trial.report(0.1, step)
        pruned = trial.should_prune()
        study.tell(trial, state=optuna.trial.TrialState.FAIL)  # FAIL: not a finished trial, the count stays
        return pruned

    for n in range(5):
        assert not weak_trial_pruned_at(4), f"pruned with {n} finished trials"
        strong = study.ask()
        for step in range(6):
            strong.report(0.9, step)
        study.tell(strong, 0.9)
    assert not weak_trial_pruned_at(2)  # first half of the epochs: a schedule still warming up is not judged
    assert weak_trial_pruned_at(3) and weak_trial_pruned_at(4)


def test_killed_baseline_is_queued_again_as_the_baseline(tmp_path):
    settings = _settings(tmp_path, trials=2)
    space = settings.search_space()
    baseline = space.baseline(settings.base_config())
    assert baseline["lr"] == 1e-3 and baseline["augment"] == "none"
    study = open_study(settings, baseline=baseline)
    trial = _claim(study, settings, pid=_dead_pid())
    assert trial.user_attrs["baseline"] is True

    assert fail_dead_trials(study, log=lambda *_: None) == [trial.number]
    dead = study.trials[trial.number]
    assert dead.state.name == "FAIL" and "died" in dead.user_attrs["fail_reason"]
    retry = study.ask()
    params = space.sample(retry)
    assert params == dead.params and baseline.items() <= params.items()  # batch 128 is not in this space: drawn
    assert retry.user_attrs["baseline"] is True and retry.user_attrs["retry_of"] == trial.number


def test_trial_claimed_but_never_started_is_failed_after_the_grace_period(tmp_path, monkeypatch):
    """Killed between study.ask() and recording its worker: no worker, no heartbeat, so neither the process check
    nor Optuna's stale-heartbeat check would ever see it, and it would hold a place in the count for ever."""
    settings = _settings(tmp_path, trials=2)
    study = open_study(settings)
    trial = _claim(study, settings, pid=None)
    assert fail_dead_trials(study, log=lambda *_: None) == []  # within the grace period: maybe still starting
    monkeypatch.setattr(search, "GRACE_S", 0)
    assert fail_dead_trials(study, log=lambda *_: None) == [trial.number]
    assert study.trials[trial.number].user_attrs["fail_reason"] == "its worker died before starting it"
    assert not [t for t in study.trials if t.state.name == "WAITING"]  # it drew no parameters: nothing to rerun


@pytest.mark.slow  # one tiny training: ~45 s on the shared cores
def test_worker_waiting_on_another_takes_over_its_trial_when_it_dies(tmp_path, tiny_shapes, monkeypatch):
    """Trial 0 finished, trial 1 runs in another (live) worker: this worker has nothing to claim and waits. When the
    other worker dies, this one fails its trial, runs its parameters, and the search ends with 2 finished trials;
    before, it waited only for RUNNING to reach 0 and wrote its results one trial short."""
    settings = _settings(tmp_path, trials=2)
    study = open_study(settings)
    first = _claim(study, settings, pid=1)
    study.tell(first, 0.5)
    other = _claim(study, settings, pid=_dead_pid())
    checks = []

    def alive(pid):  # the other worker lives through this worker's first two checks, then dies
        checks.append(pid)
        return len(checks) <= 2

    monkeypatch.setattr(search, "_alive", alive)
    monkeypatch.setattr(search, "WAIT_S", 0.01)
    logs = []
    study = run_search(settings, log=logs.append, source=tiny_shapes)

    assert count_states(study) == {"COMPLETE": 2, "FAIL": 1}
    trials = study.trials
    assert trials[other.number].state.name == "FAIL"
    [retry] = [t for t in trials if t.user_attrs.get("retry_of") == other.number]
    assert retry.state.name == "COMPLETE" and retry.params == trials[other.number].params
    assert any("left RUNNING by a dead worker" in line for line in logs)


def test_space_without_sgd_and_with_a_decoupled_weight_decay_range():
    """The default space (not ResNet's) leaves SGD out of one Adam-scale lr range, and searches weight decay on the
    scale Keras 3 applies it (decoupled, times the lr), with 0 (the default config) inside."""
    from tflkit.core.trainconfig import TrainConfig
    from tflkit.tune.space import default_space

    params = {p.name: p for p in default_space("mobilenetv3_small_100").params}
    assert params["optimizer"].choices == ("adam", "adamw")
    assert params["weight_decay"].low == 0.0 and params["weight_decay"].high >= 0.05
    assert "sgd" in {p.name: p for p in default_space("resnet18").params}["optimizer"].choices
    base = TrainConfig(model="mobilenetv3_small_100")
    assert default_space("mobilenetv3_small_100").baseline(base)["weight_decay"] == 0.0
    assert parse_space({"optimizer": {"choices": ["sgd"]}}).names() == ["optimizer"]  # a space file may add it
