"""What each stage of a study cell after training costs against its own floor, on real CIFAR-10.

    python benchmarks/study_stages.py [--model mobilenetv3_small_100] [--image-size 64] [--rounds 3]

One short run is trained first (ImageNet stem, 1 epoch of 1,024 images: the stages' cost does not depend on how
well it learned). Then, per round:
- convert: `export_run` of fp32 and static_wi8_ai8 (SavedModel export, conversion, the file's preflight check,
  validation against the Keras model on held-out images, model card) into a fresh copy of the run, against the
  floor: `tf.lite.TFLiteConverter.from_keras_model` on the loaded model, fp32 and int8 with the same number of
  calibration images, nothing else;
- eval: `tflkit.training.evaluation.evaluate` of each file on the 10,000-image test split (JPEG decode, resize,
  preprocessing, the interpreter) against the floor: the same interpreter over the same images already decoded,
  resized and preprocessed in memory;
- bench_host: `tflkit.pipeline.stages.bench_host` (a new process, as in a study, each file timed at 1 thread)
  against the floor: warm-up plus timed runs times the median latency it measured.
A ratio is stage wall / floor (1.0: the stage costs only what it must). Medians and min-max over rounds, with the
CPU. Writes benchmarks/results/study_stages.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tflkit.models import train_config

RESULTS = Path(__file__).resolve().parent / "results"
RECIPES = ("fp32", "static_wi8_ai8")
CALIB = 100


def seconds(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


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

    return seconds(fp32)[0] + seconds(int8)[0]


def floor_eval(path, pixels_of) -> float:
    from tflkit.tflite.model import TFLiteClassifier

    classifier = TFLiteClassifier(path)
    pixels = pixels_of(path)
    return seconds(lambda: classifier.predict(pixels))[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="~/.cache/tflkit-data")
    p.add_argument("--model", default="mobilenetv3_small_100")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS / "study_stages"))
    args = p.parse_args(argv)

    from tflkit.core.tfenv import quiet_tensorflow

    quiet_tensorflow()
    import keras

    from converters.export import export_run
    from tflkit.bench.host import BenchSettings
    from tflkit.core.fileio import atomic_write_text
    from tflkit.core.machine import cpu_features, cpu_name
    from tflkit.core.run import Run
    from tflkit.data import load_dataset
    from tflkit.data.pipeline import load_images
    from tflkit.data.preprocess import for_model
    from tflkit.pipeline import stages as pipeline
    from tflkit.training.evaluation import evaluate
    from tflkit.training.loop import train

    source = load_dataset("cifar10", data_dir=os.path.expanduser(args.data_dir), seed=0)
    test = source.split("test")
    test_images = load_images(test, args.image_size)  # decoded and resized once: the eval floor's input
    settings = BenchSettings(runs=30, warmup=5)
    quiet = lambda *_: None  # noqa: E731
    rounds = []
    with tempfile.TemporaryDirectory(prefix="study-stages-") as tmp:
        trained = Path(tmp) / "trained"
        config = train_config(args.model, dataset="cifar10", image_size=args.image_size,
                                       small_input=False, epochs=1, batch_size=64, train_limit=1024, seed=0)
        train(config, trained, verbose=0, source=source, log=quiet)
        model = keras.models.load_model(trained / "model.keras")
        calib = test_images[:CALIB].astype("float32")
        for rnd in range(args.rounds):
            run = Path(tmp) / f"round{rnd}"
            shutil.copytree(trained, run)
            row = {}
            row["convert"], _ = seconds(lambda run=run: export_run(run, list(RECIPES), calib_samples=CALIB, log=quiet,
                                                           source=source))
            row["convert_floor"] = floor_convert(model, calib)
            files = Run(run).tflite_files()
            row["eval"] = sum(seconds(lambda f=f: evaluate(f, source))[0] for f in files)
            row["eval_floor"] = sum(floor_eval(f, lambda f: for_model(f, None, log=quiet).apply(test_images))
                                    for f in files)
            row["bench_host"], results = seconds(lambda run=run: pipeline.bench_host(Run(run), threads=(1,),
                                                                                   settings=settings))
            row["bench_host_floor"] = sum((r.count + settings.warmup) * r.median_ms / 1000 for r in results)
            rounds.append(row)
            print(json.dumps({"round": rnd + 1, **row}), flush=True)

    stages = {}
    for stage in ("convert", "eval", "bench_host"):
        walls = [r[stage] for r in rounds]
        ratios = [r[stage] / r[f"{stage}_floor"] for r in rounds]
        stages[stage] = {"wall_s_median": statistics.median(walls),
                         "floor_s_median": statistics.median(r[f"{stage}_floor"] for r in rounds),
                         "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                         "ratio_max": max(ratios)}
    command = "python benchmarks/study_stages.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {"cpu": cpu_name(), "cpu_features": cpu_features(), "cores": os.cpu_count(), "model": args.model,
            "image_size": args.image_size, "recipes": list(RECIPES), "test_images": len(test),
            "rounds": args.rounds, "date": time.strftime("%Y-%m-%d"), "command": command.strip()}
    atomic_write_text(Path(args.out + ".json"), json.dumps({"meta": meta, "stages": stages, "rounds": rounds},
                                                           indent=1) + "\n")
    floors = {"convert": "bare TFLiteConverter calls (fp32 + int8)",
              "eval": "the interpreter over pre-decoded, pre-processed images",
              "bench_host": "(warm-up + runs) x median latency"}
    lines = [f"# A study cell's stages after training, against their floors ({meta['date']})", "",
             f"CPU: {meta['cpu']}, {meta['cores']} cores, features {' '.join(meta['cpu_features'])}; "
             f"{args.model} at {args.image_size} px, recipes {', '.join(RECIPES)}, {len(test):,} CIFAR-10 test "
             f"images, {args.rounds} rounds. Command: `{meta['command']}`.", "",
             "| stage | wall s (median) | floor s (median) | floor | ratio median (min-max) |", "|---|---|---|---|---|"]
    for stage, s in stages.items():
        lines.append(f"| {stage} | {s['wall_s_median']:.1f} | {s['floor_s_median']:.1f} | {floors[stage]} | "
                     f"{s['ratio_median']:.2f} ({s['ratio_min']:.2f}-{s['ratio_max']:.2f}) |")
    atomic_write_text(Path(args.out + ".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
