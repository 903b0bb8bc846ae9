"""`tflkit study init|run|report` and `tflkit pick`: a study of many runs, its report, a pick (tflkit.api)."""

from __future__ import annotations

import argparse
import sys

from tflkit import api
from tflkit.cli.common import JSON_HELP, Reply, item_error
from tflkit.study.pick import format_pick
from tflkit.study.store import STUDY_DB


def cmd_study_init(args) -> Reply:
    path = api.Study.init(args.path, force=args.force)
    print(f"written: {path}  (edit it, then: tflkit study run {path} --out runs/my_study)")
    return Reply("study init", [{"path": str(path)}])


def cmd_study_run(args) -> Reply:
    study = api.Study.load(args.study)
    summary = study.run(args.out, executor=args.executor, jobs=args.jobs, ray_address=args.ray_address,
                        allow_changes=tuple(args.allow_changes or ()), retry_failed=args.retry_failed,
                        remeasure=tuple(args.remeasure or ()), cells=tuple(args.cells or ()), max_steps=args.max_steps,
                        log=_progress if not args.json else None)
    if not args.json:
        print(f"study    done in {summary.wall_s:.0f}s: {summary.stages_ok} stages ok, {summary.stages_failed} failed"
              f"  -> {summary.out_dir / STUDY_DB}")
        for f in summary.failed[:10]:
            print(f"  failed  {f['cell']}  {f['stage']}: {f['message']}")
        print(f"next: tflkit study report {summary.out_dir}")
    errors = [item_error(f"{f['cell']} {f['stage']}", f["message"]) for f in summary.failed]
    return Reply("study run", [], errors, code=0 if summary.ok else 1,
                 extra={"out": str(summary.out_dir), "cells": summary.cells, "stages_ok": summary.stages_ok,
                        "stages_failed": summary.stages_failed, "failed": summary.failed})


def cmd_study_report(args) -> Reply:
    paths = api.Study.report(args.out, more=args.more, into=args.into, log=None if args.json else print)
    if not args.json:
        print("written: " + ", ".join(str(p) for p in paths.values()))
    return Reply("study report", [], extra={"files": {k: str(v) for k, v in paths.items()}})


def cmd_pick(args) -> Reply:
    result = api.pick(args.study_dir, target=args.target, threads=args.threads, delegate=args.delegate,
                      max_latency_ms=args.max_latency_ms, max_size_mb=args.max_size_mb, min_top1=args.min_top1,
                      max_arena_kb=args.max_arena_kb, max_rss_mb=args.max_rss_mb, max_flash_kb=args.max_flash_kb,
                      dataset=args.dataset, recipes=args.recipe, boards=args.board)
    if not args.json:
        print(format_pick(result, show_excluded=args.show_excluded))
    # nothing fits: exit 1, a script must not go on as if something did
    return Reply("pick", [], code=0 if result["feasible"] else 1, extra=result)


