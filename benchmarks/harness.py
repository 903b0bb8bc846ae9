"""The harness every script in benchmarks/ runs on: the checkout on the path, the machine record, side-by-side
rounds with medians and spread, host latency through tflkit's own bench, and one results writer.

    import harness                      # first among a script's imports: the checkout's tflkit from here on
    from tflkit...                      # (isort puts this module, third-party to it, before tflkit anyway)

    parser = harness.arguments(__doc__, "my_bench")              # --out PREFIX (default benchmarks/results/my_bench)
    args, results = parser.start(argv)                           # the command line; the clock and load from now
    rounds = harness.side_by_side({"a": run_a, "b": run_b}, 3)   # each side once a round, order flipping
    ratio = harness.spread(harness.ratios(rounds, "a", "b"))     # median, min, max over the rounds
    results.write(markdown, summary={"ratio": ratio}, raw=rounds)  # PREFIX.json and PREFIX.md, atomically

What it holds, and why one place:
- **The checkout first.** A script run as `python benchmarks/X.py` has benchmarks/ on its path, not the repository;
  importing this module puts the repository root first on `sys.path` and on `PYTHONPATH`, so the script, the
  `tflkit` commands it starts and tflkit's own isolated children (the host benchmark's fresh process) all run this
  checkout's code rather than whatever tflkit is installed.
- **The machine record** (tflkit.core.machine.environment: CPU, its AVX2/AVX-512/VNNI/AMX features, cores, Python,
  TensorFlow, Keras, LiteRT, NumPy, the kernel switches, tflkit's commit) with the load average at the start and at
  the end: a number without its CPU is not a result.
- **Side by side.** `side_by_side` calls every side once a round, in an order that flips (or rotates) from round to
  round, so the machine's drift and any advantage of going first hit every side alike; `spread` gives the median
  and min-max over rounds, `ratios` the per-round (paired) ratios of two sides.
- **Host latency through tflkit's own bench** (`host_latency`: tflkit.bench.host.bench_models, its warm-up, timed
  loop and summarize_ms), in one fresh process that never imported TensorFlow, as `tflkit bench` and
  tflkit.pipeline.stages.bench_host run it; the files take turns round after round.
- **One writer.** `Results.write` writes PREFIX.json (the benchmark, the exact command line, the machine, the raw
  per-round numbers, the summary) and PREFIX.md (the script's table, then the conditions), each atomically
  (tflkit.core.fileio), so a reader never sees half a result and a killed run leaves the last complete one.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STUDIES = ROOT / "benchmarks" / "studies"


def _checkout_first() -> None:
    """This checkout's packages (tflkit, converters, android_bench, tests' helpers) for this process and every
    Python process it starts: sys.path for itself, PYTHONPATH for `python -m tflkit ...` and isolate's children."""
    root = str(ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])


_checkout_first()

from tflkit.core.fileio import atomic_write_text  # noqa: E402 (the checkout's tflkit, after the line above)
from tflkit.core.machine import environment  # noqa: E402


