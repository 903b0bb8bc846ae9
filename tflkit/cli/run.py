"""`tflkit train | convert | eval | bench | report | demo`: a run and the steps on its files (tflkit.api)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from converters.calibration import DEFAULT_CALIB_SAMPLES
from converters.recipes import DEFAULT_RECIPES, RECIPES, FineTuneSettings
from tflkit import api
from tflkit.cli.common import JSON_HELP, Reply, item_error, log_line, require_dir
from tflkit.core.config import add_flags, flag_values, read_yaml
from tflkit.core.errors import UsageError
from tflkit.core.trainconfig import TrainConfig
from tflkit.data.preprocess import from_flags
from tflkit.models import get_spec, list_models, train_config
from tflkit.pipeline.demo import DemoSettings
from tflkit.tflite.runtime import RUNTIMES

# `--input-range -1,1`: argparse would take "-1,1" for an option; it is a value, like a negative number
NEGATIVE_VALUE = re.compile(r"^-\d+$|^-\d*\.\d+$|^-1,1$")


def train_config_from_args(args) -> TrainConfig:
    """The TrainConfig `tflkit train` asks for: a fresh run's from --config and the flags (flags win), or, with
    --resume, the run's saved config with the flags applied (more --epochs) or refused (anything else)."""
    requested = flag_values(args, TrainConfig)
    if args.resume:
        if args.config:
            raise UsageError("--resume continues with the run's own config.yaml; drop --config")
        return api.resume_config(args.out, **requested)
    fields = {**(read_yaml(args.config) if args.config else {}), **requested}
    if "model" not in fields:
        raise UsageError("--model is required (see `tflkit models`)")
    get_spec(fields["model"])
    return train_config(source=args.config or "flags", **fields).check()


def progress_verbosity(as_json: bool) -> int:
    """Keras fit verbosity: the live bar (1) on a terminal, one line an epoch (2) in a log, a pipe or --json."""
    return 1 if not as_json and sys.stdout.isatty() else 2


def cmd_train(args) -> Reply:
    require_dir(args.data_dir, "--data-dir")
    config = train_config_from_args(args)
    # Keras' progress bar redraws itself with escape codes: only a terminal shows it; a log gets a line an epoch
    run = api.train(config=config, out=args.out, resume=args.resume, verbose=progress_verbosity(args.json),
                    log=log_line)
    history = run.history()
    best = max(history.get("val_top1", history.get("top1", [0.0])) or [0.0])
    if not args.json:
        print(f"trained: {run.model_path}  (best top1 {100 * best:.2f}%)")
    return Reply("train", [{"run_dir": str(args.out), "model": config.model, "best_top1": best,
                            "epochs_done": len(history.get("loss", []))}])


def cmd_convert(args) -> Reply:
    run = api.Run(args.run_dir).require(trained=True)  # a run killed before it finished has no model.keras
    results = run.convert(args.recipe, force=args.force, calib_samples=args.calib_samples,
                          fine_tune=FineTuneSettings(steps=args.finetune_steps), log=print)
    errors = [item_error(r.recipe, f"{r.status}: {r.message}") for r in results if r.status != "ok"]
    return Reply("convert", results, errors)


def cmd_eval(args) -> Reply:
    require_dir(args.data_dir, "--data-dir")
    results = api.evaluate(args.model, args.dataset, data_dir=args.data_dir, split=args.split, seed=args.seed,
                           limit=args.limit, preprocessing=from_flags(args.input_range, args.mean, args.std),
                           labels=args.labels, strict=args.strict, log=log_line)
    reply = Reply("eval")
    for result in results:
        if isinstance(result, api.Failed):  # a corrupt file: this item failed, the others are still evaluated
            log_line(f"tflkit: error: {result.message}")
            reply.errors.append(item_error(result.item, result.message))
            continue
        reply.results.append(result)
        if not args.json:
            top5 = f"  top5 {100 * result.top5:.2f}%" if result.top5 is not None else ""
            scoring = f"; {result.scoring}" if result.scoring else ""
            print(f"{result.model}: top1 {100 * result.top1:.2f}%{top5}  ({result.count} {args.split} images, "
                  f"{result.preprocessing}{scoring})")
    return reply


def cmd_bench(args) -> Reply:
    require_dir(args.data_dir, "--data-dir")
    results = api.bench(args.model, args.threads, runs=args.runs, warmup=args.warmup, min_seconds=args.min_seconds,
                        xnnpack=not args.no_xnnpack, runtime=args.runtime, input_data=args.input_data,
                        data_dir=args.data_dir, input_images=args.input_images,
                        preprocessing=from_flags(args.input_range, args.mean, args.std),  # eval's flags, eval's code
                        log=print)
    errors = [item_error(f"{r.model} threads={r.threads}", f"{r.status}: {r.message}") for r in results if not r.ok]
    return Reply("bench", results, errors)


def cmd_report(args) -> Reply:
    run = api.Run(args.run_dir)
    markdown = run.report(measure=args.measure, log=print)  # only what has no figures yet is measured
    if not args.json:
        print(markdown)
        print(f"written: {run.report_path('md')}, report.csv, report.json")
    return Reply("report", run.rows())


