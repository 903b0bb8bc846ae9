"""The `tflkit` command: a thin shell over the Python API. Each subcommand parses, calls one function, prints.

Errors a user can cause surface as one line `tflkit: error: ...` and a non-zero exit (2 for bad names and
arguments). Heavy imports happen inside the subcommands, so `tflkit --help` starts instantly.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from tflkit.errors import TflkitError, UsageError


def cmd_models(args) -> int:
    from tflkit.models.summary import describe_models

    rows = describe_models(include_test=args.all, compute_macs=not args.no_macs)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<24} {'input':>5} {'params':>12} {'MACs':>10} {'ref params':>12} {'ref MACs':>10}  reference")
    for r in rows:
        macs = f"{r['macs'] / 1e6:.1f}M" if r.get("macs") else "-"
        ref_macs = f"{r['reference_macs'] / 1e6:.1f}M" if r.get("reference_macs") else "-"
        ref_params = f"{r['reference_params']:,}" if r.get("reference_params") else "-"
        print(f"{r['name']:<24} {r['input_size']:>5} {r['params']:>12,} {macs:>10} {ref_params:>12} {ref_macs:>10}  "
              f"{r.get('reference', '')}")
    return 0


# TrainConfig keys that `tflkit train` takes as flags (--image-size for image_size, ...)
TRAIN_FLAGS = ("model", "dataset", "data_dir", "image_size", "small_input", "epochs", "batch_size", "lr", "optimizer",
               "weight_decay", "bn_momentum", "seed", "lr_schedule", "warmup_epochs", "step_epochs", "step_gamma",
               "label_smoothing", "augment", "patience", "pretrained", "finetune_epochs", "finetune_lr",
               "train_limit", "strategy")


def cmd_data(args) -> int:
    from tflkit.data import load_dataset

    info = load_dataset(args.spec, data_dir=args.data_dir, seed=args.seed).describe()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['label']}  ({info['num_classes']} classes, {info['image_size']}x{info['image_size']} native)")
    for name, count in info["splits"].items():
        print(f"  {name:<6} {count:>8,} images")
    for note in info["notes"]:
        print(f"  note: {note}")
    shown = info["classes"][:20]
    more = f", ... ({len(info['classes']) - 20} more)" if len(info["classes"]) > 20 else ""
    print(f"  classes: {', '.join(shown)}{more}")
    return 0


def cmd_train(args) -> int:
    from tflkit.config import load_yaml
    from tflkit.training import TrainConfig, train

    fields = {k: getattr(args, k) for k in TRAIN_FLAGS}
    if args.config:
        base = load_yaml(TrainConfig, args.config)
        fields = {**base.__dict__, **{k: v for k, v in fields.items() if v is not None}}
    fields = {k: v for k, v in fields.items() if v is not None}
    if "model" not in fields and not args.resume:
        raise UsageError("--model is required (see `tflkit models`)")
    from tflkit.models import get_spec

    if not args.resume:
        get_spec(fields["model"])
    config = TrainConfig(**fields) if not args.resume else TrainConfig(model=fields.get("model", "_"))
    history = train(config, args.out, resume=args.resume)
    best = max(history.get("val_top1", history.get("top1", [0.0])) or [0.0])
    print(f"trained: {args.out}/model.keras  (best top1 {100 * best:.2f}%)")
    return 0


def cmd_convert(args) -> int:
    from converters.export import export_run

    results = export_run(args.run_dir, args.recipe, calib_samples=args.calib_samples)
    failed = [r for r in results if r.status != "ok"]
    return 1 if failed and len(failed) == len(results) else 0


def cmd_eval(args) -> int:
    from tflkit.data import load_dataset
    from tflkit.evaluation import evaluate
    from tflkit.runrecords import record_eval, run_dir_of

    source = load_dataset(args.dataset, data_dir=args.data_dir, seed=args.seed)
    for path in args.model:
        result = evaluate(path, source, split=args.split)
        run_dir = run_dir_of(path)
        if run_dir is not None and args.split == "test":
            record_eval(run_dir, result)
        if args.json:
            print(json.dumps(result.to_dict()))
        else:
            top5 = f"  top5 {100 * result.top5:.2f}%" if result.top5 is not None else ""
            print(f"{Path(path).name}: top1 {100 * result.top1:.2f}%{top5}  ({result.count} {args.split} images)")
    return 0


def cmd_bench(args) -> int:
    from tflkit.hostbench import BenchSettings, bench_models, open_input_data
    from tflkit.runrecords import record_host_bench, run_dir_of

    from tflkit.errors import ModelFileError

    missing = [p for p in args.model if not Path(p).is_file()]
    if missing:  # a typo in a path: nothing to measure. A corrupt file, by contrast, is a failed row below.
        raise ModelFileError(f"model file not found: {missing[0]}")
    settings = BenchSettings(runs=args.runs, warmup=args.warmup, min_seconds=args.min_seconds,
                             xnnpack=not args.no_xnnpack, runtime=args.runtime)
    images = open_input_data(args.input_data, data_dir=args.data_dir, count=args.input_images)
    results = bench_models(args.model, threads=args.threads, settings=settings,
                           log=None if args.json else print, images=images)
    for path in args.model:
        run_dir = run_dir_of(path)
        if run_dir is not None:
            record_host_bench(run_dir, [r for r in results if r.model == Path(path).name])
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    return 0 if all(r.ok for r in results) else 1


def cmd_report(args) -> int:
    from tflkit.pipeline import bench_run, evaluate_run
    from tflkit.report import write_report
    from tflkit.runrecords import load_bench, load_evals

    if args.measure:
        if not load_evals(args.run_dir):
            evaluate_run(args.run_dir)
        if not any(r.target == "host" for r in load_bench(args.run_dir)):
            bench_run(args.run_dir)
    _, markdown = write_report(args.run_dir)
    print(markdown)
    print(f"written: {Path(args.run_dir) / 'report.md'}, report.csv, report.json")
    return 0


def cmd_demo(args) -> int:
    from tflkit.pipeline import DemoSettings, StageTimer, demo

    overrides = {key: value for key, value in (("model", args.model), ("epochs", args.epochs)) if value is not None}
    settings = replace(DemoSettings(), **overrides)
    timer = StageTimer()
    markdown = demo(args.out, settings, timer=timer)
    print()
    print(markdown)
    stages = "  ".join(f"{k} {v:.1f}s" for k, v in timer.seconds.items())
    print(f"time: {stages}  (total {sum(timer.seconds.values()):.1f}s)")
    print(f"written: {Path(args.out) / 'report.md'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from converters.calibration import DEFAULT_CALIB_SAMPLES
    from converters.recipes import DEFAULT_RECIPES

    parser = argparse.ArgumentParser(prog="tflkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the registered architectures",
                       description="MACs are counted from each model's converted .tflite the first time (a few "
                                   "minutes for all), then cached in ~/.cache/tflkit until the model code changes.")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="include the tiny test variants")
    p.add_argument("--no-macs", action="store_true", help="skip MAC counting (no conversion needed)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train a model; writes model, config and history into --out")
    p.add_argument("--model")
    p.add_argument("--dataset")
    p.add_argument("--data-dir")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--bn-momentum", type=float, help="BatchNorm moving-average momentum (default: the model's)")
    p.add_argument("--image-size", type=int)
    p.add_argument("--small-input", action=argparse.BooleanOptionalAction, default=None,
                   help="CIFAR-style stem without early downsampling (default: on for inputs <= 64)")
    p.add_argument("--seed", type=int)
    p.add_argument("--lr-schedule", help="constant (default), step or cosine")
    p.add_argument("--warmup-epochs", type=float, help="linear lr warm-up, in epochs (fractions allowed)")
    p.add_argument("--step-epochs", type=int, help="step schedule: decay every N epochs")
    p.add_argument("--step-gamma", type=float, help="step schedule: decay factor")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--augment", help="none (default), basic, randaugment, mixup, cutmix")
    p.add_argument("--patience", type=int, help="stop after N epochs without a better val top-1")
    p.add_argument("--pretrained", help="none (default), imagenet, a weights file (.h5/.weights.h5/.keras) "
                                        "or a tflkit run directory")
    p.add_argument("--finetune-epochs", type=int, help="with --pretrained: epochs training all layers after "
                                                       "--epochs of head-only training")
    p.add_argument("--finetune-lr", type=float, help="learning rate of the fine-tuning phase (default lr/10)")
    p.add_argument("--train-limit", type=int, help="train on a stratified subset of N images")
    p.add_argument("--strategy", help="default, mirrored (all local devices) or multi_worker (TF_CONFIG)")
    p.add_argument("--config", help="YAML file of TrainConfig keys; flags override it")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    p.add_argument("--out", required=True, help="run directory")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("data", help="describe a dataset source: splits, classes, image size")
    p.add_argument("spec", help="shapes, cifar10, cifar100[:coarse], tiny_imagenet, folder:PATH or auto")
    p.add_argument("--data-dir")
    p.add_argument("--seed", type=int, default=0, help="seed of a carved val split")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("convert", help="convert a trained run to .tflite under quantization recipes")
    p.add_argument("run_dir")
    p.add_argument("--recipe", nargs="+", default=list(DEFAULT_RECIPES), help="recipe names, or 'all'")
    p.add_argument("--calib-samples", type=int, default=DEFAULT_CALIB_SAMPLES)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("eval", help="top-1/top-5 of .keras or .tflite models on a dataset split")
    p.add_argument("model", nargs="+")
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--split", default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="time .tflite models with the host TFLite runtime")
    p.add_argument("model", nargs="+")
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=0.0)
    p.add_argument("--no-xnnpack", action="store_true")
    p.add_argument("--runtime", help="ai_edge_litert (default), tflite_runtime or tf.lite")
    p.add_argument("--input-data", default="random", metavar="SPEC",
                   help="random (default), or a --dataset spec (shapes, cifar10, folder:PATH, ...) whose test images "
                        "are fed as `tflkit eval` feeds them, a different one each run")
    p.add_argument("--data-dir", help="with --input-data DATASET: where its files are")
    p.add_argument("--input-images", type=int, metavar="N",
                   help="with --input-data DATASET: cycle through the first N test images (default: 256)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("report", help="the quantized-vs-float table of a run (report.md/.csv/.json)")
    p.add_argument("run_dir")
    p.add_argument("--no-measure", dest="measure", action="store_false",
                   help="only assemble; do not evaluate or benchmark what has not been measured yet")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="the whole pipeline on the embedded shapes dataset, no network")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--model", help="default: the demo's own choice (tflkit.pipeline.DemoSettings)")
    p.add_argument("--epochs", type=int, help="default: the demo's own choice")
    p.set_defaults(func=cmd_demo)

    from converters.cli import register as register_converters

    register_converters(sub)
    from android_bench.cli import register as register_android

    register_android(sub)
    return parser


def main(argv=None) -> int:
    return dispatch(build_parser().parse_args(argv))


def dispatch(args) -> int:
    """Run a parsed subcommand: a TflkitError becomes one line on stderr and its exit code."""
    try:
        return args.func(args)
    except TflkitError as exc:
        print(f"tflkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tflkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
