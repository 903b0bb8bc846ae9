"""Every registered architecture through the whole pipeline, end to end: train, convert, evaluate, bench, report.

    python benchmarks/pipeline_every_model.py [--models resnet18,squeezenet1_1] [--train-limit 1000] [--epochs 1]
                                              [--recipes all] [--finetune-steps 300] [--out DIR]

The same Python API path as `tflkit demo` (tflkit/pipeline.py): `training.train` on the embedded `shapes` dataset
at 32x32 with a small budget, `converters.export.export_run` under the `--recipes` (default fp32, fp16,
dynamic_wi8_afp32 and static_wi8_ai8; `all` for every recipe of converters/recipes.py, the tfmot ones fine-tuned
for `--finetune-steps`), `pipeline.evaluate_run` (the .keras and every .tflite on the test split),
`pipeline.bench_run` (1 thread, few runs) and `report.write_report`. Per model and recipe it records the status,
file size, top-1, the largest logit difference against the Keras model (from the exporter's validation record),
the input and output types and, for the integer recipes, the float or Flex operators left (converters/inspect.py),
and the wall time of every stage.

Each model runs in its own child process, so a failure of any kind (an exception, a crash of the converter, running
out of memory, a timeout) is a row naming the stage it reached, and the next model goes on. The child writes its
row after every stage. Results: benchmarks/results/pipeline_every_model.md and .json (written atomically).
`--merge` replaces only the rows of the models run now in existing results of the same budget (a rerun of one
model); the results then list every command with its wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from converters.qat import FineTuneSettings  # noqa: E402  (these three import no TensorFlow)
from converters.recipes import get_recipe, resolve_recipes  # noqa: E402
from tflkit.errors import UsageError  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "pipeline_every_model"
RECIPES = ("fp32", "fp16", "dynamic_wi8_afp32", "static_wi8_ai8")  # the default of --recipes
INT8_RECIPE = "static_wi8_ai8"
STAGES = ("data", "train", "convert", "eval", "bench", "report")
FINETUNE_STEPS = FineTuneSettings().steps  # the default of --finetune-steps


# ---------------------------------------------------------------------------------------------------- one model


def run_one(name: str, run_dir: Path, row_path: Path, args) -> None:
    """The child: one model through every stage, its row rewritten after each one."""
    from tflkit.tfenv import quiet_tensorflow

    quiet_tensorflow()
    from converters.export import export_run, tflite_dir, validation_path
    from converters.inspect import float_ops, io_details
    from tflkit.data import load_dataset
    from tflkit.fileio import atomic_write_text
    from tflkit.hostbench import BenchSettings
    from tflkit.pipeline import StageTimer, bench_run, evaluate_run
    from tflkit.report import write_report
    from tflkit.runrecords import load_model_info
    from tflkit.training import RunFiles, TrainConfig, train

    timer = StageTimer()
    row = {"model": name, "status": "running", "stage": "data", "seconds": timer.seconds, "recipes": {}}

    def save(stage):
        row["stage"] = stage
        atomic_write_text(row_path, json.dumps(row, indent=1) + "\n")

    save("data")
    with timer("data"):
        source = load_dataset("shapes", seed=args.seed)
    config = TrainConfig(model=name, dataset="shapes", image_size=args.image_size, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, train_limit=args.train_limit, seed=args.seed)
    row["train"] = {"images": args.train_limit, "epochs": args.epochs, "batch_size": args.batch_size,
                    "lr": args.lr, "image_size": args.image_size}
    save("train")
    with timer("train"):
        history = train(config, run_dir, verbose=2, source=source)
    row["params"] = load_model_info(run_dir).get("params")
    row["train"]["val_top1_last_epoch"] = (history.get("val_top1") or [None])[-1]
    save("convert")
    with timer("convert"):
        exports = export_run(run_dir, args.recipes, source=source, log=print,
                             fine_tune=FineTuneSettings(steps=args.finetune_steps))
    for result in exports:
        entry = {"status": result.status, "message": result.message, "size_bytes": result.size_bytes,
                 "convert_s": result.seconds}
        path = Path(result.path) if result.path else None
        if result.status == "ok" and path is not None:
            vpath = validation_path(path)
            if vpath.is_file():
                validation = json.loads(vpath.read_text())
                entry["agreement"] = validation.get("top1_agreement")
                entry["max_abs_logit_diff"] = validation.get("max_abs_logit_diff")  # against the Keras logits
            io = io_details(path)
            entry["input_dtype"] = io["inputs"][0]["dtype"]
            entry["output_dtype"] = io["outputs"][0]["dtype"]
            entry["float_ops"] = float_ops(path)
            entry["weight_sparsity"] = result.weight_sparsity
        row["recipes"][result.recipe] = entry
    save("eval")
    with timer("eval"):
        evals = evaluate_run(run_dir, source=source, log=print)
    keras_name = RunFiles(Path(run_dir)).model.name
    for result in evals:
        if Path(result.model).name == keras_name:
            row["keras_top1"] = result.top1
        for recipe, entry in row["recipes"].items():
            if Path(result.model).name.endswith(f".{recipe}.tflite"):
                entry["top1"] = result.top1
    save("bench")
    with timer("bench"):
        benches = bench_run(run_dir, threads=(1,), settings=BenchSettings(runs=args.runs, warmup=args.warmup),
                            log=print)
    for result in benches:
        for recipe, entry in row["recipes"].items():
            if result.model.endswith(f".{recipe}.tflite"):
                entry["bench_status"] = result.status
                entry["median_ms_t1"] = result.median_ms
                entry["macs"] = result.macs
    save("report")
    with timer("report"):
        write_report(run_dir)
    row["report"] = str(Path(run_dir) / "report.md")
    row["tflite_dir"] = str(tflite_dir(run_dir))
    row["status"] = "ok"
    save("done")


# ---------------------------------------------------------------------------------------------------- the table


def keras_logit_max(run_dir: Path, seed: int) -> float | None:
    """Largest |logit| of the Keras model on the exporter's validation images: the scale of the fp32 error.

    A model trained for a few steps can have logits in the thousands, where float32 itself is only good to about
    1e-4, so the 1e-4 tolerance applies relative to max(1, this)."""
    from converters.calibration import calibration_indices
    from converters.validate import DEFAULT_VALIDATION_SAMPLES
    from tflkit.data import load_dataset
    from tflkit.data.pipeline import load_images
    from tflkit.evaluation import load_keras_model
    from tflkit.training import RunFiles, load_run_config

    files = RunFiles(Path(run_dir))
    if not files.model.is_file():
        return None
    config = load_run_config(run_dir)
    source = load_dataset(config.dataset, seed=config.seed)
    split = source.split("val" if "val" in source.splits else "test")  # as converters/export.py picks them
    images = load_images(split, config.image_size, calibration_indices(len(split), DEFAULT_VALIDATION_SAMPLES,
                                                                       config.seed + 1))
    logits = load_keras_model(files.model).predict(images, batch_size=256, verbose=0)
    return float(abs(logits).max())


def check_row(row: dict) -> dict:
    """What the issue asks of every architecture, from the row's records."""
    recipes = row.get("recipes", {})
    fp32, int8 = recipes.get("fp32", {}), recipes.get(INT8_RECIPE, {})
    fp32_diff, scale = fp32.get("max_abs_logit_diff"), row.get("keras_logit_max")
    fp32_rel = None if fp32_diff is None or scale is None else fp32_diff / max(1.0, scale)
    int8_clean = None
    if int8.get("status") == "ok" and "input_dtype" in int8:
        int8_clean = int8["input_dtype"] == "int8" and int8["output_dtype"] == "int8" and not int8["float_ops"]
    all_ran = bool(recipes) and all(r.get("status") == "ok" and r.get("top1") is not None
                                    and r.get("bench_status") == "ok" for r in recipes.values())
    return {"fp32_max_abs_logit_diff": fp32_diff, "keras_logit_max": scale,
            "fp32_within_1e-4": None if fp32_rel is None else fp32_rel <= 1e-4,
            "int8_io_and_no_float_ops": int8_clean, "every_recipe_converted_evaluated_benched": all_ran}


