"""Quantization recipes on real CIFAR-10: top-1 of every recipe on the whole 10,000-image test split, its drop
against fp32, and what the validation says (agreement with the float model, worst layers by SNR).

Brief training on 2 shared cores (a stratified subset, an epoch or two), so absolute accuracy is modest; the point
is the recipe-to-recipe comparison on one trained model. Each model's settings are one `ModelPlan` row below. The
targets (static_wi8_ai8 within 1 point of fp32; qat_wi8_ai8 at least as good as static_wi8_ai8) are checked per
model, and a missed one is reported with the validation's worst layers for that recipe.
Writes benchmarks/results/quant_cifar10.{md,json} (atomically, after each model).

  python benchmarks/quant_cifar10.py [--data-dir ~/.cache/tflkit-data] [--models resnet18 ...]

Models run one at a time and can be run in separate invocations: the saved results of models not named are kept.
Data: the JPEG copy of CIFAR-10 decoded into `cifar-10-batches-py` under --data-dir by ../shared/data/materialize.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
STATIC, QAT = "static_wi8_ai8", "qat_wi8_ai8"
STATIC_MAX_DROP_PTS = 1.0
FINETUNE_BATCH, FINETUNE_LR = 64, 1e-4
VALIDATE_SAMPLES, TENSOR_SAMPLES = 500, 8
DATASET_LABEL = "CIFAR-10 (JPEG copy)"


@dataclass(frozen=True)
class ModelPlan:
    """How one architecture is trained and fine-tuned here (input 32x32, Adam, augment basic, bn momentum 0.9)."""

    train_limit: int  # a stratified, seeded subset of the training split
    epochs: int
    small_input: bool  # the CIFAR stem: stride-1 stem, no max-pool, 32x32 input ends at 4x4
    finetune_steps: int  # QAT and pruning fine-tune, batch 64, lr 1e-4
    batch_size: int = 128
    lr: float = 2e-3


# Sized so ResNet18 and ShuffleNetV2 together fit in about 75 minutes on 2 shared cores (timed first with a tiny
# setting: test-split evaluation of the eight recipes ~9 min for ResNet18, longer for ShuffleNetV2 whose int16
# recipe runs on reference kernels; the tfmot steps ~2-3 min each before any fine-tune step). ResNet18 keeps its
# ImageNet stem (7x7 stride 2 and max-pool; 32x32 ends at 1x1, ~37 MMACs): with the small-input stem (~0.56 GMACs)
# its fp32 .tflite ran at ~37 images/s here, so the eight test-split evaluations alone would take ~25 minutes.
# The QAT / pruning fine-tune keeps 300 steps for every model: its range EMA (decay 0.99) needs about that many.
PLAN = {
    "mobilenetv3_small_100": ModelPlan(train_limit=20000, epochs=2, small_input=True, finetune_steps=300),
    "resnet18": ModelPlan(train_limit=10000, epochs=1, small_input=False, finetune_steps=300),
    "shufflenetv2_x1_0": ModelPlan(train_limit=10000, epochs=1, small_input=True, finetune_steps=300),
}


def _git_state() -> dict:
    root = Path(__file__).resolve().parents[1]

    def git(*cmd):
        try:
            return subprocess.run(["git", *cmd], cwd=root, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    # Uncommitted edits to the code the run imports (others edit this checkout too), so a result can be traced to
    # what actually ran. Porcelain lines are "XY path": the status is two columns, then a space.
    dirty = [line[3:] for line in git("status", "--porcelain", "--", "tflkit", "converters").splitlines() if line]
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted_code": dirty}


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (converter workers): against wall time it shows how
    much of the machine the run had (others share it, and may pause niced jobs)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _validation_of(path) -> dict:
    vpath = Path(path).with_name(Path(path).name.replace(".tflite", ".validation.json"))
    return json.loads(vpath.read_text()) if vpath.is_file() else {}


def run_model(model, plan: ModelPlan, data_dir, out_root, source, args, log):
    from converters.export import export_run
    from converters.qat import FineTuneSettings
    from converters.recipes import RECIPES
    from tflkit.evaluation import evaluate
    from tflkit.training import TrainConfig, train

    run = out_root / model
    wall, cpu = time.perf_counter(), _cpu_s()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    git = _git_state()
    trained_here = not (run / "model.keras").is_file()
    if trained_here:
        config = TrainConfig(model=model, dataset="cifar10", data_dir=str(data_dir), image_size=32,
                             small_input=plan.small_input, epochs=plan.epochs, batch_size=plan.batch_size, lr=plan.lr,
                             bn_momentum=0.9, train_limit=plan.train_limit, augment="basic", seed=0)
        train(config, run, verbose=0, source=source)
    train_s = time.perf_counter() - wall
    log(f"{model}: {'trained' if trained_here else 'reused the trained model'} in {train_s:.0f}s")
    start = time.perf_counter()
    results = export_run(run, list(RECIPES), calib_samples=args.calib_samples, source=source, log=log,
                         validate_samples=VALIDATE_SAMPLES, tensor_samples=TENSOR_SAMPLES,
                         fine_tune=FineTuneSettings(steps=plan.finetune_steps, batch_size=FINETUNE_BATCH,
                                                    lr=FINETUNE_LR))
    export_s = time.perf_counter() - start
    start = time.perf_counter()
    rows = []
    keras_eval = evaluate(run / "model.keras", source, "test")
    for r in results:
        row = {"model": model, "recipe": r.recipe, "status": r.status, "size_bytes": r.size_bytes,
               "gzip_bytes": r.gzip_bytes, "weight_sparsity": r.weight_sparsity, "message": r.message,
               **(r.validation or {})}
        if r.status == "ok":
            e = evaluate(r.path, source, "test")
            row.update(top1=e.top1, count=e.count, correct=round(e.top1 * e.count))
            validation = _validation_of(r.path)
            row["worst_layers"] = validation.get("worst_layers", [])[:5]
            row["first_degraded_layer"] = validation.get("first_degraded")
        rows.append(row)
        log(f"{model} {r.recipe:<24} {r.status:<14} top1 {100 * row.get('top1', float('nan')):.2f}")
    eval_s = time.perf_counter() - start
    base = next(r["top1"] for r in rows if r["recipe"] == "fp32")
    for row in rows:
        if "top1" in row:
            row["top1_drop_pts"] = 100 * (base - row["top1"])
    return {"model": model, "plan": asdict(plan), "train_limit": plan.train_limit, "epochs": plan.epochs,
            "small_input": plan.small_input, "finetune_steps": plan.finetune_steps, "data_dir": str(data_dir),
            "run_dir": str(run), "trained_here": trained_here, "started": started, "git": git,
            "train_s": train_s, "export_s": export_s, "eval_s": eval_s, "wall_s": time.perf_counter() - wall,
            "cpu_s": _cpu_s() - cpu,
            "keras_top1": keras_eval.top1, "rows": rows, "targets": check_targets(rows)}


def _layers_text(row) -> str:
    worst = ", ".join(f"{t['layer']} [{t['op']}] {t['snr_db']:.1f} dB" for t in row.get("worst_layers", [])[:3])
    first = row.get("first_degraded_layer")
    first = f"{first['layer']} [{first['op']}] {first['snr_db']:.1f} dB" if first else "none below 15 dB"
    return f"first tensor below 15 dB in graph order: {first}; worst SNR: {worst or 'n/a'}"


def check_targets(rows) -> list[dict]:
    """The done-criteria per model; a missed one carries the validation's layers that explain it."""
    by = {r["recipe"]: r for r in rows}
    static, qat = by.get(STATIC, {}), by.get(QAT, {})
    targets = []
    name = f"{STATIC} within {STATIC_MAX_DROP_PTS:g} point of fp32"
    if "top1" not in static:
        targets.append({"target": name, "met": False, "why": f"{STATIC} {static.get('status', 'missing')}: "
                                                              f"{static.get('message', '')}"})
    else:
        met = static["top1_drop_pts"] <= STATIC_MAX_DROP_PTS
        targets.append({"target": name, "met": met, "value": f"drop {static['top1_drop_pts']:+.2f} pts",
                        "why": "" if met else f"{STATIC} {_layers_text(static)}"})
    name = f"{QAT} at least as good as {STATIC}"
    if "top1" not in qat or "top1" not in static:
        missing = QAT if "top1" not in qat else STATIC
        targets.append({"target": name, "met": False, "why": f"{missing} has no top-1 "
                                                              f"({by.get(missing, {}).get('status', 'missing')})"})
    else:
        met = qat["correct"] >= static["correct"] if "correct" in qat else qat["top1"] >= static["top1"]
        targets.append({"target": name, "met": met,
                        "value": f"{100 * qat['top1']:.2f}% vs {100 * static['top1']:.2f}% "
                                 f"({100 * (qat['top1'] - static['top1']):+.2f} pts)",
                        "why": "" if met else f"{QAT} {_layers_text(qat)}; {STATIC} {_layers_text(static)}"})
    return targets


