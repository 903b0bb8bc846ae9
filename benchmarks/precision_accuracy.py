"""Does mixed bfloat16 train to the same accuracy as float32, and how much faster, on this CPU: the check a
`--precision` choice per architecture must pass (same seed, same epochs, same images).

    python benchmarks/precision_accuracy.py [--entries resnet18:32 efficientnetv2_s:224] [--epochs 2]
                                            [--train-limit 5000] [--seeds 0]

For each entry MODEL:SIZE (tflkit's default stem for the size) and seed: `tflkit.training.loop.train` in float32 and in
mixed_bfloat16 on the same stratified CIFAR-10 subset, then model.keras (float32 either way) evaluated on the
whole 10,000-image test split. Reports both top-1 with their 95% intervals, the difference's interval (equal when
it includes 0), and each run's training wall time. Writes benchmarks/results/precision_accuracy.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from tflkit.models import train_config

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="~/.cache/tflkit-data/cifar-10-batches-py")
    p.add_argument("--entries", nargs="+", default=["resnet18:32"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-limit", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--out", default=str(RESULTS / "precision_accuracy"))
    args = p.parse_args(argv)

    from tflkit.core.tfenv import quiet_tensorflow

    quiet_tensorflow()
    from tflkit.core.fileio import atomic_write_text
    from tflkit.core.machine import cpu_features, cpu_name
    from tflkit.core.uncertainty import difference_interval, top1_variance, wilson_interval
    from tflkit.data import load_dataset
    from tflkit.training.evaluation import evaluate
    from tflkit.training.loop import train

    # 1,000 validation images carved from train (BatchNorm statistics, best epoch), the test split for the verdict
    source = load_dataset("cifar10:val=1000", data_dir=os.path.expanduser(args.data_dir), seed=0)
    command = "python benchmarks/precision_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"cpu": cpu_name(), "cpu_features": cpu_features(), "cores": os.cpu_count(),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"), "epochs": args.epochs,
            "train_limit": args.train_limit, "batch_size": args.batch_size, "date": time.strftime("%Y-%m-%d"),
            "command": command.strip()}
    rows = []
    lines = [f"# Mixed bfloat16 against float32: accuracy and training time ({meta['date']})", "",
             f"CPU: {meta['cpu']}, {meta['cores']} cores, features {' '.join(meta['cpu_features'])}; oneDNN "
             f"{meta['onednn']}; {args.epochs} epochs on {args.train_limit:,} CIFAR-10 images, batch "
             f"{args.batch_size}; top-1 of model.keras on the 10,000 test images. Command: `{meta['command']}`.", "",
             "| model | size | seed | fp32 top-1 % (95%) | bf16 top-1 % (95%) | bf16 - fp32 (95%) | equal | "
             "train s fp32 / bf16 | speed-up |", "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="precision-") as tmp:
        for entry in args.entries:
            model, size = entry.split(":")
            for seed in args.seeds:
                row = {"model": model, "image_size": int(size), "seed": seed}
                for precision in ("float32", "mixed_bfloat16"):
                    run = Path(tmp) / f"{model}-{size}-{seed}-{precision}"
                    config = train_config(model, dataset="cifar10", image_size=int(size),
                                                   epochs=args.epochs, batch_size=args.batch_size,
                                                   train_limit=args.train_limit, seed=seed, precision=precision)
                    start = time.perf_counter()
                    train(config, run, verbose=0, source=source, log=lambda m: None)
                    wall = time.perf_counter() - start
                    result = evaluate(run / "model.keras", source)
                    row[precision] = {"top1": result.top1, "count": result.count, "train_s": wall}
                a, b = row["float32"], row["mixed_bfloat16"]
                low, high = difference_interval(b["top1"], top1_variance(b["top1"], b["count"]),
                                                a["top1"], top1_variance(a["top1"], a["count"]))
                row["difference"] = {"value": b["top1"] - a["top1"], "low": low, "high": high,
                                     "equal": low <= 0 <= high}
                row["speedup"] = a["train_s"] / b["train_s"]
                rows.append(row)
                print(json.dumps(row), flush=True)

                def pct(r):
                    lo, hi = wilson_interval(r["top1"], r["count"])
                    return f"{100 * r['top1']:.2f} ({100 * lo:.2f}-{100 * hi:.2f})"

                d = row["difference"]
                lines.append(f"| {model} | {size} | {seed} | {pct(a)} | {pct(b)} | {100 * d['value']:+.2f} "
                             f"({100 * d['low']:+.2f} to {100 * d['high']:+.2f}) | {'yes' if d['equal'] else 'no'} "
                             f"| {a['train_s']:.0f} / {b['train_s']:.0f} | {row['speedup']:.2f}x |")
                atomic_write_text(Path(args.out + ".json"), json.dumps({"meta": meta, "rows": rows}, indent=1)
                                  + "\n")
                atomic_write_text(Path(args.out + ".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
