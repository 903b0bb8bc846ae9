"""Quantization recipes on real CIFAR-10: top-1 of every recipe on the whole 10,000-image test split, its drop
against fp32, and what the validation says (agreement with the float model, worst layer by SNR).

Brief training on 2 shared cores (a stratified subset, an epoch or two), so absolute accuracy is modest; the point
is the recipe-to-recipe comparison on one trained model. Writes benchmarks/results/quant_cifar10.{md,json}.

  python benchmarks/quant_cifar10.py [--data-dir ~/.cache/tflkit-data] [--models mobilenetv3_small_100 ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# (model, train_limit, epochs, small_input): sized so the whole script stays near 25 minutes on 2 cores.
PLAN = {
    "mobilenetv3_small_100": (20000, 2, True),
    "resnet18": (10000, 1, False),
    "shufflenetv2_x1_0": (10000, 1, True),
}


def run_model(model, data_dir, out_root, source, args, log):
    from converters.export import export_run
    from converters.qat import FineTuneSettings
    from converters.recipes import RECIPES
    from tflkit.evaluation import evaluate
    from tflkit.training import TrainConfig, train

    limit, epochs, small = PLAN[model]
    run = out_root / model
    start = time.perf_counter()
    if not (run / "model.keras").is_file():
        config = TrainConfig(model=model, dataset="cifar10", data_dir=str(data_dir), image_size=32, small_input=small,
                             epochs=epochs, batch_size=128, lr=2e-3, bn_momentum=0.9, train_limit=limit,
                             augment="basic", seed=0)
        train(config, run, verbose=0, source=source)
    train_s = time.perf_counter() - start
    log(f"{model}: trained in {train_s:.0f}s")
    start = time.perf_counter()
    results = export_run(run, list(RECIPES), calib_samples=args.calib_samples, source=source, log=log,
                         validate_samples=500, tensor_samples=8,
                         fine_tune=FineTuneSettings(steps=args.finetune_steps, batch_size=64, lr=1e-4))
    export_s = time.perf_counter() - start
    rows = []
    keras_eval = evaluate(run / "model.keras", source, "test")
    for r in results:
        row = {"model": model, "recipe": r.recipe, "status": r.status, "size_bytes": r.size_bytes,
               "gzip_bytes": r.gzip_bytes, "weight_sparsity": r.weight_sparsity, "message": r.message,
               **(r.validation or {})}
        if r.status == "ok":
            e = evaluate(r.path, source, "test")
            row.update(top1=e.top1, count=e.count)
            vpath = Path(r.path).with_name(Path(r.path).name.replace(".tflite", ".validation.json"))
            row["worst_layers"] = json.loads(vpath.read_text())["worst_layers"][:3]
        rows.append(row)
        log(f"{model} {r.recipe:<24} {r.status:<14} top1 {100 * row.get('top1', float('nan')):.2f}")
    base = next(r["top1"] for r in rows if r["recipe"] == "fp32")
    for row in rows:
        if "top1" in row:
            row["top1_drop_pts"] = 100 * (base - row["top1"])
    return {"model": model, "train_limit": limit, "epochs": epochs, "small_input": small, "train_s": train_s,
            "export_s": export_s, "keras_top1": keras_eval.top1, "rows": rows}


def to_markdown(report) -> str:
    lines = ["# Quantization recipes on CIFAR-10 (whole 10,000-image test split)", "",
             f"Machine: {report['machine']}. Calibration: {report['calib_samples']} distinct training images. "
             f"QAT / pruning fine-tune: {report['finetune_steps']} steps, batch 64, lr 1e-4. Validation: 500 "
             "held-out (val) images against the float Keras model; per-tensor SNR on 8 of them vs the fp32 .tflite.",
             "Training is brief (a stratified subset, 1-2 epochs, input 32x32), so absolute top-1 is modest; compare "
             "recipes within a model.", "",
             "Reading the table: `agreement` is top-1 agreement with the float Keras model on held-out images. For "
             "`qat_wi8_ai8` and `prune50_static_wi8_ai8` the weights were fine-tuned (300 more steps on an "
             "undertrained model), so their agreement and per-tensor SNR against the original fp32 graph measure the "
             "fine-tune's drift as well as quantization; their top-1 is the number to compare. SNR is end to end, so "
             "error accumulates towards the output; the worst layer is where it ends up (the `.validation.json` beside "
             "each .tflite also lists the first tensor below 15 dB in graph order).", ""]
    for m in report["models"]:
        lines += [f"## {m['model']}  (train_limit {m['train_limit']}, {m['epochs']} epochs, small_input "
                  f"{m['small_input']}; Keras top-1 {100 * m['keras_top1']:.2f}%; train {m['train_s']:.0f}s, "
                  f"export+validate {m['export_s']:.0f}s)", "",
                  "| recipe | status | top-1 % | drop vs fp32 (pts) | agreement % | size KB | gzip KB | zeros | "
                  "worst layer (SNR) |", "|---|---|---|---|---|---|---|---|---|"]
        for r in m["rows"]:
            top1 = f"{100 * r['top1']:.2f}" if "top1" in r else ""
            drop = f"{r['top1_drop_pts']:+.2f}" if "top1_drop_pts" in r else ""
            agree = f"{100 * r['agreement']:.1f}" if r.get("agreement") is not None else ""
            size = f"{r['size_bytes'] / 1e3:.0f}" if r.get("size_bytes") else ""
            gz = f"{r['gzip_bytes'] / 1e3:.0f}" if r.get("gzip_bytes") else ""
            zeros = f"{100 * r['weight_sparsity']:.0f}%" if r.get("weight_sparsity") is not None else ""
            worst = r.get("worst_layer", "") or (r["message"][:90] if r["status"] != "ok" else "")
            lines.append(f"| {r['recipe']} | {r['status']} | {top1} | {drop} | {agree} | {size} | {gz} | {zeros} | "
                         f"{worst} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path("~/.cache/tflkit-data").expanduser()))
    parser.add_argument("--models", nargs="+", default=list(PLAN))
    parser.add_argument("--out", default="/tmp/tflkit-quant-cifar10")
    parser.add_argument("--calib-samples", type=int, default=300)
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--render", action="store_true", help="only rewrite the .md from the saved .json")
    args = parser.parse_args()
    if args.render:
        report = json.loads((RESULTS / "quant_cifar10.json").read_text())
        (RESULTS / "quant_cifar10.md").write_text(to_markdown(report))
        return 0
    from tflkit.tfenv import quiet_tensorflow

    quiet_tensorflow()
    from tflkit.data import load_dataset

    source = load_dataset("cifar10", data_dir=args.data_dir, seed=0)
    report = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores (shared)",
              "calib_samples": args.calib_samples, "finetune_steps": args.finetune_steps, "models": []}

    def log(*a):
        print(*a, flush=True)

    # Models run one at a time and can be run in separate invocations: earlier models' results are kept.
    previous = RESULTS / "quant_cifar10.json"
    if previous.is_file():
        report["models"] = [m for m in json.loads(previous.read_text())["models"] if m["model"] not in args.models]
    for model in args.models:
        report["models"].append(run_model(model, args.data_dir, Path(args.out), source, args, log))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "quant_cifar10.json").write_text(json.dumps(report, indent=2) + "\n")
        (RESULTS / "quant_cifar10.md").write_text(to_markdown(report))
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
