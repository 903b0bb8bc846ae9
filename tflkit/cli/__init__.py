"""The `tflkit` command: a thin shell over the Python API. Each subcommand parses, calls one function, prints.

Every subcommand follows one convention:
- Exit 0 when everything asked for succeeded; 1 when some item failed (a recipe, a model, a phone: the rest is
  done and reported); 2 for usage errors and missing inputs (a bad name or value, a file or directory that is not
  there). An error a user can cause is one line on stderr, `tflkit: error: ...`, argparse's included.
- `--json`, on every command that prints results, prints one JSON object on stdout, shaped the same everywhere:
      {"command": "bench", "ok": false,
       "results": [{...one object per item done...}],
       "errors": [{"item": "m.fp16.tflite", "message": "delegate_failed: ..."}]}
  `ok` is true exactly when the exit code is 0; `errors` has one entry per failed item, or the one error that
  stopped the command (item null). Progress and logs go to stderr meanwhile.
- TensorFlow's and LiteRT's own log noise (CUDA probing, converter debug lines, delegate INFO lines) and library
  warnings are kept off the terminal unless `--verbose` (tflkit.core.tfenv).
Heavy imports happen inside the subcommands, so `tflkit --help` starts instantly.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tflkit.core.errors import ModelFileError, TflkitError, UsageError


@dataclass
class Reply:
    """What a subcommand did: one result per item done, one error per item that failed."""

    command: str | None
    results: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    code: int | None = None  # None: 1 when an item failed, else 0

    @property
    def exit_code(self) -> int:
        return self.code if self.code is not None else (1 if self.errors else 0)

    def to_dict(self) -> dict:
        return {"command": self.command, "ok": self.exit_code == 0, "results": self.results, "errors": self.errors}


def item_error(item, message: str) -> dict:
    return {"item": None if item is None else str(item), "message": message}


def replies(func):
    """Marks a subcommand that returns a Reply (printed as the envelope under --json) instead of printing JSON."""
    func.replies = True
    return func


def require_files(paths, what: str = "model file") -> None:
    """A path that is not there is a missing input (exit 2); a corrupt file is a failed item later."""
    for path in paths:
        if not Path(path).is_file():
            raise UsageError(f"{what} not found: {path}")


def require_dir(path, flag: str) -> None:
    if path is not None and not Path(path).is_dir():
        raise UsageError(f"{flag}: no such directory: {path}")


@replies
def cmd_models(args) -> Reply:
    from tflkit.models.summary import describe_models

    rows = describe_models(include_test=args.all, compute_macs=not args.no_macs)
    if args.json:
        return Reply("models", rows)
    print(f"{'name':<24} {'input':>5} {'params':>12} {'MACs':>10} {'ref params':>12} {'ref MACs':>10}  reference")
    for r in rows:
        macs = f"{r['macs'] / 1e6:.1f}M" if r.get("macs") else "-"
        ref_macs = f"{r['reference_macs'] / 1e6:.1f}M" if r.get("reference_macs") else "-"
        ref_params = f"{r['reference_params']:,}" if r.get("reference_params") else "-"
        print(f"{r['name']:<24} {r['input_size']:>5} {r['params']:>12,} {macs:>10} {ref_params:>12} {ref_macs:>10}  "
              f"{r.get('reference', '')}")
    return Reply("models", rows)


@replies
def cmd_data(args) -> Reply:
    from tflkit.data import default_data_dir, load_dataset

    data_dir = args.data_dir
    if args.prepare:
        from tflkit.data.prepare import prepare

        data_dir = data_dir or default_data_dir()
        prepare(args.spec, Path(data_dir), source=args.from_file, log=lambda line: print(line, file=sys.stderr))
    elif args.from_file:
        raise UsageError("--from gives the archive to --prepare; add --prepare")
    require_dir(data_dir, "--data-dir")
    source = load_dataset(args.spec, data_dir=data_dir, seed=args.seed, allow_empty_classes=args.check)
    info = source.describe()
    reply = Reply("data", [info])
    if args.check:  # every file decoded: unreadable files and empty classes are this command's failed items
        from tflkit.data.check import check_dataset, check_lines

        info["check"] = check_dataset(source, log=lambda line: print(line, file=sys.stderr, flush=True))
        reply.errors = [item_error(i["path"], f"unreadable image ({i['reason']})") for i in info["check"]["unreadable"]]
        reply.errors += [item_error(name, "empty class") for name in info["check"]["empty_classes"]]
    if args.json:
        return reply
    print(f"{info['label']}  ({info['num_classes']} classes, {info['image_size']}x{info['image_size']} native)")
    for name, count in info["splits"].items():
        print(f"  {name:<6} {count:>8,} images")
    for note in info["notes"]:
        print(f"  note: {note}")
    shown = info["classes"][:20]
    more = f", ... ({len(info['classes']) - 20} more)" if len(info["classes"]) > 20 else ""
    print(f"  classes: {', '.join(shown)}{more}")
    if args.check:
        print("\n".join(check_lines(info["check"])))
    return reply


def train_config_from_args(args):
    """The TrainConfig `tflkit train` asks for: a fresh run's from --config and the flags (flags win), or, with
    --resume, the run's saved config with the flags applied (more --epochs) or refused (anything else)."""
    from tflkit.core.config import flag_values, read_yaml
    from tflkit.core.run import Run
    from tflkit.core.trainconfig import TrainConfig
    from tflkit.models import get_spec, train_config

    requested = flag_values(args, TrainConfig)
    if args.resume:
        if args.config:
            raise UsageError("--resume continues with the run's own config.yaml; drop --config")
        run = Run(args.out)
        if not run.exists:
            raise UsageError(f"nothing to resume in {args.out} (no config.yaml)")
        return run.config.resumed_with(requested, args.out)
    fields = {**(read_yaml(args.config) if args.config else {}), **requested}
    if "model" not in fields:
        raise UsageError("--model is required (see `tflkit models`)")
    get_spec(fields["model"])
    return train_config(source=args.config or "flags", **fields).check()


