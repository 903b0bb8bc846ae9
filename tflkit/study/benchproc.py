"""`python -m tflkit.study.benchproc MODEL --threads ...`: the study's host benchmark, in a fresh process.

It imports the LiteRT runtime and nothing of TensorFlow (unless dataset inputs are asked for), as benchmark_model
runs; after training in the same process TensorFlow's idle thread pools slowed LiteRT's median 1.4x here.
Prints the BenchResult list as JSON on stdout; a model that fails is a result with its status, exit 0.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tflkit.study.benchproc")
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=0.0)
    parser.add_argument("--input-data", default="random")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)

    from tflkit.bench.host import BenchSettings, bench_models, open_input_data

    settings = BenchSettings(runs=args.runs, warmup=args.warmup, min_seconds=args.min_seconds)
    images = open_input_data(args.input_data, data_dir=args.data_dir)
    results = bench_models([args.model], threads=args.threads, settings=settings, images=images)
    json.dump([r.to_dict() for r in results], sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