def _f(value, fmt):
    return "-" if value is None else format(value, fmt)


def to_markdown(rows: list[dict], meta: dict) -> str:
    runs = meta["invocations"]
    recipes = meta.get("recipes", list(RECIPES))
    integer = _integer_recipes(recipes)
    tuned = [name for name in recipes if get_recipe(name).prepare]
    fine_tune = (f" ({_and(tuned)} fine-tuned with tfmot first: {meta.get('finetune_steps', FINETUNE_STEPS)} "
                 f"steps of batch {FineTuneSettings().batch_size})") if tuned else ""
    lines = ["# Every architecture through the whole pipeline", ""]
    for run in runs:
        lines.append(f"Command ({run['date']}, {', '.join(run['models'])}): `{run['command']}`: wall time "
                     f"{run['total_s'] / 60:.1f} min ({run['total_s']:.0f} s), load average at the end "
                     f"{run['load_end']:.2f}" + (f". {run['note']}" if run.get("note") else "") + "  ")
    total = sum(run["total_s"] for run in runs)
    lines += [f"Total wall time: {total / 60:.1f} min ({total:.0f} s). CPU {meta['cpu']}, {meta['cores']} cores, "
              f"shared with other jobs; Python {meta['python']}, TensorFlow {meta['tensorflow']}.",
              "",
             f"Per model: `training.train` on `shapes` at {meta['image_size']}x{meta['image_size']} "
             f"({meta['train_limit']} training images, {meta['epochs']} epoch(s), batch {meta['batch_size']}, "
             f"lr {meta['lr']}), `export_run` with {', '.join(recipes)}{fine_tune}, `evaluate_run` (the .keras and every "
             f".tflite on the 2000 test images), `bench_run` (1 thread, {meta['runs']} runs after {meta['warmup']} "
             f"warm-up, random inputs), `write_report`; each model in its own process. The budget is for "
             "getting every architecture through every stage, not for accuracy: after one short epoch from scratch "
             "the models are still at or near chance (10%), so top-1 here says nothing about an architecture or a "
             "recipe (see quant_cifar10.md for quantization accuracy).",
             "",
             "## Per model", "",
             "| model | status | params | keras top-1 | fp32 max \\|Δlogit\\| vs Keras | max \\|logit\\| | "
             "fp32 within 1e-4 × max(1, max \\|logit\\|) | "
             "int8 I/O, no float/Flex ops | all recipes ran | train s | convert s | eval s | bench s | report s | "
             "total s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        c, s = row["checks"], row.get("seconds", {})
        status = row["status"] if row["status"] == "ok" else f"**{row['status']}** at {row.get('stage')}"
        lines.append(
            f"| {row['model']} | {status} | {_f(row.get('params'), ',')} | {_pct(row.get('keras_top1'))} | "
            f"{_f(c['fp32_max_abs_logit_diff'], '.2e')} | {_f(c['keras_logit_max'], '.3g')} | "
            f"{_yes(c['fp32_within_1e-4'])}{' (trivial: logits ≈ 0)' if _trivial(c) else ''} | "
            f"{_yes(c['int8_io_and_no_float_ops'])} | {_yes(c['every_recipe_converted_evaluated_benched'])} | "
            + " | ".join(_f(s.get(k), ".0f") for k in ("train", "convert", "eval", "bench", "report"))
            + f" | {_f(row.get('wall_s'), '.0f')} |")
    lines += ["", "## Per model and recipe", "",
              "| model | recipe | status | size MB | top-1 | agreement with Keras | max \\|Δlogit\\| vs Keras | "
              f"input / output | float or Flex ops ({'int8 recipe' if integer == [INT8_RECIPE] else 'integer recipes'})"
              " | median ms (1 thread) | convert s |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for recipe, r in row.get("recipes", {}).items():
            status = r["status"] if r["status"] == "ok" else f"**{r['status']}**: {r.get('message', '')[:120]}"
            io = f"{r['input_dtype']} / {r['output_dtype']}" if "input_dtype" in r else "-"
            ops = "-"
            if recipe in integer and "float_ops" in r:
                ops = ", ".join(r["float_ops"]) or "none"
            lines.append(
                f"| {row['model']} | {recipe} | {status} | {_f(r.get('size_bytes') and r['size_bytes'] / 1e6, '.2f')} "
                f"| {_pct(r.get('top1'))} | {_pct(r.get('agreement'))} | {_f(r.get('max_abs_logit_diff'), '.2e')} | "
                f"{io} | {ops} | {_f(r.get('median_ms_t1'), '.3f')} | {_f(r.get('convert_s'), '.1f')} |")
    failed = [row for row in rows if row["status"] != "ok"]
    if failed:
        lines += ["", "## Failures", ""]
        for row in failed:
            lines.append(f"- {row['model']}: {row['status']} at stage `{row.get('stage')}`: {row.get('message', '')}")
    floating = [name for name in recipes if name not in integer]
    lines += ["", f"Float ops are checked on {', '.join(integer)} only: {_and(floating)} compute in float by "
              "design. `max |Δlogit| vs Keras` is over the exporter's held-out validation images (its "
              "`.validation.json`); `max |logit|` is the Keras model's on the same images. Where it is about 0 (SqueezeNet's "
              "ReLU before the average pool, with every class map dead after this short run) the fp32 and int8 "
              "agreement checks are trivially met and prove only that the files convert and run; the deploy tests "
              "(tests/test_models_deploy.py) check the logits of untrained models. "
              + (f"For {_and(tuned)} the Keras reference is the model before the tfmot fine-tune, so their difference "
                 "and agreement include what the fine-tune changed, not only quantization. " if tuned else "")
              + "Logs and run directories: "
              + ", ".join(f"`{run['out_dir']}`" for run in runs) + " (not kept in the repository).", ""]
    return "\n".join(lines)


def _and(names) -> str:
    return " and ".join(filter(None, [", ".join(names[:-1]), names[-1]])) if names else ""


def _integer_recipes(names) -> list[str]:
    """The recipes whose activations are integer: the ones where a float operator is a defect."""
    return [name for name in names if get_recipe(name).integer_only]


def _trivial(checks: dict) -> bool:
    return checks["keras_logit_max"] is not None and checks["keras_logit_max"] < 1e-3


def _pct(value):
    return "-" if value is None else f"{100 * value:.2f}%"


def _yes(value):
    return "-" if value is None else ("yes" if value else "**no**")


# ---------------------------------------------------------------------------------------------------- the parent


def run_all(names: list[str], out_dir: Path, args) -> list[dict]:
    rows = []
    for name in names:
        run_dir, row_path, log_path = out_dir / name, out_dir / f"{name}.row.json", out_dir / f"{name}.log"
        child = [sys.executable, __file__, "--one", name, "--out", str(out_dir), *_budget_argv(args)]
        start = time.perf_counter()
        status, message = "ok", ""
        with open(log_path, "w") as log:
            try:
                proc = subprocess.run(child, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout, cwd=ROOT,
                                      env={**os.environ, "PYTHONUNBUFFERED": "1"})
                if proc.returncode != 0:
                    status, message = "failed", _last_error(log_path, proc.returncode)
            except subprocess.TimeoutExpired:
                status, message = "timeout", f"no result after {args.timeout} s"
        wall = time.perf_counter() - start
        row = json.loads(row_path.read_text()) if row_path.is_file() else {"model": name, "stage": "start",
                                                                           "recipes": {}, "seconds": {}}
        if status != "ok":
            row["status"], row["message"] = status, message
        row["wall_s"] = wall
        row["log"] = str(log_path)
        row["checks"] = check_row(row)
        rows.append(row)
        c = row["checks"]
        print(f"{name:<22} {row['status']:<8} {wall:6.0f}s  fp32 |dlogit| {_f(c['fp32_max_abs_logit_diff'], '.1e')}"
              f"  int8 clean {_yes(c['int8_io_and_no_float_ops'])}  all recipes {_yes(c['every_recipe_converted_evaluated_benched'])}"
              + (f"  {message}" if message else ""), flush=True)
    return rows


BUDGET = ("train_limit", "epochs", "batch_size", "lr", "image_size", "runs", "warmup", "seed", "timeout", "recipes",
          "finetune_steps")
# What results written before an option existed were made with (finetune_steps: FineTuneSettings' default).
BUDGET_DEFAULTS = {"recipes": list(RECIPES), "finetune_steps": FINETUNE_STEPS}


def merge(path: Path, meta: dict, rows: list[dict]) -> tuple[dict, list[dict]]:
    """These rows replace the same models' rows of the results at `path`; the runs are listed one after another."""
    old = json.loads(path.read_text())
    changed = {k: (old_value, meta[k]) for k in BUDGET if k != "timeout"
               and (old_value := old["meta"].get(k, BUDGET_DEFAULTS.get(k))) != meta[k]}
    if changed:
        sys.exit(f"--merge: {path} was made with another budget {changed}; run every model again instead")
    new = {row["model"]: row for row in rows}
    merged = [new.pop(row["model"], row) for row in old["rows"]] + list(new.values())
    return {**meta, "invocations": old["meta"]["invocations"] + meta["invocations"]}, merged


def _last_error(log_path: Path, returncode: int) -> str:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error:" in line]
    last = errors[-1] if errors else (lines[-1] if lines else "")
    return f"exit {returncode}: {last[:300]}"


def _budget_argv(args) -> list[str]:
    return ["--train-limit", str(args.train_limit), "--epochs", str(args.epochs), "--batch-size",
            str(args.batch_size), "--lr", str(args.lr), "--image-size", str(args.image_size), "--runs",
            str(args.runs), "--warmup", str(args.warmup), "--seed", str(args.seed), "--recipes",
            ",".join(args.recipes), "--finetune-steps", str(args.finetune_steps)]


def _recipe_names(text: str) -> list[str]:
    """`--recipes`: comma-separated recipe names or `all`, checked against converters/recipes.py (UsageError)."""
    return list(dict.fromkeys(recipe.name for recipe in resolve_recipes(name.strip() for name in text.split(","))))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every non-test model)")
    parser.add_argument("--train-limit", type=int, default=1000, help="training images (default 1000)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--runs", type=int, default=20, help="timed invocations per file (default 20)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--recipes", default=",".join(RECIPES),
                        help=f"comma-separated recipe names or 'all' (default {','.join(RECIPES)})")
    parser.add_argument("--finetune-steps", type=_positive, default=FINETUNE_STEPS,
                        help=f"fine-tune steps of the tfmot recipes, qat and prune50 (default {FINETUNE_STEPS})")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per model before it is a failed row")
    parser.add_argument("--out", type=Path, help="run directories and logs (default: a new temporary folder)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="results path without suffix")
    parser.add_argument("--note", default="", help="conditions to record with this run (e.g. other load)")
    parser.add_argument("--merge", action="store_true",
                        help="replace only these models' rows in the existing results (same budget required)")
    parser.add_argument("--render", action="store_true", help="only write the .md again from the .json")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one model
    args = parser.parse_args(argv)
    try:
        args.recipes = _recipe_names(args.recipes)
    except UsageError as exc:  # one line, before anything long starts
        print(f"{parser.prog}: error: --recipes: {exc}", file=sys.stderr)
        return exc.exit_code

    if args.one:
        run_one(args.one, args.out / args.one, args.out / f"{args.one}.row.json", args)
        return 0

    from tflkit.fileio import atomic_write_text
    from tflkit.hostbench import cpu_name

    if args.render:
        saved = json.loads(Path(args.results).with_suffix(".json").read_text())
        for row in saved["rows"]:
            row["checks"] = check_row(row)
        atomic_write_text(Path(args.results).with_suffix(".md"), to_markdown(saved["rows"], saved["meta"]))
        return 0
    from tflkit.models import get_spec, list_models

    names = args.models.split(",") if args.models else list_models()
    for name in names:
        get_spec(name)  # an unknown name fails before the long part
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="tflkit-every-model-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    python = Path(sys.executable)
    python = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python
    script = Path(__file__).resolve().relative_to(ROOT)
    niceness = os.nice(0)
    command = (f"nice -n {niceness} " if niceness else "") + " ".join(
        shlex.quote(str(a)) for a in [python, script, *(sys.argv[1:] if argv is None else argv)])
    start = time.perf_counter()
    rows = run_all(names, out_dir, args)
    total = time.perf_counter() - start
    from importlib.metadata import version

    run = {"command": command, "models": names, "total_s": total, "date": time.strftime("%Y-%m-%d %H:%M"),
           "load_end": os.getloadavg()[0], "out_dir": str(out_dir), "note": args.note}
    meta = {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": version("tensorflow"), "out_dir": str(out_dir),
            **{k: getattr(args, k) for k in BUDGET}, "invocations": [run]}
    results = Path(args.results)
    if args.merge:
        meta, rows = merge(results.with_suffix(".json"), meta, rows)
    for row in rows:  # after the children: this loads each model once more in this process
        if "keras_logit_max" not in row and row.get("tflite_dir"):
            row["keras_logit_max"] = keras_logit_max(Path(row["tflite_dir"]).parent, args.seed)
        row["checks"] = check_row(row)
    atomic_write_text(results.with_suffix(".json"), json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    markdown = to_markdown(rows, meta)
    atomic_write_text(results.with_suffix(".md"), markdown)
    print(markdown)
    print(f"written: {results.with_suffix('.md')} and .json")
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
