"""Does mixed bfloat16 train to the same accuracy as float32, and how much faster, on this CPU: the check a
`--precision` choice per architecture must pass (same seed, same epochs, same images).

    python benchmarks/precision_accuracy.py [--entries resnet18:32 efficientnetv2_s:224] [--epochs 2]
                                            [--train-limit 5000] [--seeds 0] [--out PREFIX]

For each entry MODEL:SIZE (tflkit's default stem for the size) and seed: the training stage
(tflkit.pipeline.stages.train) in float32 and in mixed_bfloat16 on the same stratified CIFAR-10 subset, the two in an
order that flips from seed to seed (benchmarks/harness.py), then model.keras (float32 either way) evaluated on the
whole 10,000-image test split. Reports both top-1 with their 95% intervals, the difference's interval (equal when it
includes 0), and each run's training wall time. Writes benchmarks/results/precision_accuracy.{md,json} (with the
CPU, its features and the versions) after every seed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import harness

from tflkit.core.run import Run
from tflkit.models import train_config

NAME = "precision_accuracy"
PRECISIONS = ("float32", "mixed_bfloat16")


def main(argv=None) -> int:
    parser = harness.arguments(__doc__, NAME)
    parser.add_argument("--data-dir", default="~/.cache/tflkit-data/cifar-10-batches-py")
    parser.add_argument("--entries", nargs="+", default=["resnet18:32"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args, results = parser.start(argv)

    harness.tensorflow()
    from tflkit.core.uncertainty import difference_interval, top1_variance, wilson_interval
    from tflkit.data import load_dataset
    from tflkit.pipeline import stages
    from tflkit.training.evaluation import evaluate

    # 1,000 validation images carved from train (BatchNorm statistics, best epoch), the test split for the verdict
    source = load_dataset("cifar10:val=1000", data_dir=os.path.expanduser(args.data_dir), seed=0)
    settings = {"epochs": args.epochs, "train_limit": args.train_limit, "batch_size": args.batch_size,
                "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}
    rows = []

    def pct(r):
        lo, hi = wilson_interval(r["top1"], r["count"])
        return f"{100 * r['top1']:.2f} ({100 * lo:.2f}-{100 * hi:.2f})"

    def cells(row):
        a, b, d = row["float32"], row["mixed_bfloat16"], row["difference"]
        return [row["model"], row["image_size"], row["seed"], pct(a), pct(b),
                f"{100 * d['value']:+.2f} ({100 * d['low']:+.2f} to {100 * d['high']:+.2f})",
                "yes" if d["equal"] else "no", f"{a['train_s']:.0f} / {b['train_s']:.0f}", f"{row['speedup']:.2f}x"]

    def markdown():
        return "\n".join([
            "# Mixed bfloat16 against float32: accuracy and training time", "",
            f"{args.epochs} epochs on {args.train_limit:,} CIFAR-10 images, batch {args.batch_size}, oneDNN "
            f"{settings['onednn']}; top-1 of model.keras on the 10,000 test images; per seed the two precisions in "
            "an order that flips from seed to seed.", "",
            *harness.table(["model", "size", "seed", "fp32 top-1 % (95%)", "bf16 top-1 % (95%)", "bf16 - fp32 (95%)",
                            "equal", "train s fp32 / bf16", "speed-up"], [cells(r) for r in rows])])

    with tempfile.TemporaryDirectory(prefix="precision-") as tmp:
        for entry in args.entries:
            model, size = entry.split(":")

            def side(precision, model=model, size=size):
                def train_and_score(i):
                    seed = args.seeds[i]
                    run = Run(Path(tmp) / f"{model}-{size}-{seed}-{precision}")
                    config = train_config(model, dataset="cifar10", image_size=int(size), epochs=args.epochs,
                                          batch_size=args.batch_size, train_limit=args.train_limit, seed=seed,
                                          precision=precision)
                    wall, _ = harness.seconds(stages.train, run, config, source, resume=False, log=lambda m: None)
                    result = evaluate(run.model_path, source)
                    return {"top1": result.top1, "count": result.count, "train_s": wall}
                return train_and_score

            def finish(done, model=model, size=size):
                a, b = done["float32"], done["mixed_bfloat16"]
                low, high = difference_interval(b["top1"], top1_variance(b["top1"], b["count"]),
                                                a["top1"], top1_variance(a["top1"], a["count"]))
                rows.append({"model": model, "image_size": int(size), "seed": args.seeds[done["round"]],
                             "order": done["order"], "float32": a, "mixed_bfloat16": b,
                             "difference": {"value": b["top1"] - a["top1"], "low": low, "high": high,
                                            "equal": low <= 0 <= high},
                             "speedup": a["train_s"] / b["train_s"]})
                print(" | ".join(map(str, cells(rows[-1]))), flush=True)
                summary = [{"model": r["model"], "image_size": r["image_size"], "seed": r["seed"],
                            "difference": r["difference"], "speedup": r["speedup"]} for r in rows]
                results.write(markdown(), summary=summary, raw=rows, settings=settings)

            harness.side_by_side({name: side(name) for name in PRECISIONS}, len(args.seeds), on_round=finish)
    print(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
