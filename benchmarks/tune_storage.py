"""What the storage costs a search: `tflkit tune` trials per minute with 1 and 2 workers on SQLite and on a local
PostgreSQL server, with the tests' tiny objective (test_mobilenetv3 on the embedded shapes, 1 epoch on 128 images
per trial), and the storage's own time per trial measured without training.

    python benchmarks/tune_storage.py [--rounds 3] [--trials 3] [--storage-trials 30] [--out PREFIX]

Per round, in rotating order (benchmarks/harness.py turn), each configuration (storage x workers) runs a new search
of --trials trials: W `tflkit tune` processes started at once on a new SQLite file or a new PostgreSQL database (a
server of its own, as tests/postgres_server.py runs it: 127.0.0.1, trust auth, fsync off). Trials per minute are
the search's finished trials over the span from the first trial's start to the last one's end, read from the
storage (process start-up, ~5 s of imports, is left out; the wall from launch to the last exit is reported beside).
The storage's own time per trial is the worker loop's storage calls for one trial (fail_dead_trials, count_states,
ask, the surplus check, the sampled parameters, its user attributes, a heartbeat, tell) in one process, no
training, against each storage.
Writes benchmarks/results/tune_storage.{md,json} (benchmarks/harness.py's writer: the CPU, its features, the
versions and the load average).
"""

from __future__ import annotations

import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

from tests.postgres_server import RUN_AS, PostgresServer, find_bin_dir
from tflkit.core.machine import version

NAME = "tune_storage"
SPACE = "batch_size: {choices: [32, 64]}\nlr: {low: 1e-3, high: 1e-2, log: true}\n"
STUDY = "tune-test_mobilenetv3-shapes"
TUNE = ["tune", "--model", "test_mobilenetv3", "--dataset", "shapes", "--epochs", "1",
        "--train-limit", "128", "--bn-momentum", "0.9"]
CONFIGS = [("sqlite", 1), ("postgresql", 1), ("sqlite", 2), ("postgresql", 2)]


