"""`tflkit android devices|setup|bench|parse`: a thin shell over android_bench's API.

The main CLI calls `register(subparsers)`; each leaf parser carries `func(args) -> exit code`. Errors a user can
cause are raised as TflkitError and printed by the main CLI as one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from android_bench.adb import Adb
from android_bench.install import ensure_benchmark_model
from android_bench.parser import parse_log, read_log_text
from android_bench.runner import DELEGATE_FLAGS, bench, select_devices
from android_bench.table import format_op_profile, format_table
from tflkit.core.errors import DeviceError, TflkitError, UsageError
from tflkit.core.reply import JSON_HELP, Reply, item_error
from tflkit.core.results import BenchResult, load_results, save_results
from tflkit.core.run import Run

BINARY_ENV = "TFLKIT_BENCHMARK_MODEL"  # a default for --binary, so a lab machine sets it once


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def register(subparsers) -> argparse.ArgumentParser:
    android = subparsers.add_parser(
        "android",
        help="benchmark .tflite models on Android phones over adb (TensorFlow Lite's benchmark_model)",
        description="Benchmark .tflite models on Android phones over adb with TensorFlow Lite's benchmark_model.",
    )
    commands = android.add_subparsers(dest="android_command", metavar="COMMAND", required=True)

    devices = commands.add_parser("devices", help="list attached phones: state, model, SoC, ABIs, SDK, CPU cores")
    devices.add_argument("--json", action="store_true", help=JSON_HELP)
    devices.set_defaults(func=run_devices)

    setup = commands.add_parser("setup", help="put a working benchmark_model for the phone's ABI on the phone")
    _phone_flags(setup, f"a benchmark_model built for the phone (default: ${BINARY_ENV}, else the official prebuilt "
                        "nightly, downloaded once into ~/.cache/tflkit/benchmark_model/)")
    setup.set_defaults(func=run_setup)

    run = commands.add_parser("bench", help="benchmark models for each phone, thread count and delegate")
    run.add_argument("models", nargs="+", metavar="MODEL.tflite", help=".tflite files to push and time")
    _phone_flags(run, f"benchmark_model to push (default: ${BINARY_ENV}, else the one installed by setup, else the "
                      "official prebuilt)")
    run.add_argument("--threads", type=int, nargs="+", default=[1, 4], metavar="N", help="default: 1 4")
    run.add_argument("--delegate", nargs="+", default=["cpu"], choices=list(DELEGATE_FLAGS), dest="delegates",
                     help="cpu (XNNPACK off), xnnpack, gpu, nnapi; default: cpu")
    run.add_argument("--runs", type=int, default=50, help="timed runs per benchmark (default: 50)")
    run.add_argument("--warmup", type=int, default=1, help="warm-up runs (default: 1)")
    run.add_argument("--op-profiling", action="store_true", help="also record time per op type")
    run.add_argument("--taskset", metavar="MASK", help="pin to CPU cores, hex mask (f0 = cores 4-7)")
    run.add_argument("--cooldown", type=float, default=1.0, metavar="S", help="seconds between runs (default: 1)")
    run.add_argument("--timeout", type=float, default=300.0, metavar="S",
                     help="seconds before a run is killed and recorded as timeout (default: 300)")
    run.add_argument("--out", metavar="PATH",
                     help="results JSON (default: RUN_DIR/bench/android.json, RUN_DIR being the parent of the "
                          "first model's tflite/ folder, else that folder); rows for the same model, phone, "
                          "threads and delegate are replaced, others kept")
    run.add_argument("--keep", action="store_true", help="leave the pushed model and binary on the phone")
    run.set_defaults(func=run_bench)

    parse = commands.add_parser("parse", help="read saved benchmark_model output (any version) into results")
    parse.add_argument("logs", nargs="+", metavar="LOG", help="saved benchmark_model output, any version")
    parse.add_argument("--json", action="store_true", help=JSON_HELP)
    parse.set_defaults(func=run_parse)
    return android


def _phone_flags(parser, binary_help: str) -> None:
    """--serial, --binary and --json, which setup and bench share."""
    parser.add_argument("--serial", action="extend", nargs="+", dest="serials", metavar="S",
                        help="phone serial(s); default: every ready phone")
    parser.add_argument("--binary", metavar="PATH", default=os.environ.get(BINARY_ENV), help=binary_help)
    parser.add_argument("--json", action="store_true", help=JSON_HELP)


def run_devices(args) -> Reply:
    adb = Adb()
    rows = []
    for entry in adb.devices():
        row = {"serial": entry.serial, "state": entry.state}
        if entry.ready:
            try:
                facts = adb.facts(entry.serial)
            except DeviceError as exc:
                row["error"] = str(exc)
            else:
                row.update(facts.to_dict(), description=facts.describe(), cpu=facts.cpu_summary())
        rows.append(row)
    reply = Reply("android devices", rows, [item_error(r["serial"], r["error"]) for r in rows if "error" in r])
    if args.json:
        return reply
    if not rows:
        print("no Android device attached (adb devices lists none)")
    for row in rows:
        print(f"{row['serial']:<20} {row['state']:<14} {_device_details(row)}".rstrip())
    return reply


def _device_details(row: dict) -> str:
    if "error" in row:
        return row["error"]
    if "description" not in row:
        return ""  # not ready: adb cannot ask it anything
    abis = ",".join(row["abis"]) or "?"
    return f"{row['description']}  abi {abis}  sdk {row['sdk'] or '?'}  {row['cpu']}"


def run_setup(args) -> Reply:
    adb = Adb()
    serials = select_devices(adb, args.serials, _say)
    reply = Reply("android setup")
    for serial in serials:
        try:
            installed = ensure_benchmark_model(adb, serial, args.binary)
        except DeviceError as exc:
            if len(serials) == 1:
                raise
            reply.errors.append(item_error(serial, str(exc)))
            _say(f"tflkit: error: {exc}")
            continue
        how = "pushed" if installed.pushed else "already there"
        print(f"{serial}: benchmark_model ready at {installed.remote_path} ({how}; from {installed.source})")
        reply.results.append({"serial": serial, **dataclasses.asdict(installed)})
    return reply


def default_out_path(first_model: str | Path) -> Path:
    """RUN/bench/android.json, where `tflkit report RUN` reads it; else bench/ beside the model's folder.

    The path is resolved first: `tflkit android bench m.tflite` run inside RUN/tflite must still find RUN.
    """
    path = Path(first_model).resolve()
    run = Run.of_file(path)
    if run is None:
        folder = path.parent
        run = Run(folder.parent if folder.name == "tflite" else folder)
    return run.phone_bench_path()


def _run_key(result: BenchResult) -> tuple:
    return (result.model, result.target, result.threads, result.delegate)


def _merge(path: Path, new_results: list[BenchResult]) -> list[BenchResult]:
    """Earlier rows survive unless this run measured the same model, phone, threads and delegate again."""
    if not path.is_file():
        return new_results
    fresh = {_run_key(r) for r in new_results}
    return [r for r in load_results(path) if _run_key(r) not in fresh] + new_results


def run_bench(args) -> Reply:
    for model in args.models:  # a typo in a path is a usage error (exit 2), before any phone is touched
        if not Path(model).is_file():
            raise UsageError(f"model file not found: {model}")
    out = Path(args.out) if args.out else default_out_path(args.models[0])
    results = bench(
        args.models,
        args.serials,
        threads=args.threads,
        delegates=args.delegates,
        runs=args.runs,
        warmup=args.warmup,
        op_profiling=args.op_profiling,
        taskset=args.taskset,
        cooldown_s=args.cooldown,
        timeout_s=args.timeout,
        logs_dir=out.parent / "android_logs",
        keep=args.keep,
        binary=args.binary,
        progress=_say,
    )
    save_results(_merge(out, results), out)
    if not args.json:
        print(format_table(results))
    _say(f"saved {len(results)} results to {out} (raw logs in {out.parent / 'android_logs'})")
    # the convention: 1 when some run failed (the rest reported)
    errors = [item_error(f"{r.model} {r.target} {r.delegate} t{r.threads}", f"{r.status}: {r.message}")
              for r in results if not r.ok]
    return Reply("android bench", results, errors)


def run_parse(args) -> Reply:
    # A missing file is a usage error (exit 2) before anything is read; a file that is not a log is one line and
    # the rest are still printed (exit 1), like a log that records a failed run.
    for log in args.logs:
        if not Path(log).is_file():
            raise UsageError(f"log file not found: {log}")
    results, errors = [], []
    for log in args.logs:
        try:
            text = read_log_text(log)
        except TflkitError as exc:
            errors.append(item_error(log, str(exc)))
            _say(f"tflkit: error: {exc}")
            continue
        result = parse_log(text).result
        result.raw_log = str(log)
        results.append(result)
    # Like `bench`: exit 1 when a log records a failed (or empty) run, so scripts can tell.
    errors += [item_error(r.raw_log, f"{r.status}: {r.message}") for r in results if not r.ok]
    reply = Reply("android parse", results, errors)
    if args.json or not results:
        return reply
    print(format_table(results, show_file=len(args.logs) > 1))
    for result in results:
        if result.op_profile:
            print()
            print(format_op_profile(result))
    return reply
