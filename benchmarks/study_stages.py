"""What each stage of a study cell after training costs against its own floor, on real CIFAR-10.

    python benchmarks/study_stages.py [--model mobilenetv3_small_100] [--image-size 64] [--rounds 3] [--out PREFIX]

One short run is trained first (ImageNet stem, 1 epoch of 1,024 images: the stages' cost does not depend on how
well it learned). Then, per round, each stage and its floor in an order that flips from round to round
(benchmarks/harness.py turn):
- convert: the convert stage (tflkit.pipeline.stages.convert: converters.export.export_run) of fp32 and
  static_wi8_ai8 (SavedModel export, conversion, the file's preflight check, validation against the Keras model on
  held-out images, model card) into a fresh copy of the run, against the floor:
  `tf.lite.TFLiteConverter.from_keras_model` on the loaded model, fp32 and int8 with the same number of calibration
  images, nothing else;
- eval: the eval stage (tflkit.pipeline.stages.evaluate: tflkit.training.evaluation.evaluate) of each file on the
  10,000-image test split (JPEG decode, resize, preprocessing, the interpreter) against the floor: the same
  interpreter over the same images already decoded, resized and preprocessed in memory;
- bench_host: `tflkit.pipeline.stages.bench_host` (a new process, as in a study, each file timed at 1 thread)
  against the floor: warm-up plus timed runs times the median latency it measured.
A ratio is stage wall / floor (1.0: the stage costs only what it must). Medians and min-max over rounds. Writes
benchmarks/results/study_stages.{md,json} (benchmarks/harness.py's writer: the CPU, its features, the versions).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import harness

from tflkit.models import train_config

NAME = "study_stages"
RECIPES = ("fp32", "static_wi8_ai8")
CALIB = 100


def floor_convert(model, calib_images) -> float:
    import numpy as np
    import tensorflow as tf

    def fp32():
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()

    def int8():
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x[None].astype(np.float32)] for x in calib_images)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
        return converter.convert()

    return harness.seconds(fp32)[0] + harness.seconds(int8)[0]


def floor_eval(path, pixels_of) -> float:
    from tflkit.tflite.model import TFLiteClassifier

    classifier = TFLiteClassifier(path)
    pixels = pixels_of(path)
    return harness.seconds(classifier.predict, pixels)[0]


def main(argv=None) -> int:
    parser = harness.arguments(__doc__, NAME)
    parser.add_argument("--data-dir", default="~/.cache/tflkit-data")
    parser.add_argument("--model", default="mobilenetv3_small_100")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args, results = parser.start(argv)

    harness.tensorflow()
    import keras

    from tflkit.bench.host import BenchSettings
    from tflkit.core.run import Run
    from tflkit.data import load_dataset
    from tflkit.data.pipeline import load_images
    from tflkit.data.preprocess import for_model
    from tflkit.pipeline import stages

    source = load_dataset("cifar10", data_dir=os.path.expanduser(args.data_dir), seed=0)
    test = source.split("test")
    test_images = load_images(test, args.image_size)  # decoded and resized once: the eval floor's input
    settings = BenchSettings(runs=30, warmup=5)
    quiet = lambda *_: None  # noqa: E731
    rounds = []
    with tempfile.TemporaryDirectory(prefix="study-stages-") as tmp:
        trained = Run(Path(tmp) / "trained")
        config = train_config(args.model, dataset="cifar10", image_size=args.image_size, small_input=False, epochs=1,
                              batch_size=64, train_limit=1024, seed=0)
        stages.train(trained, config, source, resume=False, log=quiet)
        model = keras.models.load_model(trained.model_path)
        calib = test_images[:CALIB].astype("float32")
        for rnd in range(args.rounds):
            run = Run(Path(tmp) / f"round{rnd}")
            shutil.copytree(trained.path, run.path)
            work = {
                "convert": lambda run=run: stages.convert(run, list(RECIPES), source, calib_samples=CALIB, log=quiet),
                "convert_floor": lambda: floor_convert(model, calib),
                "eval": lambda run=run: stages.evaluate(run, run.tflite_files(), source),
                "eval_floor": lambda run=run: sum(
                    floor_eval(f, lambda f: for_model(f, None, log=quiet).apply(test_images))
                    for f in run.tflite_files()),
            }
            row = {"round": rnd}
            for pair in (("convert", "convert_floor"), ("eval", "eval_floor")):  # eval needs the converted files
                row[f"{pair[0]}_first"] = harness.turn(list(pair), rnd)[0]
                for stage in harness.turn(list(pair), rnd):
                    wall, value = harness.seconds(work[stage])
                    row[stage] = value if stage.endswith("_floor") else wall
            row["bench_host"], bench = harness.seconds(stages.bench_host, run, threads=(1,), settings=settings)
            row["bench_host_floor"] = sum((r.count + settings.warmup) * r.median_ms / 1000 for r in bench)
            rounds.append(row)
            print(json.dumps(row), flush=True)

    summary = {}
    for stage in ("convert", "eval", "bench_host"):
        summary[stage] = {"wall_s": harness.spread(harness.column(rounds, stage)),
                          "floor_s": harness.spread(harness.column(rounds, f"{stage}_floor")),
                          "ratio": harness.spread(harness.ratios(rounds, stage, f"{stage}_floor"))}
    floors = {"convert": "bare TFLiteConverter calls (fp32 + int8)",
              "eval": "the interpreter over pre-decoded, pre-processed images",
              "bench_host": "(warm-up + runs) x median latency"}
    lines = ["# A study cell's stages after training, against their floors", "",
             f"{args.model} at {args.image_size} px, recipes {', '.join(RECIPES)}, {len(test):,} CIFAR-10 test "
             f"images, {args.rounds} rounds (a stage and its floor in flipping order).", "",
             *harness.table(["stage", "wall s (median)", "floor s (median)", "floor", "ratio median (min-max)"],
                            [[stage, f"{s['wall_s']['median']:.1f}", f"{s['floor_s']['median']:.1f}", floors[stage],
                              harness.fmt_spread(s["ratio"])] for stage, s in summary.items()])]
    results.write("\n".join(lines), summary=summary, raw=rounds,
                  settings={"model": args.model, "image_size": args.image_size, "recipes": list(RECIPES),
                            "test_images": len(test), "rounds": args.rounds, "calib_samples": CALIB})
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