def progress_verbosity(as_json: bool) -> int:
    """Keras fit verbosity: the live bar (1) on a terminal, one line an epoch (2) in a log, a pipe or --json."""
    return 1 if not as_json and sys.stdout.isatty() else 2


@replies
def cmd_train(args) -> Reply:
    from tflkit.core.run import Run
    from tflkit.pipeline import stages

    require_dir(args.data_dir, "--data-dir")
    config = train_config_from_args(args)
    run = Run(args.out)
    if args.resume:  # training resumes from the run's config.yaml: the applied --epochs must be in it
        run.save_config(config)
    # Keras' progress bar redraws itself with escape codes: only a terminal shows it; a log gets a line an epoch
    history = stages.train(run, config, resume=args.resume, verbose=progress_verbosity(args.json)).history
    best = max(history.get("val_top1", history.get("top1", [0.0])) or [0.0])
    result = {"run_dir": str(args.out), "model": config.model, "epochs_done": len(history.get("loss", [])),
              "best_top1": best}
    if not args.json:
        print(f"trained: {args.out}/model.keras  (best top1 {100 * best:.2f}%)")
    return Reply("train", [result])


@replies
def cmd_convert(args) -> Reply:
    from converters.qat import FineTuneSettings
    from tflkit.api import Run

    run = Run(args.run_dir).require(trained=True)  # a run killed before it finished has no model.keras
    results = run.convert(args.recipe, force=args.force, calib_samples=args.calib_samples,
                          fine_tune=FineTuneSettings(steps=args.finetune_steps), log=print)
    errors = [item_error(r.recipe, f"{r.status}: {r.message}") for r in results if r.status != "ok"]
    return Reply("convert", [dataclasses.asdict(r) for r in results], errors)