def cmd_demo(args) -> Reply:
    markdown, rows, seconds = api.demo(args.out, fresh=args.fresh, **flag_values(args, DemoSettings))
    print(f"time: {'  '.join(f'{k} {v:.1f}s' for k, v in seconds.items())}  (total {sum(seconds.values()):.1f}s)")
    if not args.json:
        print()
        print(markdown)
        print(f"written: {Path(args.out) / 'report.md'}")
    return Reply("demo", rows)


def register(sub) -> None:
    model_help = f"registered architecture; one of: {', '.join(list_models())}"
    recipe_help = f"recipe names, or 'all'; from: {', '.join(RECIPES)} (default: {' '.join(DEFAULT_RECIPES)})"

    p = sub.add_parser("train", help="train a model; writes model, config and history into --out",
                       description="Flags override a --config YAML file of the same keys (lr: 1e-3 is read as a "
                                   "number). With --resume the run's own config.yaml is used: a larger --epochs "
                                   "continues it, any other changed setting is refused.")
    add_flags(p, TrainConfig, helps={"model": model_help})
    p.add_argument("--config", metavar="YAML", help="YAML file of the keys above (model: ..., lr: ...); flags "
                                                    "override it")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch "
                                                          "(a larger --epochs trains that many in all)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("convert", help="convert a trained run to .tflite under quantization recipes")
    p.add_argument("run_dir", help="a `tflkit train` run directory")
    p.add_argument("--recipe", nargs="+", default=list(DEFAULT_RECIPES), metavar="RECIPE", help=recipe_help)
    p.add_argument("--calib-samples", type=int, default=DEFAULT_CALIB_SAMPLES, metavar="N",
                   help=f"calibration images for the static recipes (default: {DEFAULT_CALIB_SAMPLES})")
    p.add_argument("--force", action="store_true", help="convert again recipes already converted with these settings")
    p.add_argument("--finetune-steps", type=int, metavar="N", help="QAT / pruning fine-tune steps (default: one "
                   "epoch of the run's own training images, at most 300)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("eval", help="top-1/top-5 of .keras or .tflite models on a dataset split")
    p.add_argument("model", nargs="+", help=".keras or .tflite files")
    p.add_argument("--dataset", required=True, help="shapes, cifar10, cifar100[:coarse], tiny_imagenet, "
                                                    "folder:PATH or auto")
    p.add_argument("--data-dir", help="where the dataset's files are")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="split to score (default: test)")
    p.add_argument("--seed", type=int, default=0, help="seed of a carved val split (default: 0)")
    p.add_argument("--limit", type=int, metavar="N", help="score a stratified subset of N images (not recorded)")
    _preprocessing_flags(p, "")
    p.add_argument("--labels", help="the model's class names, one a line in output order, matched to the dataset's "
                                    "(a 1001-output model's background class is handled)")
    p.add_argument("--strict", action="store_true", help="stop at an unreadable image file (default: skip it)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="time .tflite models with the host TFLite runtime")
    p.add_argument("model", nargs="+", help=".tflite files")
    p.add_argument("--threads", type=int, nargs="+", default=[1], metavar="N", help="thread counts (default: 1)")
    p.add_argument("--runs", type=int, default=50, help="timed runs at least (default: 50)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default: 5)")
    p.add_argument("--min-seconds", type=float, default=0.0, help="keep timing until this long (default: 0)")
    p.add_argument("--no-xnnpack", action="store_true", help="the built-in kernels, without the XNNPACK delegate")
    p.add_argument("--runtime", choices=RUNTIMES, help="interpreter package (default: ai_edge_litert)")
    p.add_argument("--input-data", default="random", metavar="SPEC",
                   help="random (default), or a --dataset spec (shapes, cifar10, folder:PATH, ...) whose test images "
                        "are fed as `tflkit eval` feeds them, a different one each run")
    p.add_argument("--data-dir", help="with --input-data DATASET: where its files are")
    p.add_argument("--input-images", type=int, metavar="N",
                   help="with --input-data DATASET: cycle through the first N test images (default: 256)")
    _preprocessing_flags(p, "with --input-data DATASET: ")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("report", help="the quantized-vs-float table of a run (report.md/.csv/.json)")
    p.add_argument("run_dir", help="a `tflkit train` run directory, converted")
    p.add_argument("--no-measure", dest="measure", action="store_false",
                   help="only assemble; do not evaluate or benchmark what has not been measured yet")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="the whole pipeline on the embedded shapes dataset, no network",
                       description="Rerunning it on the same --out resumes that demo (a larger --epochs trains "
                                   "more); other settings than the saved run's are refused unless --fresh.")
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    add_flags(p, DemoSettings, only=("model", "epochs", "seed"),
              helps={"model": model_help, "seed": "seed of the shapes drawn, the data order and the initialization"})
    p.add_argument("--fresh", action="store_true", help="delete the run in --out first and start over")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_demo)


def _preprocessing_flags(p, when: str) -> None:
    """eval's and bench's --input-range / --mean / --std (tflkit.data.preprocess.from_flags)."""
    p.add_argument("--input-range", help=f"{when}what the model's input expects: 0,255 | 0,1 | -1,1 (default: from "
                                         "the model card or TFLite metadata, else assumed 0,255)")
    p.add_argument("--mean", type=float, nargs="+", help=f"{when}input normalization (pixel - mean) / std, 1 or 3 "
                                                         "values")
    p.add_argument("--std", type=float, nargs="+", help="see --mean")
    p._negative_number_matcher = NEGATIVE_VALUE