def _progress(line: str) -> None:
    """One write per line: progress from parallel cells never lands two to a line."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _fraction(text: str) -> float:
    """`--min-top1 0.85` or `85` or `85%`: a fraction."""
    value = float(text.rstrip("%"))
    if value > 1 or text.endswith("%"):
        value /= 100
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a top-1 between 0 and 1 (or a percentage), got {text}")
    return value


def register(sub) -> None:
    study = sub.add_parser("study", help="every model x dataset x regime x recipe, resumable; its report",
                           description="A study trains, converts, evaluates and benchmarks a grid of cells "
                                       "(model x dataset x regime) and records every stage in DIR/study.db.")
    ssub = study.add_subparsers(dest="study_command", required=True)

    p = ssub.add_parser("init", help="write a commented example study file")
    p.add_argument("path", nargs="?", default="study.yaml", help="where to write it (default: study.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_study_init)

    p = ssub.add_parser("run", help="run (or resume) a study; every finished stage is recorded in DIR/study.db")
    p.add_argument("study", help="the study file (YAML; `tflkit study init` writes an example)")
    p.add_argument("--out", required=True, help="the study directory (study.db, cells/, reports)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: worker processes here (default); ray: one Ray task per cell (pip install "
                        "'tflkit[ray]'; --out must be a path every node shares)")
    p.add_argument("--jobs", type=int, default=1,
                   help="local: cells in parallel, each with cores/N threads (default 1)")
    p.add_argument("--ray-address", help="an existing Ray cluster (auto, ray://HOST:10001); default: start one here")
    p.add_argument("--allow-changes", nargs="+", metavar="CELL",
                   help="after the study file changed: the cells to redo (their results are dropped), or all")
    p.add_argument("--retry-failed", action="store_true", help="run failed stages again (they are kept otherwise)")
    p.add_argument("--remeasure", nargs="+", choices=("convert", "eval", "bench_host", "bench_phone", "mcu"),
                   help="measure these stages of every cell again (e.g. bench_host on a quiet machine); trained "
                        "models are kept; `convert` converts every recipe again (a newer converter) and measures "
                        "its files again (a run killed midway resumes without the flag)")
    p.add_argument("--cells", nargs="+", metavar="PATTERN",
                   help="with --remeasure or --max-steps: only the cells whose id matches one of these patterns "
                        "(fnmatch, e.g. 'mobilenetv3*' or '*.cifar10.scratch')")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="prove the study runs: every cell trains N steps (one epoch of N batches, a fine-tune phase "
                        "of as many), is evaluated on N batches of test images and benchmarked 3 runs; its numbers "
                        "mean nothing (the report says so). Use its own --out")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_study_run)

    p = ssub.add_parser("report", help="report.html, report.md, results.csv and results.json of a study directory")
    p.add_argument("out", help="the study directory")
    p.add_argument("more", nargs="*", help="more study directories: one report of them all (e.g. the same budget on "
                                           "two datasets, so that the claims can compare datasets); needs --into")
    p.add_argument("--into", help="where the report of several studies goes (a directory of its own)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_study_report)

    p = sub.add_parser("pick", help="the best (model, regime, recipe) of a study under your device's constraints",
                       description="Candidates are ranked by top-1; every excluded one says which constraint "
                                   "it broke (a figure that was not measured excludes, it never passes). Exit 1 "
                                   "when no candidate meets every constraint.")
    p.add_argument("study_dir", help="a study directory (with study.db)")
    p.add_argument("--target", default="host", help="host (default) or a phone as named in the study's report "
                                                     "columns (e.g. google_pixel_7)")
    p.add_argument("--threads", type=int, default=1, help="the thread count the latency is read at (default 1)")
    p.add_argument("--delegate", help="phones: the delegate (cpu, xnnpack, gpu, nnapi)")
    p.add_argument("--max-latency-ms", type=float, help="median latency budget")
    p.add_argument("--max-size-mb", type=float, help="model file budget (MB, 10^6 bytes)")
    p.add_argument("--max-arena-kb", type=float, help="RAM budget: the interpreter's planned tensor arena (KB, 1,024 "
                                                        "bytes)")
    p.add_argument("--max-rss-mb", type=float, help="memory the benchmark added on the target (host: resident set "
                                                      "growth; phones: benchmark_model's peak memory)")
    p.add_argument("--max-flash-kb", type=float, help="flash budget: the .tflite file (KB, 1,024 bytes)")
    p.add_argument("--board", nargs="+", metavar="B",
                   help="microcontroller boards the file must fit, as measured by the study's `mcu:` stage "
                        "(TFLite Micro's arena and the file, or the board's Ethos-U; see `tflkit mcu --list-boards`)")
    p.add_argument("--show-excluded", action="store_true", help="list every excluded candidate with its reasons "
                                                                 "(default: a count per reason)")
    p.add_argument("--min-top1", type=_fraction, help="accuracy floor: 0.85, 85 or 85%%")
    p.add_argument("--dataset", help="only this dataset (as named in the study)")
    p.add_argument("--recipe", nargs="+", help="only these recipes")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_pick)