# -- the command line ----------------------------------------------------------------------------------------------
class Arguments(argparse.ArgumentParser):
    """A benchmark's command line: described by the docstring's first paragraph, with the results option every
    script has (`out_flag PREFIX`: PREFIX.json and PREFIX.md, default benchmarks/results/NAME; scripts whose `--out`
    already names something else, a run or a study directory, take `--results PREFIX`). `start` parses it and opens
    the run's Results."""

    def __init__(self, doc: str, name: str, out_flag: str = "--out"):
        super().__init__(description=doc.strip().split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
        self.name = name
        self.add_argument(out_flag, dest="results", type=Path, default=RESULTS / name, metavar="PREFIX",
                          help=f"write PREFIX.json and PREFIX.md (default: benchmarks/results/{name}; a smoke run "
                               "writes elsewhere, e.g. /tmp/x, so that the recorded result stays)")

    def start(self, argv=None) -> tuple[argparse.Namespace, Results]:
        """(the parsed arguments, the Results this run writes), the clock and the load taken now."""
        args = self.parse_args(argv)
        return args, Results(self.name, args.results, argv)


def arguments(doc: str, name: str, out_flag: str = "--out") -> Arguments:
    """The parser of a benchmark called `name` (see Arguments)."""
    return Arguments(doc, name, out_flag)


def tensorflow():
    """TensorFlow, imported quietly (tflkit.core.tfenv), for the scripts that build or train models."""
    from tflkit.core.tfenv import quiet_tensorflow

    return quiet_tensorflow()


def command_line(argv=None) -> str:
    """The command as it was typed (`python benchmarks/X.py ...`), `argv` when main() was called with one."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return shlex.join(["python", str(shown), *map(str, sys.argv[1:] if argv is None else argv)])


def tflkit(*args) -> list[str]:
    """`python -m tflkit ARGS` with this interpreter (the checkout's tflkit: PYTHONPATH, above)."""
    return [sys.executable, "-m", "tflkit", *map(str, args)]


def run(command, *, env: dict | None = None, check: bool = True, **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    """Run `command` from the repository root with its output captured: (wall seconds, the completed process).
    `env`: variables over this process's. A failure (with `check`) stops the benchmark: SystemExit naming the
    command, with the tail of its stderr."""
    kwargs.setdefault("capture_output", "stdout" not in kwargs)
    start = time.perf_counter()
    done = subprocess.run([str(c) for c in command], cwd=kwargs.pop("cwd", ROOT), text=True,
                          env={**os.environ, **(env or {})}, **kwargs)
    wall = time.perf_counter() - start
    if check and done.returncode != 0:
        raise SystemExit(f"failed (exit {done.returncode}): {shlex.join(map(str, command))}\n"
                         f"{(done.stderr or '')[-2000:]}")
    return wall, done


# -- timing --------------------------------------------------------------------------------------------------------
def seconds(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    """(wall seconds, value) of one call."""
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def spread(values) -> dict:
    """Median and min-max of per-round values (n: how many)."""
    values = list(values)
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt_spread(s: dict, digits: int = 2) -> str:
    """`1.23 (1.10-1.40)`: the median, then the range."""
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def turn(names: list, round_index: int, order: str = "flip") -> list:
    """The order of `names` in round `round_index`: "flip" reverses it every other round, "rotate" shifts it by one
    a round (every name goes first as often as the others)."""
    if order == "flip":
        return list(names) if round_index % 2 == 0 else list(names)[::-1]
    if order == "rotate":
        k = round_index % len(names)
        return list(names)[k:] + list(names)[:k]
    raise ValueError(f"order must be flip or rotate, got {order!r}")


def side_by_side(sides: dict[str, Callable[[int], object]], rounds: int, order: str = "flip",
                 on_round: Callable[[dict], None] | None = None) -> list[dict]:
    """Call every side once a round, `sides[name](round_index)`, in an order that changes each round (`turn`).
    Returns one dict a round, {"round", "order", name: value, ...}; `on_round` sees each as it is complete."""
    done = []
    for i in range(rounds):
        order_now = turn(list(sides), i, order)
        row = {"round": i, "order": order_now}
        for name in order_now:
            row[name] = sides[name](i)
        done.append(row)
        if on_round is not None:
            on_round(row)
    return done


def column(rounds: list[dict], side: str, key: str | None = None) -> list:
    """One side's value in every round (`key`: of a dict value)."""
    return [r[side] if key is None else r[side][key] for r in rounds]


def ratios(rounds: list[dict], a: str, b: str, key: str | None = None) -> list[float]:
    """a / b in each round: paired, so drift between rounds cancels."""
    return [x / y for x, y in zip(column(rounds, a, key), column(rounds, b, key))]


def host_latency(paths, threads=(1,), rounds: int = 1, runs: int = 50, warmup: int = 5,
                 xnnpack: bool = True) -> dict[str, dict[int, dict]]:
    """Latency of each .tflite at each thread count through tflkit's own host bench (bench_models: its warm-up, its
    timed loop, summarize_ms), in one fresh process that never imported TensorFlow. Each round benches every file
    once (a fresh interpreter, `warmup` then `runs` timed invokes), the files taking turns in an order that rotates
    from round to round so that all of them see the same load. Returns {file name: {threads: latency_summary}}."""
    from tflkit.bench.host import BenchSettings, bench_models
    from tflkit.core import isolate

    paths = [str(p) for p in paths]
    settings = BenchSettings(runs=runs, warmup=warmup, xnnpack=xnnpack)
    rows: dict[tuple[str, int], list] = {(Path(p).name, t): [] for p in paths for t in threads}
    with isolate.Worker() as worker:
        for i in range(rounds):
            for result in worker.call(bench_models, turn(paths, i, "rotate"), tuple(threads), settings, with_macs=False,
                                      with_memory=False):
                rows[(result.model, result.threads)].append(result)
    out: dict[str, dict[int, dict]] = {}
    for (name, n), results in rows.items():
        out.setdefault(name, {})[n] = latency_summary(results)
    return out


def latency_summary(results) -> dict:
    """BenchResults of one file and thread count over rounds: the median of the per-round medians, the median of
    their p5 and p95 (the spread within a round), the range of the per-round medians (the spread between rounds),
    and the per-round medians themselves. A file that could not be timed: its status and message."""
    ok = [r for r in results if r.ok]
    if not ok:
        first = results[0]
        return {"status": first.status, "message": first.message}
    medians = [r.median_ms for r in ok]
    return {"median_ms": statistics.median(medians), "p5_ms": statistics.median(r.p5_ms for r in ok),
            "p95_ms": statistics.median(r.p95_ms for r in ok), "round_min_ms": min(medians),
            "round_max_ms": max(medians), "rounds": len(ok), "runs_per_round": ok[0].count,
            "delegate": ok[0].delegate, "partitions": ok[0].partitions, "per_round_median_ms": medians}


# -- the results writer --------------------------------------------------------------------------------------------
def table(head: list[str], rows) -> list[str]:
    """A markdown table's lines."""
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)]


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class Results:
    """One run of a benchmark and where it goes: PREFIX.json and PREFIX.md (default benchmarks/results/NAME).
    Made when the run starts (the command line, the start time and load); `write` may be called as often as rows
    come in (each write replaces both files atomically)."""

    def __init__(self, name: str, prefix=None, argv=None):
        self.name = name
        self.prefix = Path(prefix) if prefix is not None else RESULTS / name
        self.command = command_line(argv)
        self.started = time.time()
        self.load_start = load_average()

    @property
    def machine(self) -> dict:
        return environment()

    @property
    def json_path(self) -> Path:
        return Path(f"{self.prefix}.json")

    @property
    def md_path(self) -> Path:
        return Path(f"{self.prefix}.md")

    def record(self, summary, raw=None, **extra) -> dict:
        return {"benchmark": self.name, "command": self.command,
                "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.started)),
                "seconds": round(time.time() - self.started, 1), "machine": self.machine,
                "load_average": {"start": self.load_start, "end": load_average()}, **extra,
                "summary": summary, "raw": raw}

    def write(self, markdown, summary, raw=None, **extra) -> dict:
        """PREFIX.json: {benchmark, command, started, seconds, machine, load_average, **extra, summary, raw};
        PREFIX.md: `markdown` (the script's table; or a function of the JSON record that renders it) and then the
        conditions. Returns the JSON record."""
        record = self.record(summary, raw, **extra)
        if callable(markdown):
            markdown = markdown(record)
        atomic_write_text(self.json_path, json.dumps(record, indent=1, default=str) + "\n")
        atomic_write_text(self.md_path, markdown.rstrip() + "\n\n" + conditions(record) + "\n")
        return record


def conditions(record: dict) -> str:
    """The machine and the run, as the paragraph under every result table."""
    m, load = record["machine"], record["load_average"]
    switches = [f"{k}={m[k]}" for k in ("TF_ENABLE_ONEDNN_OPTS", "TF_DETERMINISTIC_OPS", "OMP_NUM_THREADS") if k in m]
    versions = ", ".join(f"{label} {m.get(key)}" for label, key in (
        ("Python", "python"), ("TensorFlow", "tensorflow"), ("Keras", "keras"), ("LiteRT", "ai-edge-litert"),
        ("NumPy", "numpy"), ("tflkit", "tflkit")))
    return "\n".join([
        "## Conditions", "",
        f"Command: `{record['command']}` (started {record['started']}, {record['seconds']:.0f} s).",
        f"CPU: {m.get('cpu')}, {m.get('cores')} cores, features {m.get('cpu_features') or 'none of those recorded'}; "
        f"{m.get('platform')}.",
        f"{versions} (commit {m.get('tflkit_commit') or 'unknown'})" + (f"; {', '.join(switches)}" if switches else "")
        + ".",
        f"Load average (1, 5, 15 min): {', '.join(map(str, load['start']))} at the start, "
        f"{', '.join(map(str, load['end']))} at the end.",
    ])