def start_server(tmp: Path):
    """A PostgreSQL server of this benchmark's own (as root: run as the `postgres` user, which must exist)."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: apt-get install postgresql")
    run_as = RUN_AS if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="tflkit-pg-", dir="/tmp" if run_as else tmp))
    if run_as:
        account = pwd.getpwnam(RUN_AS)
        os.chown(root, account.pw_uid, account.pw_gid)
    return PostgresServer(bin_dir, root, run_as).start()


def new_storage(kind: str, server, out: Path) -> tuple[str, str]:
    """(the URL the workers are given, the URL this script reads the study back with)."""
    if kind == "sqlite":
        url = f"sqlite:///{out / 'tune.db'}"
        return url, url
    database = server.create_database()
    return server.url(database, driver=None), server.url(database)


def search(kind: str, workers: int, trials: int, server, out: Path) -> dict:
    import optuna

    out.mkdir(parents=True)
    (out / "space.yaml").write_text(SPACE)
    url, read_url = new_storage(kind, server, out)
    command = harness.tflkit(*TUNE, "--space", out / "space.yaml", "--trials", trials, "--out", out / "tune",
                             "--storage", url)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    procs = [subprocess.Popen(command, cwd=harness.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env) for _ in range(workers)]
    outputs = [p.communicate() for p in procs]
    wall = time.perf_counter() - start
    if any(p.returncode for p in procs):
        raise SystemExit(f"failed: {' '.join(command)}\n" + "\n".join(err[-2000:] for _, err in outputs))
    finished = [t for t in optuna.load_study(study_name=STUDY, storage=read_url).trials
                if t.state.name in ("COMPLETE", "PRUNED")]
    span = max(t.datetime_complete for t in finished) - min(t.datetime_start for t in finished)
    span_s = span.total_seconds()
    return {"storage": kind, "workers": workers, "trials": len(finished), "span_s": round(span_s, 2),
            "wall_s": round(wall, 2), "trials_per_min": round(60 * len(finished) / span_s, 2)}


def storage_ms_per_trial(url: str, trials: int) -> float:
    """The worker loop's storage calls for one trial, without the training between them (milliseconds). A random
    sampler draws the parameters, so the time is the storage's rather than TPE's."""
    import optuna

    from tflkit.tune import search as tune
    from tflkit.tune.search import TuneSettings

    settings = TuneSettings.of("test_mobilenetv3", "shapes", "unused", storage=url, trials=trials)
    space = settings.search_space()
    study = tune.open_study(settings, baseline=space.baseline(settings.base_config()), log=lambda *_: None)
    start = time.perf_counter()
    for _ in range(trials):
        tune.fail_dead_trials(study, log=lambda *_: None)
        tune.count_states(study)
        trial = study.ask()
        study.sampler = optuna.samplers.RandomSampler(seed=trial.number)
        tune._surplus(study, trial, trials)
        trial.set_user_attr("worker", {"host": "bench", "pid": os.getpid()})
        trial.set_user_attr("run_dir", f"trials/trial_{trial.number:04d}")
        study._storage.record_heartbeat(trial._trial_id)
        space.sample(trial)
        trial.report(0.5, 0)
        for key in ("train_s", "keras_val_top1", "epochs_run"):
            trial.set_user_attr(key, 1.0)
        study.tell(trial, 0.5)
    return 1000 * (time.perf_counter() - start) / trials


def main(argv=None) -> int:
    parser = harness.arguments(__doc__, NAME)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=3, help="trials per search (default 3)")
    parser.add_argument("--storage-trials", type=int, default=30, help="trials of the storage-only loop")
    args, results = parser.start(argv)
    runs, storage_ms = [], {"sqlite": [], "postgresql": []}
    with tempfile.TemporaryDirectory(prefix="tune-storage-") as tmp:
        server = start_server(Path(tmp))
        try:
            for r in range(args.rounds):
                for kind in ("sqlite", "postgresql"):
                    url = (f"sqlite:///{tmp}/storage{r}.db" if kind == "sqlite"
                           else server.url(server.create_database(), driver=None))
                    storage_ms[kind].append(storage_ms_per_trial(url, args.storage_trials))
                print(f"round {r + 1}  storage only: sqlite {storage_ms['sqlite'][-1]:.1f} ms/trial, postgresql "
                      f"{storage_ms['postgresql'][-1]:.1f} ms/trial", flush=True)
                for kind, workers in harness.turn(CONFIGS, r, "rotate"):
                    run = search(kind, workers, args.trials, server, Path(tmp) / f"r{r}-{kind}-{workers}")
                    runs.append({"round": r + 1, **run})
                    print(f"round {r + 1}  {kind:10s} {workers} worker(s)  {run['trials_per_min']:.2f} trials/min "
                          f"(span {run['span_s']:.1f} s, wall {run['wall_s']:.1f} s)", flush=True)
        finally:
            server.stop()
            shutil.rmtree(server.root, ignore_errors=True)
    rows = []
    for kind, workers in sorted(CONFIGS, key=lambda c: (c[1], c[0] != "sqlite")):
        mine = [x for x in runs if x["storage"] == kind and x["workers"] == workers]
        rates = harness.spread(x["trials_per_min"] for x in mine)
        rows.append({"storage": kind, "workers": workers, "rounds": len(mine),
                     "median_trials_per_min": rates["median"], "min_trials_per_min": rates["min"],
                     "max_trials_per_min": rates["max"], "median_wall_s": statistics.median(x["wall_s"] for x in mine)})
    summary = {"rows": rows,
               "median_storage_ms_per_trial": {k: round(statistics.median(v), 2) for k, v in storage_ms.items()}}
    versions = {"postgresql": _pg_version(), **{d: version(d) for d in ("optuna", "sqlalchemy", "psycopg")}}
    results.write(render, summary=summary, raw={"runs": runs, "storage_ms_per_trial": storage_ms},
                  settings={"rounds": args.rounds, "trials": args.trials, "storage_trials": args.storage_trials},
                  versions=versions)
    print(results.md_path.read_text())
    return 0


def render(result: dict) -> str:
    """The markdown from the JSON record (benchmarks/harness.py Results.write adds the conditions under it)."""
    rows, ms = result["summary"]["rows"], result["summary"]["median_storage_ms_per_trial"]
    env, v, settings = result["machine"], result["versions"], result["settings"]
    by = {(row["storage"], row["workers"]): row["median_trials_per_min"] for row in rows}
    trial_s = 60 / by[("sqlite", 1)]
    share = max(ms.values()) / 1000 / trial_s
    verdict = ("The storage is not what limits a search" if share < 0.05
               else f"The storage takes {100 * share:.0f}% of a trial's time")
    span = {(row["storage"], row["workers"]): (row["min_trials_per_min"], row["max_trials_per_min"]) for row in rows}
    overlap = all(span[("sqlite", w)][0] <= span[("postgresql", w)][1] and
                  span[("postgresql", w)][0] <= span[("sqlite", w)][1] for w in (1, 2))
    load_before, load_after = result["load_average"]["start"], result["load_average"]["end"]
    shared = " shared with other work" if load_before[0] >= 0.5 * (env["cores"] or 1) else ""
    workers = ""
    if all(by[(kind, 2)] < by[(kind, 1)] for kind in ("sqlite", "postgresql")):
        workers = (f" Two workers were slower than one on both storages: on {env['cores']} cores{shared} two "
                   f"TensorFlow processes take turns (each spreads its ops over all cores by "
                   f"default), and {settings['trials']} trials do not split evenly between two; workers pay where each "
                   f"has cores of its own.")
    lines = [
        "# Trials per minute on SQLite and on PostgreSQL", "",
        f"**{verdict}:** with 1 worker PostgreSQL gave {by[('postgresql', 1)]:.2f} trials/min against SQLite's "
        f"{by[('sqlite', 1)]:.2f}, with 2 workers {by[('postgresql', 2)]:.2f} against {by[('sqlite', 2)]:.2f} "
        f"(medians of {settings['rounds']} rounds; {'the ranges overlap' if overlap else 'ranges apart'}); a "
        f"trial's storage calls take "
        f"{ms['postgresql']:.0f} ms on PostgreSQL and {ms['sqlite']:.0f} ms on SQLite, against ~{trial_s:.0f} s for "
        f"even this tiny trial.{workers}", "",
        f"The whole benchmark took {result['seconds'] / 60:.1f} min. Each search: "
        f"`tflkit tune --model test_mobilenetv3 --dataset shapes --epochs 1 --train-limit 128 --trials "
        f"{settings['trials']}` with the tests' two-parameter space, W processes started at once on a new SQLite file "
        f"or a new database on a local PostgreSQL {v['postgresql']} server (127.0.0.1, fsync off), psycopg "
        f"{v['psycopg']}, Optuna {v['optuna']}, SQLAlchemy {v['sqlalchemy']}. Trials per minute: finished trials "
        f"over the span from the first trial's start to the last one's end in the storage (process start-up left "
        f"out; the wall from launch to the last exit beside it).", "",
        f"Load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
        f"{' (other work shared the cores)' if shared else ''}.", "",
        "| storage | workers | trials/min (median) | range | wall s (median) |", "|---|---|---|---|---|",
        *[f"| {row['storage']} | {row['workers']} | {row['median_trials_per_min']:.2f} | "
          f"{row['min_trials_per_min']:.2f}-{row['max_trials_per_min']:.2f} | {row['median_wall_s']:.1f} |"
          for row in rows],
        "",
        f"Storage calls per trial without training ({settings['storage_trials']} trials in one process: "
        f"fail_dead_trials, count_states, ask, the surplus check, 8 parameters drawn by a random sampler, 5 user "
        f"attributes, a heartbeat, a report, tell), median of {settings['rounds']}:", "",
        "| storage | ms per trial (median) | rounds |", "|---|---|---|",
        *[f"| {kind} | {ms[kind]:.1f} | {', '.join(f'{x:.1f}' for x in result['raw']['storage_ms_per_trial'][kind])} |"
          for kind in ms],
        "",
    ]
    return "\n".join(lines)


def _pg_version() -> str:
    bin_dir = find_bin_dir()
    done = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, text=True)
    return done.stdout.split()[2] if done.returncode == 0 else "?"  # "postgres (PostgreSQL) 15.18 (Debian ...)"


if __name__ == "__main__":
    sys.exit(main())