@replies
def cmd_eval(args) -> Reply:
    from tflkit.core.run import Run
    from tflkit.data import load_dataset
    from tflkit.training.evaluation import evaluate

    require_dir(args.data_dir, "--data-dir")
    from tflkit.data.preprocess import from_flags

    preprocessing = from_flags(args.input_range, args.mean, args.std)
    source = load_dataset(args.dataset, data_dir=args.data_dir, seed=args.seed)
    require_files(args.model)
    reply = Reply("eval")
    for path in args.model:
        try:
            result = evaluate(path, source, split=args.split, limit=args.limit, preprocessing=preprocessing,
                              labels=args.labels, strict=args.strict, seed=args.seed,
                              log=lambda line: print(line, file=sys.stderr, flush=True))
        except ModelFileError as exc:  # a corrupt file: this item failed, the others are still evaluated
            print(f"tflkit: error: {exc}", file=sys.stderr)
            reply.errors.append(item_error(path, str(exc)))
            continue
        run = Run.of_file(path)
        if run is not None and args.split == "test" and args.limit is None:  # a subset's score is not the file's
            run.record_eval(result)
        reply.results.append(result.to_dict())
        if not args.json:
            top5 = f"  top5 {100 * result.top5:.2f}%" if result.top5 is not None else ""
            scoring = f"; {result.scoring}" if result.scoring else ""
            print(f"{Path(path).name}: top1 {100 * result.top1:.2f}%{top5}  ({result.count} {args.split} images, "
                  f"{result.preprocessing}{scoring})")
    return reply


@replies
def cmd_bench(args) -> Reply:
    from tflkit.bench.host import BenchSettings, bench_models, open_input_data
    from tflkit.core.run import Run

    require_files(args.model)  # a typo in a path: nothing to measure. A corrupt file is a failed row below.
    require_dir(args.data_dir, "--data-dir")
    settings = BenchSettings(runs=args.runs, warmup=args.warmup, min_seconds=args.min_seconds,
                             xnnpack=not args.no_xnnpack, runtime=args.runtime)
    from tflkit.data.preprocess import from_flags  # no TensorFlow: a random-input bench stays runtime-only

    preprocessing = from_flags(args.input_range, args.mean, args.std)  # eval's flags, eval's code path
    images = open_input_data(args.input_data, data_dir=args.data_dir, count=args.input_images,
                             preprocessing=preprocessing, log=lambda line: print(line, file=sys.stderr, flush=True))
    results = bench_models(args.model, threads=args.threads, settings=settings, log=print, images=images)
    for path in args.model:
        run = Run.of_file(path)
        if run is not None:
            run.record_host_bench([r for r in results if r.model == Path(path).name])
    errors = [item_error(f"{r.model} threads={r.threads}", f"{r.status}: {r.message}") for r in results if not r.ok]
    return Reply("bench", [r.to_dict() for r in results], errors)


@replies
def cmd_report(args) -> Reply:
    from tflkit.api import Run

    run = Run(args.run_dir)
    markdown = run.report(measure=args.measure, log=print)  # only what has no figures yet is measured
    if not args.json:
        print(markdown)
        print(f"written: {run.report_path('md')}, report.csv, report.json")
    return Reply("report", run.rows())


@replies
def cmd_demo(args) -> Reply:
    from tflkit.core.config import flag_values
    from tflkit.core.run import Run
    from tflkit.models import get_spec
    from tflkit.pipeline.demo import DemoSettings, StageTimer, demo

    settings = dataclasses.replace(DemoSettings(), **flag_values(args, DemoSettings))
    out = Path(args.out)
    get_spec(settings.model)  # a typo must not cost the old run
    if args.fresh and Run(out).exists:  # only a run directory is removed, never another folder
        shutil.rmtree(out)
    timer = StageTimer()
    markdown = demo(out, settings, timer=timer)
    rows = json.loads(Run(out).report_path("json").read_text())  # what the report wrote beside report.md
    stages = "  ".join(f"{k} {v:.1f}s" for k, v in timer.seconds.items())
    print(f"time: {stages}  (total {sum(timer.seconds.values()):.1f}s)")
    if not args.json:
        print()
        print(markdown)
        print(f"written: {out / 'report.md'}")
    return Reply("demo", rows)