def to_markdown(report) -> str:
    lines = ["# Quantization recipes on CIFAR-10 (whole 10,000-image test split)", "",
             f"Data: {report.get('dataset', DATASET_LABEL)}, decoded by ../shared/data/materialize.py into "
             "`cifar-10-batches-py` under the data dir named per model; validation images are carved from the "
             "training split, the test split is untouched.",
             f"Machine: {report['machine']}. Calibration: {report['calib_samples']} distinct training images. "
             f"QAT / pruning fine-tune: batch {FINETUNE_BATCH}, lr {FINETUNE_LR:g}, steps per model below. "
             f"Validation: {VALIDATE_SAMPLES} held-out (val) images against the float Keras model; per-tensor SNR "
             f"on {TENSOR_SAMPLES} of them vs the fp32 .tflite.",
             "Training is brief (a stratified subset, 1-2 epochs, input 32x32), so absolute top-1 is modest; compare "
             "recipes within a model.", "",
             "Reading the table: `drop` is fp32 top-1 minus the recipe's (positive = worse than fp32). `agreement` "
             "is top-1 agreement with the float Keras model on held-out images. For `qat_wi8_ai8` and "
             "`prune50_static_wi8_ai8` the weights were fine-tuned (more steps on an undertrained model), so their "
             "agreement and per-tensor SNR against the original fp32 graph measure the fine-tune's drift as well as "
             "quantization; their top-1 is the number to compare. SNR is end to end, so error accumulates towards "
             "the output: `worst layer` is where it ends up, `first < 15 dB` is the first tensor in graph order "
             "below 15 dB, where the damage starts (the `.validation.json` beside each .tflite lists every tensor).",
             ""]
    if last := report.get("last_invocation"):
        lines += [f"Last invocation: `{last['command']}` ran {', '.join(last['models'])} in "
                  f"{last['wall_s'] / 60:.1f} min wall; other models' sections are kept from earlier invocations.",
                  ""]
    lines += ["## Targets", "",
             f"| model | target | met | value | why (validation) |", "|---|---|---|---|---|"]
    for m in report["models"]:
        for t in m.get("targets") or check_targets(m["rows"]):
            lines.append(f"| {m['model']} | {t['target']} | {'yes' if t['met'] else '**MISSED**'} | "
                         f"{t.get('value', '')} | {t['why']} |")
    lines.append("")
    missed = [(m["model"], t) for m in report["models"] for t in (m.get("targets") or check_targets(m["rows"]))
              if not t["met"]]
    if missed:
        lines += ["Missed targets, plainly: " + "; ".join(f"{model}: {t['target']} ({t.get('value', 'no value')})"
                                                          for model, t in missed) + ". The layers named in the "
                  "`why` column are the validation's explanation; nothing was re-tuned after seeing these numbers.",
                  ""]
    for m in report["models"]:
        plan = m.get("plan") or {"train_limit": m["train_limit"], "epochs": m["epochs"],
                                 "small_input": m["small_input"], "finetune_steps": report.get("finetune_steps")}
        lines += [f"## {m['model']}", "",
                  f"Plan: train_limit {plan['train_limit']}, {plan['epochs']} epochs, small_input "
                  f"{plan['small_input']}, batch {plan.get('batch_size', 128)}, lr {plan.get('lr', 2e-3):g}, "
                  f"QAT/prune fine-tune {plan['finetune_steps']} steps. Data dir: "
                  f"{('`' + m['data_dir'] + '`') if 'data_dir' in m else 'not recorded'}. Keras top-1 {100 * m['keras_top1']:.2f}%."]
        timing = f"Time: train {m['train_s']:.0f}s, export+validate {m['export_s']:.0f}s"
        if "eval_s" in m:
            timing += f", test-split evaluation {m['eval_s']:.0f}s; model total {m['wall_s'] / 60:.1f} min wall"
            if "cpu_s" in m:
                timing += f" ({m['cpu_s'] / 60:.1f} CPU-min)"
        if "started" in m:
            git = m.get("git", {})
            dirty = git.get("uncommitted_code") or []
            timing += (f". Started {m['started']} at commit {git.get('commit', '?')}"
                       + (f" with uncommitted edits in {', '.join(dirty)}" if dirty else "") + ".")
        else:
            timing += (". Kept from an earlier invocation of this script that did not record its command, start or "
                       "code version (see this file's git history); not re-run since.")
        command = f"`{m['command']}`" if "command" in m else "not recorded"
        lines += [timing, f"Command: {command}", "",
                  "| recipe | status | top-1 % | drop vs fp32 (pts) | agreement % | size KB | gzip KB | zeros | "
                  "worst layer (SNR) | first < 15 dB |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in m["rows"]:
            top1 = f"{100 * r['top1']:.2f}" if "top1" in r else ""
            drop = f"{r['top1_drop_pts']:+.2f}" if "top1_drop_pts" in r else ""
            agree = f"{100 * r['agreement']:.1f}" if r.get("agreement") is not None else ""
            size = f"{r['size_bytes'] / 1e3:.0f}" if r.get("size_bytes") else ""
            gz = f"{r['gzip_bytes'] / 1e3:.0f}" if r.get("gzip_bytes") else ""
            zeros = f"{100 * r['weight_sparsity']:.0f}%" if r.get("weight_sparsity") is not None else ""
            worst = r.get("worst_layer", "") or (r["message"][:90] if r["status"] != "ok" else "")
            lines.append(f"| {r['recipe']} | {r['status']} | {top1} | {drop} | {agree} | {size} | {gz} | {zeros} | "
                         f"{worst} | {r.get('first_degraded', '')} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _write(results_dir: Path, report) -> None:
    from tflkit.fileio import atomic_write_text

    atomic_write_text(results_dir / "quant_cifar10.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(results_dir / "quant_cifar10.md", to_markdown(report))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path("~/.cache/tflkit-data").expanduser()))
    parser.add_argument("--models", nargs="+", default=list(PLAN), choices=list(PLAN))
    parser.add_argument("--out", default="/tmp/tflkit-quant-cifar10", help="run directories (reused if trained)")
    parser.add_argument("--results-dir", default=str(RESULTS))
    parser.add_argument("--calib-samples", type=int, default=300)
    parser.add_argument("--train-limit", type=int, help="override every plan's (for sizing runs)")
    parser.add_argument("--epochs", type=int, help="override every plan's (for sizing runs)")
    parser.add_argument("--finetune-steps", type=int, help="override every plan's (for sizing runs)")
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the saved .json")
    args = parser.parse_args()
    results_dir = Path(args.results_dir)
    if args.render:
        _write(results_dir, json.loads((results_dir / "quant_cifar10.json").read_text()))
        return 0
    from tflkit.tfenv import quiet_tensorflow

    quiet_tensorflow()
    from tflkit.data import load_dataset

    command = shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]])
    source = load_dataset("cifar10", data_dir=args.data_dir, seed=0)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)", "dataset": DATASET_LABEL,
              "calib_samples": args.calib_samples, "models": []}

    def log(*a):
        print(*a, flush=True)

    previous = results_dir / "quant_cifar10.json"
    if previous.is_file():
        report["models"] = [m for m in json.loads(previous.read_text())["models"] if m["model"] not in args.models]
    overrides = {k: v for k, v in (("train_limit", args.train_limit), ("epochs", args.epochs),
                                   ("finetune_steps", args.finetune_steps)) if v is not None}
    invocation = time.perf_counter()
    for model in args.models:
        plan = replace(PLAN[model], **overrides)
        entry = run_model(model, plan, args.data_dir, Path(args.out), source, args, log)
        entry["command"] = command
        report["models"].append(entry)
        report["models"].sort(key=lambda m: list(PLAN).index(m["model"]))
        report["last_invocation"] = {"command": command, "models": args.models,
                                     "wall_s": time.perf_counter() - invocation}
        _write(results_dir, report)
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
