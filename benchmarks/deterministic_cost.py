"""What --deterministic costs: `tflkit train` on the embedded shapes (the demo's model and settings, 2 epochs) with
and without it, each in a fresh process, alternating, and whether two deterministic runs give identical weights.

    python benchmarks/deterministic_cost.py [--rounds 2] [--epochs 2] [--out PREFIX]

Each round trains both, the order flipping from round to round (benchmarks/harness.py). Prints the wall time of each
run, the median ratio (deterministic / default) with its range, and writes benchmarks/results/deterministic_cost.{md,
json} with the CPU, its features and the versions.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import harness

NAME = "deterministic_cost"
TRAIN = ["train", "--model", "mobilenetv3_small_050", "--dataset", "shapes", "--batch-size", "64", "--lr", "0.003",
         "--json"]


def train(out: Path, epochs: int, deterministic: bool) -> float:
    command = harness.tflkit(*TRAIN, "--epochs", epochs, "--out", out, *(["--deterministic"] if deterministic else []))
    return harness.run(command)[0]


def same_weights(a: Path, b: Path) -> bool:
    import keras
    import numpy as np

    first, second = (keras.models.load_model(d / "checkpoints" / "last.keras").get_weights() for d in (a, b))
    return all(np.array_equal(x, y) for x, y in zip(first, second))


def main(argv=None) -> int:
    parser = harness.arguments(__doc__, NAME)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args, results = parser.start(argv)
    with tempfile.TemporaryDirectory() as tmp:
        def side(deterministic: bool):
            return lambda r: train(Path(tmp) / f"{deterministic}_{r}", args.epochs, deterministic)

        rounds = harness.side_by_side(
            {"default": side(False), "deterministic": side(True)}, args.rounds,
            on_round=lambda row: print(f"round {row['round']}  default {row['default']:.1f}s  deterministic "
                                       f"{row['deterministic']:.1f}s  (first: {row['order'][0]})", flush=True))
        last = args.rounds - 1
        identical = args.rounds > 1 and same_weights(Path(tmp) / "True_0", Path(tmp) / f"True_{last}")
        default_identical = args.rounds > 1 and same_weights(Path(tmp) / "False_0", Path(tmp) / f"False_{last}")
    ratio = harness.spread(harness.ratios(rounds, "deterministic", "default"))
    text = "\n".join([
        "# What `--deterministic` costs", "",
        f"`tflkit train --model mobilenetv3_small_050 --dataset shapes` ({args.epochs} epochs, batch 64), each run a "
        "fresh process, the order flipping from round to round.", "",
        *harness.table(["round", "first", "default s", "--deterministic s", "ratio"],
                       [[r["round"], r["order"][0], f"{r['default']:.1f}", f"{r['deterministic']:.1f}",
                         f"{r['deterministic'] / r['default']:.2f}x"] for r in rounds]),
        "", f"Median ratio {ratio['median']:.2f}x (range {ratio['min']:.2f}-{ratio['max']:.2f}). Two deterministic "
        f"runs gave {'bit-identical' if identical else 'different'} weights; two default runs gave "
        f"{'bit-identical' if default_identical else 'different'} weights on this machine."])
    print(text)
    results.write(text, summary={"ratio": ratio, "default_s": harness.spread(harness.column(rounds, "default")),
                                 "deterministic_s": harness.spread(harness.column(rounds, "deterministic")),
                                 "identical": identical, "default_identical": default_identical},
                  raw=rounds, settings={"rounds": args.rounds, "epochs": args.epochs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