def build_parser() -> argparse.ArgumentParser:
    from converters.calibration import DEFAULT_CALIB_SAMPLES
    from converters.recipes import DEFAULT_RECIPES, RECIPES
    from tflkit.core.config import add_flags
    from tflkit.core.trainconfig import TrainConfig
    from tflkit.models import list_models
    from tflkit.pipeline.demo import DemoSettings
    from tflkit.tflite.runtime import RUNTIMES

    parser = OneLineErrorParser(prog="tflkit", description=__doc__.splitlines()[0], epilog=CONVENTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    model_help = f"registered architecture; one of: {', '.join(list_models())}"
    recipe_help = f"recipe names, or 'all'; from: {', '.join(RECIPES)} (default: {' '.join(DEFAULT_RECIPES)})"

    p = sub.add_parser("models", help="list the registered architectures with parameters and MACs",
                       description="Parameters and MACs are counted from each model's Keras layers (seconds), "
                                   "then cached in ~/.cache/tflkit until the model code changes.")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument("--all", action="store_true", help="include the tiny test variants")
    p.add_argument("--no-macs", action="store_true", help="skip MAC counting")
    p.set_defaults(func=cmd_models)

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

    p = sub.add_parser("data", help="describe a dataset source: splits, classes, image size")
    p.add_argument("spec", help="shapes, cifar10, cifar100[:coarse], tiny_imagenet, folder:PATH or auto")
    p.add_argument("--data-dir", help="where the dataset's files are (official downloads read directly)")
    p.add_argument("--seed", type=int, default=0, help="seed of a carved val split (default: 0)")
    p.add_argument("--check", action="store_true", help="decode every image; list unreadable files and empty "
                                                        "classes (exit 1 if any)")
    p.add_argument("--prepare", action="store_true",
                   help="cifar10, cifar100, tiny_imagenet: download the official archive (MD5-checked) and unpack it "
                        "into --data-dir (default $TFLKIT_DATA or ~/.cache/tflkit-data), where every command finds it")
    p.add_argument("--from", dest="from_file", metavar="ARCHIVE",
                   help="with --prepare: the official archive already downloaded (cifar-10-python.tar.gz, ...)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_data)

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
    p.add_argument("--input-range", help="what the model's input expects: 0,255 | 0,1 | -1,1 (default: from the "
                                         "model card or TFLite metadata, else assumed 0,255)")
    p.add_argument("--mean", type=float, nargs="+", help="input normalization (pixel - mean) / std, 1 or 3 values")
    p.add_argument("--std", type=float, nargs="+", help="see --mean")
    p.add_argument("--labels", help="the model's class names, one a line in output order, matched to the dataset's "
                                    "(a 1001-output model's background class is handled)")
    p.add_argument("--strict", action="store_true", help="stop at an unreadable image file (default: skip it)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_eval)
    # `--input-range -1,1`: argparse would take "-1,1" for an option; it is a value, like a negative number
    p._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-1,1$")

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
    p.add_argument("--input-range", help="with --input-data DATASET: what the model's input expects: 0,255 | 0,1 | "
                                         "-1,1 (default: as `tflkit eval`, from the model card or TFLite metadata, "
                                         "else assumed 0,255)")
    p.add_argument("--mean", type=float, nargs="+", help="with --input-data DATASET: input normalization "
                                                         "(pixel - mean) / std, 1 or 3 values")
    p.add_argument("--std", type=float, nargs="+", help="see --mean")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_bench)
    p._negative_number_matcher = re.compile(r"^-\d+$|^-\d*\.\d+$|^-1,1$")  # `--input-range -1,1`, as for eval

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

    from tflkit.cli.inspect import register as register_converters

    register_converters(sub)
    from android_bench.cli import register as register_android

    register_android(sub)
    from tflkit.cli.study import register as register_study

    register_study(sub)
    from tflkit.cli.tune import register as register_tune

    register_tune(sub)
    from tflkit.cli.mcu import register as register_mcu

    register_mcu(sub)
    from tflkit.cli.weights import register as register_weights

    register_weights(sub)
    _complete_leaves(parser)
    return parser


CONVENTION = """\
exit codes: 0 everything asked for succeeded; 1 some item failed (the rest done and reported);
            2 usage error or missing input
--json:     one object on stdout, the same shape for every command:
            {"command": "bench", "ok": true, "results": [{...}, ...], "errors": [{"item": ..., "message": ...}]}
--verbose:  let TensorFlow's own logging and library warnings through (hidden by default)"""
JSON_HELP = 'print one JSON object on stdout: {"command", "ok", "results", "errors"} (see `tflkit --help`)'
VERBOSE_HELP = "show TensorFlow's and LiteRT's own log lines and library warnings (hidden by default)"


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse's errors as a UsageError: one line naming the command, exit 2, JSON with --json."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _subcommands(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:  # argparse has no public walk of its subparsers
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def _complete_leaves(parser: argparse.ArgumentParser) -> None:
    """Every leaf command, the registered ones included, takes --verbose and describes --json the same way."""
    children = _subcommands(parser)
    for child in children.values():
        _complete_leaves(child)
    if children:
        return
    if "--verbose" not in parser._option_string_actions:
        # SUPPRESS: an absent leaf flag must not overwrite `tflkit --verbose CMD`'s value
        parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    json_flag = parser._option_string_actions.get("--json")
    if json_flag is not None and not json_flag.help:
        json_flag.help = JSON_HELP


def command_name(args) -> str:
    """`bench`, `android devices`: the command and any nested subcommand."""
    nested = [v for k, v in sorted(vars(args).items()) if k.endswith("_command") and isinstance(v, str)]
    return " ".join([args.command, *nested])


def _command_in(argv, parser) -> str | None:
    words = []
    for token in argv:
        if token.startswith("-"):
            continue
        children = _subcommands(parser)
        if token not in children:
            break
        words.append(token)
        parser = children[token]
    return " ".join(words) or None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _failed(exc, _command_in(argv, parser), as_json="--json" in argv)
    try:
        return dispatch(args)
    except BrokenPipeError:  # `tflkit ... | head`: the reader left; no traceback about it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def dispatch(args) -> int:
    """Run a parsed subcommand under the convention: TensorFlow's noise filtered (unless --verbose), a TflkitError
    as one line on stderr and its exit code, the JSON envelope under --json."""
    from tflkit.core.tfenv import filtered_stderr, set_verbose
    from tflkit.core.tfenv import verbose as verbose_env

    verbose = bool(getattr(args, "verbose", False)) or verbose_env()
    set_verbose(verbose)
    as_json = bool(getattr(args, "json", False))
    command = command_name(args)
    with contextlib.ExitStack() as stack:
        if not verbose:
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")  # library deprecation chatter; --verbose shows it
            stack.enter_context(filtered_stderr())
        try:
            return _run(args, command, as_json)
        except TflkitError as exc:
            return _failed(exc, command, as_json)
        except KeyboardInterrupt:
            sys.stdout.flush()
            # on its own line: a progress bar may have left the cursor mid-line
            print(("\n" if sys.stderr.isatty() else "") + "tflkit: interrupted", file=sys.stderr)
            return 130


def _run(args, command: str, as_json: bool) -> int:
    if not as_json:
        outcome = args.func(args)
        return outcome.exit_code if isinstance(outcome, Reply) else outcome
    stdout = sys.stdout
    if getattr(args.func, "replies", False):
        with contextlib.redirect_stdout(sys.stderr):  # progress on stderr: stdout carries the JSON alone
            reply = args.func(args)
    else:  # a registered command that prints its own JSON payload: wrapped in the envelope here
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            code = args.func(args)
        reply = _wrap(command, printed.getvalue(), code)
    print(json.dumps(reply.to_dict(), indent=2, default=str), file=stdout)
    return reply.exit_code


def _wrap(command: str, printed: str, code: int) -> Reply:
    try:
        payload = json.loads(printed)
    except json.JSONDecodeError:
        sys.stderr.write(printed)
        return Reply(command, [], [item_error(None, "the command printed no JSON")], code=code or 1)
    if isinstance(payload, dict) and {"command", "ok"} <= set(payload):  # already an envelope, maybe with extras
        return Envelope(command, payload.get("results", []), payload.get("errors", []), code=code,
                        extra={k: v for k, v in payload.items() if k not in ("command", "ok", "results", "errors")})
    results = payload if isinstance(payload, list) else [payload]
    errors = [item_error(r.get("model") or r.get("serial"), r.get("message") or r.get("error") or r.get("status"))
              for r in results if isinstance(r, dict) and (r.get("error") or r.get("status") not in (None, "ok"))]
    if code and not errors:
        errors = [item_error(None, f"exit code {code}")]
    return Reply(command, results, errors, code=code)


@dataclass
class Envelope(Reply):
    """A registered command's own envelope, with keys of its own after the four common ones (a study's counts)."""

    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {**super().to_dict(), **self.extra}


def _failed(exc: TflkitError, command: str | None, as_json: bool) -> int:
    print(f"tflkit: error: {exc}", file=sys.stderr)
    if as_json:
        print(json.dumps(Reply(command, [], [item_error(None, str(exc))], code=exc.exit_code).to_dict(), indent=2))
    return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
