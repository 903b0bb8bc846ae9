"""The search loop on Optuna: a seeded TPE sampler, a median pruner fed val top-1 after every epoch, trials kept in
an RDB storage (SQLite in the output directory by default) so that a killed search resumes and several workers,
each running the same command against one storage, share one search.

Counting: `--trials N` is N FINISHED trials, complete or pruned (Optuna's own n_trials counts the same way: a
pruned trial is decided, the pruner spent less time on it). FAILED trials (a crash, a dead worker, a surplus claim)
do not count. A worker claims a new trial only while finished + running < N, and a trial claimed in a race past
that count is closed unrun (FAIL, reason "surplus"); a worker with nothing left to claim waits while other
workers' trials run, and takes over any of them that dies. A trial whose worker died stays RUNNING in the storage:
a worker on the same host fails it at once (its process id is gone), one elsewhere after the heartbeat grace
period; either way it is not counted and its parameters are queued again (`retry_of` names the dead trial; a
retried baseline stays the baseline), so a killed search rerun ends with N finished trials and none lost.

Storage: `sqlite:///FILE` on one machine; a server URL (`postgresql://user@host/db`) for workers on several. A
`postgresql://` URL without a driver uses psycopg 3, the tune extra's driver (SQLAlchemy's default is psycopg2).
A worker survives a restart of the server: a pooled connection the restart cut is replaced when next taken from
the pool (pool_pre_ping), and while the server refuses connections a worker waits for it (up to STORAGE_WAIT_S)
instead of losing the trial it is running; after that it stops with one line (rerun it: its trial is failed and run
again).

Pruning (median pruner on the Keras val top-1 after each epoch): not before PRUNER_STARTUP_TRIALS trials have
finished (trial 0, the default configuration, and the sampler's first random ones), and never in the first half of
a trial's epochs: there a cosine schedule or a warm-up still holds the lr high, so its val top-1 lags a constant
schedule's and says little about where it ends (a 3-epoch search pruned at epoch 2 after 3 trials stopped 8 of 12).

Each trial is a tflkit run directory OUT/trials/trial_NNNN (config.yaml, model.keras, history.json, tflite/).
Trial 0 of a new search is the baseline: TrainConfig's defaults for every searched key they lie in the space of
(the others sampled), so the search always measures the configuration a user would get without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from tflkit.core.errors import TflkitError, UsageError
from tflkit.core.trainconfig import TrainConfig
from tflkit.data import load_dataset
from tflkit.models import get_spec, train_config
from tflkit.tune.objective import Objective, TrialFailed, score_run
from tflkit.tune.report import write_results
from tflkit.tune.space import SearchSpace, default_space, load_space

HEARTBEAT_S, GRACE_S = 15, 90  # a RUNNING trial without a heartbeat for GRACE_S is dead (other hosts)
WAIT_S = 5  # a worker with no trial to claim checks other workers' running trials this often
PRUNER_STARTUP_TRIALS = 5  # finished trials before the median pruner judges any
# The training keys a search recorded before TuneSettings held a whole TrainConfig: always in its identity, so a
# search stored then is recognized by the same flags now.
IDENTITY_TRAIN_KEYS = ("model", "dataset", "seed", "epochs", "train_limit", "image_size", "small_input", "bn_momentum",
                       "pretrained", "deterministic")
TUNE_EPOCHS = 3  # a trial's default length: a search ranks settings, it does not finish training
MAX_FAILURES_IN_A_ROW = 3  # a search whose trials all fail (the recipe never converts, ...) stops with the reason
FINISHED = ("COMPLETE", "PRUNED")
STORAGE_WAIT_S = 300  # a worker waits this long for a storage server that refuses connections (restart, failover)


@dataclass(frozen=True)
class TuneSettings:
    """A search: `train` is every trial's config (`tflkit train`'s settings, under the values each trial samples),
    the rest how the search runs."""

    train: TrainConfig
    out: str
    trials: int = 12
    space: str | None = None  # a YAML space file laid over the model's default space
    objective: Objective = Objective()
    storage: str | None = None  # default sqlite:///OUT/tune.db
    study_name: str | None = None  # default tune-<model>-<dataset>
    prune: bool = True

    @classmethod
    def of(cls, model: str, dataset: str, out, **settings) -> TuneSettings:
        """A search of `model` on `dataset`: `settings` are this class's fields and the TrainConfig fields every
        trial starts from (over the architecture's training defaults; epochs default TUNE_EPOCHS)."""
        own = {f.name for f in fields(cls)} - {"train", "out"}
        train = {"epochs": TUNE_EPOCHS, **{k: v for k, v in settings.items() if k not in own}}
        return cls(train=train_config(model, dataset=dataset, **train), out=str(out),
                   **{k: v for k, v in settings.items() if k in own})

    def check(self) -> TuneSettings:
        if self.trials < 1:
            raise UsageError(f"--trials must be at least 1, got {self.trials}")
        self.objective.check()
        return self

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(Path(self.out) / 'tune.db').resolve()}"

    @property
    def storage_shown(self) -> str:
        """The storage URL as logs and messages show it: a password in it as ***."""
        return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", self.storage_url)

    @property
    def name(self) -> str:
        return self.study_name or f"tune-{self.train.model}-{self.train.dataset.replace(':', '-').replace('/', '-')}"

    def base_config(self) -> TrainConfig:
        return self.train

    def search_space(self) -> SearchSpace:
        pretrained = self.train.pretrained not in ("none", "")
        if self.space:
            return load_space(self.space, self.train.model, pretrained)
        return default_space(self.train.model, pretrained)

    def identity(self) -> dict:
        """What must match for a rerun to continue a stored search (trial counts, storage and where the data is may
        change): the search's settings and every training setting but data_dir, a setting at its TrainConfig
        default left out (a field added to TrainConfig later keeps a stored search continuable)."""
        train = {k: v for k, v in asdict(self.train).items() if k != "data_dir"}
        defaults = {f.name: f.default for f in fields(TrainConfig)}
        return {**{k: v for k, v in train.items() if k in IDENTITY_TRAIN_KEYS or v != defaults.get(k)},
                "space": self.space, "objective": asdict(self.objective), "study_name": self.study_name,
                "prune": self.prune}


