"""What --deterministic costs: `tflkit train` on the embedded shapes (the demo's model and settings, 2 epochs) with
and without it, each in a fresh process, alternating, and whether two deterministic runs give identical weights.

    python benchmarks/deterministic_cost.py [--rounds 2] [--epochs 2]

Prints the wall time of each run, the median ratio (deterministic / default) and writes
benchmarks/results/deterministic_cost.{md,json} with the CPU, its features and the versions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tflkit.core.fileio import atomic_write_text
from tflkit.core.machine import machine

RESULTS = Path(__file__).resolve().parent / "results"
TRAIN = ["-m", "tflkit", "train", "--model", "mobilenetv3_small_050", "--dataset", "shapes", "--batch-size", "64",
         "--lr", "0.003", "--json"]


def run(out: Path, epochs: int, deterministic: bool) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *TRAIN, "--epochs", str(epochs), "--out", str(out)]
                   + (["--deterministic"] if deterministic else []), check=True, capture_output=True)
    return time.perf_counter() - start


def weights(run_dir: Path):
    import keras

    return keras.models.load_model(run_dir / "checkpoints" / "last.keras").get_weights()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    times = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for det in (False, True):
                wall = run(Path(tmp) / f"{det}_{r}", args.epochs, det)
                times[det].append(wall)
                print(f"round {r}  deterministic {det}  {wall:.1f}s", flush=True)
        import numpy as np

        a, b = weights(Path(tmp) / "True_0"), weights(Path(tmp) / f"True_{args.rounds - 1}")
        identical = args.rounds > 1 and all(np.array_equal(x, y) for x, y in zip(a, b))
        c = weights(Path(tmp) / "False_0")
        default_identical = args.rounds > 1 and all(
            np.array_equal(x, y) for x, y in zip(c, weights(Path(tmp) / f"False_{args.rounds - 1}")))
    ratios = [d / n for d, n in zip(times[True], times[False])]
    env = machine()
    text = "\n".join([
        "# What `--deterministic` costs", "",
        f"`python benchmarks/deterministic_cost.py --rounds {args.rounds} --epochs {args.epochs}`: `tflkit train "
        f"--model mobilenetv3_small_050 --dataset shapes` ({args.epochs} epochs, batch 64), each run a fresh process. "
        f"CPU: {env['cpu']}, {env['cores']} cores, features {env['cpu_features'] or 'unknown'}; TensorFlow "
        f"{env['tensorflow']}.", "",
        "| run | default s | --deterministic s | ratio |", "|---|---|---|---|",
        *[f"| {i} | {n:.1f} | {d:.1f} | {d / n:.2f}x |" for i, (n, d) in enumerate(zip(times[False], times[True]))],
        "", f"Median ratio {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}). Two "
        f"deterministic runs gave {'bit-identical' if identical else 'different'} weights; two default runs gave "
        f"{'bit-identical' if default_identical else 'different'} weights on this machine.", ""])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "deterministic_cost.md", text)
    atomic_write_text(RESULTS / "deterministic_cost.json", json.dumps(
        {"machine": env, "default_s": times[False], "deterministic_s": times[True], "identical": identical,
         "default_identical": default_identical}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