def trial_dir(out, number: int) -> Path:
    return Path(out) / "trials" / f"trial_{number:04d}"


def _optuna():
    try:
        import optuna
    except ImportError:
        raise TflkitError("tflkit tune needs Optuna: pip install 'tflkit[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Heartbeats with ask/tell and fail_stale_trials are what a worker loop needs; Optuna flags both as unusual.
    warnings.filterwarnings("ignore", message=r".*(fail_stale_trials|heartbeat_interval).* is (an )?experimental")
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    return optuna


def engine_url(url: str) -> str:
    """The URL SQLAlchemy opens: a PostgreSQL URL without a driver (`postgresql://`, or Heroku's `postgres://`) gets
    psycopg 3, the driver the tune extra installs, where it imports; else psycopg2, SQLAlchemy's default for it,
    where that imports. Any other URL, SQLite's included, is left as it is."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        return url
    for driver in ("psycopg", "psycopg2"):
        try:
            __import__(driver)
        except ImportError:
            continue
        return f"postgresql+{driver}://{rest}"
    raise TflkitError(f"a {scheme}:// storage needs a PostgreSQL driver, and neither psycopg nor psycopg2 imports: "
                      f"pip install 'tflkit[tune]'")


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 120}}
    # A server's pooled connections die with a restart: without pool_pre_ping the first storage call after
    # `pg_ctl restart` failed (AdminShutdown: terminating connection due to administrator command); with it the
    # pool replaces the connection when it is next taken
    return {"pool_pre_ping": True}


def _wait_for_server(log):
    """A do_connect hook: while the storage server refuses connections (restarting, failing over) a new connection
    is retried for up to STORAGE_WAIT_S, so the trial a worker is running is not lost to a restart. A connection
    that fails before the search is open (a wrong URL, a server that is not there) is not waited for."""

    def connect(dialect, connection_record, cargs, cparams):
        dbapi = getattr(dialect, "loaded_dbapi", None) or dialect.dbapi
        deadline, delay, waiting = time.monotonic() + STORAGE_WAIT_S, 1.0, False
        while True:
            try:
                connection = dialect.connect(*cargs, **cparams)
            except dbapi.OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                if not waiting:
                    log(f"tune     storage unreachable ({_first_line(exc)}): waiting up to {STORAGE_WAIT_S} s for it")
                    waiting = True
                time.sleep(delay)
                delay = min(2 * delay, 15.0)
            else:
                if waiting:
                    log("tune     storage reachable again")
                return connection

    return connect


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _unreachable(exc: BaseException) -> bool:
    """Whether a storage error is the server being out of reach (Optuna wraps SQLAlchemy's error in its own)."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    cause = exc if isinstance(exc, DBAPIError) else exc.__cause__
    return isinstance(cause, OperationalError) or (isinstance(cause, DBAPIError) and cause.connection_invalidated)


def open_study(settings: TuneSettings, baseline: dict | None = None, log=print):
    """Create the study, or load it when the storage holds it (a resumed search, or another worker's). A new study
    gets `baseline` (the default configuration's values) queued as its first trial."""
    optuna = _optuna()
    url = settings.storage_url
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    url = engine_url(url)
    engine_kwargs = _engine_kwargs(url)
    from sqlalchemy import event
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

    for attempt in range(5):  # two workers creating the schema of one new storage at once: one waits
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S,
                                                 grace_period=GRACE_S, heartbeat_stale_trial_callback=_retry)
            study = optuna.create_study(study_name=settings.name, storage=storage, direction="maximize",
                                        pruner=_pruner(settings), load_if_exists=True)
            break
        except ImportError as exc:  # Optuna's "Failed to import DB access module"; the driver's error is the cause
            raise TflkitError(f"cannot open the tune storage {settings.storage_shown}: "
                              f"{_first_line(exc.__cause__ or exc)}; pip install 'tflkit[tune]'") from None
        # a schema or version row the other worker just wrote (on PostgreSQL a table it just created is a
        # ProgrammingError, "relation already exists")
        except (OperationalError, IntegrityError, ProgrammingError) as exc:
            if attempt == 4:
                raise TflkitError(f"cannot open the tune storage {settings.storage_shown}: "
                                  f"{_first_line(exc)}") from None
            time.sleep(1 + attempt)
    if not url.startswith("sqlite"):
        event.listen(storage.engine, "do_connect", _wait_for_server(log))
    stored = study.user_attrs.get("settings")
    if stored is None:
        try:
            study.set_user_attr("settings", settings.identity())
            if baseline and not study.trials:  # skip_if_exists: a worker creating the study at once adds none
                study.enqueue_trial(baseline, user_attrs={"baseline": True}, skip_if_exists=True)
        except IntegrityError:  # another worker wrote the settings first: compare with its
            stored = study.user_attrs.get("settings")
    wanted = json.loads(json.dumps(settings.identity()))  # as stored: tuples become lists
    if stored is not None and stored != wanted:
        changed = sorted(k for k in stored if stored.get(k) != wanted.get(k))
        raise UsageError(f"the storage holds study {settings.name!r} with other settings ({', '.join(changed)}); "
                         f"rerun with the same flags, or choose another --out / --study-name")
    return study


def _pruner(settings: TuneSettings):
    optuna = _optuna()
    if not settings.prune:
        return optuna.pruners.NopPruner()
    # The median of fewer than 5 finished trials is mostly the sampler's random draws; the first half of the epochs
    # is the warm-up / high-lr part of a schedule (steps are 0-based epochs: from step epochs//2 on it may prune)
    return optuna.pruners.MedianPruner(n_startup_trials=min(PRUNER_STARTUP_TRIALS, max(1, settings.trials - 1)),
                                       n_warmup_steps=max(1, settings.train.epochs // 2))


def _sampler(settings: TuneSettings, number: int):
    """A TPE sampler seeded per trial number: two workers never share a random stream, and a one-worker search
    with the same seed samples the same first configurations."""
    optuna = _optuna()
    constraints = None
    if settings.objective.constrained and not hasattr(optuna.trial.Trial, "set_constraint"):  # Optuna 4
        names = [n for n, v in (("latency_ms", settings.objective.max_latency_ms),
                                ("size_mb", settings.objective.max_size_mb)) if v is not None]

        def constraints(trial):
            stored = trial.user_attrs.get("constraints") or {}
            return [stored.get(n, 0.0) for n in names]

    return optuna.samplers.TPESampler(seed=settings.train.seed * 100003 + number,
                                      n_startup_trials=max(2, min(10, settings.trials // 3)),
                                      constraints_func=constraints)


def _retry(study, trial) -> None:
    """Queue the parameters of a trial whose worker died, so the search does not lose it."""
    if trial.params and not trial.user_attrs.get("surplus"):
        attrs = {"retry_of": trial.number, **({"baseline": True} if trial.user_attrs.get("baseline") else {})}
        study.enqueue_trial(trial.params, user_attrs=attrs, skip_if_exists=False)


def fail_dead_trials(study, log=print) -> list[int]:
    """RUNNING trials whose worker is gone: on this host when its process has exited, elsewhere when its heartbeat
    is older than the grace period, anywhere when it never recorded a worker (killed between claiming the trial
    and starting it: no heartbeat either, so Optuna's stale check never sees it) and began more than the grace
    period ago. Each is marked FAIL and its parameters (if it drew any) queued again."""
    optuna = _optuna()
    host, dead, now = socket.gethostname(), [], time.time()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        if not worker:
            if t.datetime_start is None or now - t.datetime_start.timestamp() < GRACE_S:
                continue
            reason = "its worker died before starting it"
        elif worker.get("host") != host or _alive(worker.get("pid")):
            continue
        else:
            reason = f"worker process {worker['pid']} died"
        try:  # the reason first: a finished trial takes no more attributes
            study._storage.set_trial_user_attr(t._trial_id, "fail_reason", reason)
            ok = study._storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        if ok:
            _retry(study, t)
            dead.append(t.number)
    optuna.storages.fail_stale_trials(study)  # other hosts: heartbeat older than GRACE_S (calls _retry too)
    if dead:
        log(f"tune     trial(s) {', '.join(map(str, dead))} left RUNNING by a dead worker: failed, queued again")
    return dead


def _alive(pid) -> bool:
    if not pid:
        return True  # no record: leave it to the heartbeat
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def count_states(study) -> dict:
    counts: dict = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


class _Heartbeat:
    """Records the trial's heartbeat every HEARTBEAT_S seconds from a daemon thread while the trial runs."""

    def __init__(self, study, trial_id: int):
        self.storage, self.trial_id, self.stop = study._storage, trial_id, threading.Event()
        self.storage.record_heartbeat(trial_id)
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        from optuna.exceptions import StorageInternalError

        while not self.stop.wait(HEARTBEAT_S):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except StorageInternalError as exc:  # one missed beat; an uncaught error would end the beats for good
                if not _unreachable(exc):
                    raise

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _pruning_callback(trial, total_epochs: int, log):
    """Reports val top-1 after every epoch; stops a trial the median pruner rejects (never at the last epoch: there
    pruning saves nothing and would only hide a finished score)."""
    import keras

    class ReportAndPrune(keras.callbacks.Callback):
        pruned_at = None

        def on_train_begin(self, logs=None):
            if self.pruned_at is not None:  # a second phase (fine-tune) after a pruned head phase
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            value = (logs or {}).get("val_top1")
            if value is None:
                return
            trial.report(float(value), epoch)
            if epoch + 1 < total_epochs and trial.should_prune():
                self.pruned_at = epoch
                self.model.stop_training = True
                log(f"tune     trial {trial.number} pruned after epoch {epoch + 1} (val top-1 {100 * value:.2f}%)")

    return ReportAndPrune()


def run_search(settings: TuneSettings, log=print, source=None):
    """Run trials until `settings.trials` have finished in the storage (together with other workers), then write
    the results (trials.csv, best.yaml, report.md/.html). Returns the study."""
    settings.check()
    optuna = _optuna()
    space = settings.search_space()
    base = settings.base_config()
    space.check_against(base)

    get_spec(settings.train.model)
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    study = open_study(settings, baseline=space.baseline(base), log=log)
    if source is None:
        source = load_dataset(settings.train.dataset, data_dir=settings.train.data_dir, seed=settings.train.seed)
    if "val" not in source.splits:
        raise UsageError(f"{settings.train.dataset} has no val split to score trials on (do not disable val carving)")
    log(f"tune     {settings.name}: {settings.trials} trials of {settings.train.model} on {source.label}, "
        f"objective {settings.objective.describe()}; storage {settings.storage_shown}")
    from sqlalchemy.exc import DBAPIError

    try:
        _work(study, settings, space, base, source, log)
    except (optuna.exceptions.StorageInternalError, DBAPIError) as exc:
        if not _unreachable(exc):
            raise
        cause = exc if isinstance(exc, DBAPIError) else exc.__cause__
        raise TflkitError(f"the tune storage {settings.storage_shown} is unreachable ({_first_line(cause)}); rerun "
                          f"the same command when it is back: the search goes on") from None

    paths = write_results(study, settings, space)
    log(f"tune     written: {', '.join(str(p) for p in paths)}")
    return study


def _work(study, settings: TuneSettings, space: SearchSpace, base: TrainConfig, source, log) -> None:
    """The worker loop: claim and run trials until `settings.trials` have finished in the storage."""
    optuna = _optuna()
    failures = 0
    while True:
        fail_dead_trials(study, log)
        counts = count_states(study)
        finished = sum(counts.get(s, 0) for s in FINISHED)
        if finished >= settings.trials:
            break
        if finished + counts.get("RUNNING", 0) >= settings.trials:
            # other workers' last trials: wait for them (the report needs them all), and take over any that dies
            time.sleep(WAIT_S)
            continue
        trial = study.ask()
        study.sampler = _sampler(settings, trial.number)  # suggest_* draws from study.sampler, after ask
        if _surplus(study, trial, settings.trials):
            trial.set_user_attr("surplus", True)
            trial.set_user_attr("fail_reason", "surplus: another worker claimed the last trial at the same time")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        state = _run_trial(study, trial, settings, space, base, source, log)
        failures = failures + 1 if state == "FAIL" else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            reason = trial.user_attrs.get("fail_reason", "")
            raise TflkitError(f"{failures} trials failed in a row, last: {reason}")


def _surplus(study, trial, wanted: int) -> bool:
    """Whether earlier-numbered finished or running trials already make `wanted` (a race between workers)."""
    ahead = [t for t in study.get_trials(deepcopy=False)
             if t.number < trial.number and t.state.name in (*FINISHED, "RUNNING")]
    return len(ahead) >= wanted


def _run_trial(study, trial, settings: TuneSettings, space: SearchSpace, base: TrainConfig, source, log) -> str:
    optuna = _optuna()
    from tflkit.training.loop import train  # TensorFlow: a worker that only reports never loads it

    run_dir = trial_dir(settings.out, trial.number)
    trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
    trial.set_user_attr("run_dir", str(run_dir))
    with _Heartbeat(study, trial._trial_id):
        params = space.sample(trial)
        config = replace(base, **params)
        retry = trial.user_attrs.get("retry_of")
        log(f"tune     trial {trial.number} start  {_describe(params)}"
            + (f"  (retry of trial {retry})" if retry is not None else ""))
        if run_dir.exists():  # a trial number the storage no longer knows (the database was replaced)
            shutil.rmtree(run_dir)
        start = time.perf_counter()
        try:
            callback = _pruning_callback(trial, config.total_epochs, log) if settings.prune else None
            history = train(config, run_dir, verbose=0, source=source, callbacks=[callback] if callback else [])
            trial.set_user_attr("train_s", round(time.perf_counter() - start, 1))
            trial.set_user_attr("keras_val_top1", max(history.get("val_top1") or [0.0]))
            trial.set_user_attr("epochs_run", len(history.get("val_top1") or []))
            if callback is not None and callback.pruned_at is not None:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return "PRUNED"
            score = score_run(run_dir, history, settings.objective, source, log=lambda *_: None)
        except TrialFailed as exc:
            trial.set_user_attr("fail_reason", str(exc))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            log(f"tune     trial {trial.number} failed: {exc}")
            return "FAIL"
        except BaseException as exc:
            trial.set_user_attr("fail_reason", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if not isinstance(exc, Exception):  # interrupted (Ctrl-C), not broken: the next run retries it
                _retry(study, study._storage.get_trial(trial._trial_id))
            raise
        for key, value in score.to_attrs().items():
            trial.set_user_attr(key, value)
        if settings.objective.constrained:
            values = score.constraint_values(settings.objective)
            trial.set_user_attr("constraints", values)
            if hasattr(trial, "set_constraint"):  # Optuna 5; Optuna 4 reads them through constraints_func
                for name, value in values.items():
                    trial.set_constraint(name, value)
        study.tell(trial, score.value)
    feasible = f"  infeasible: {score.infeasible_reason}" if score.violations else ""
    log(f"tune     trial {trial.number} done   value {100 * score.value:.2f}%  "
        f"(keras val {100 * score.keras_val_top1:.2f}%, {time.perf_counter() - start:.0f}s){feasible}")
    return "COMPLETE"


def _describe(params: dict) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
