"""Top-1 of every recipe under each hard-swish spelling issue 14 went through, on the same trained weights.

    python -m benchmarks.archive.hardswish_accuracy RUN_DIR [RUN_DIR ...] [--recipes fp32,static_wi8_ai8] [--limit N]

The run's trained model rebuilt three ways, its weights copied layer by layer (hard-swish has none):
"before": one `Activation("hard_swish")` layer, which the converter turns into HARD_SWISH ops in every file, int8
included (20 XNNPACK partitions); "x/6 first": the first int8-friendly spelling, (x / 6) * relu6(x + 3); "today":
tflkit/models/layers.py's (relu6(x + 3) * x) / 6. Both split spellings keep int8 graphs in one partition; float
files are converted from the one-HARD_SWISH float graph (converters.convert.float_graph). Each is converted
from its own SavedModel with the same
calibration images the run's export uses (its train split, its seed, 200 as the export) and evaluated on the whole
test split by `tflkit eval`'s code (tflkit.training.evaluation.evaluate). A run is a `tflkit train`/demo/study run
directory of a model with hard-swish (MobileNetV3).

Writes benchmarks/results/hardswish_accuracy.md and .json.

Archived (issue 22): which hard-swish spelling keeps int8 accuracy was answered for issue 14 (today's
(relu6(x+3)*x)/6: benchmarks/results/hardswish_accuracy.md, cited by docs/pipeline.md and tflkit/models/layers.py).
Kept as the record of how that result was made, and runnable: from the repository root, `python -m
benchmarks.archive.hardswish_accuracy` (benchmarks.harness puts the checkout on the path).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import RESULTS, ROOT
from tflkit.core.run import Run
from tflkit.models.layers import hard_swish_op

RECIPES = ("fp32", "fp16", "dynamic_wi8_afp32", "static_wi8_ai8")


def _x_div6_first(x, keras, name):
    shifted = keras.layers.Rescaling(1.0, offset=3.0, name=f"{name}_plus3")(x)
    gate = keras.layers.ReLU(max_value=6.0, name=f"{name}_relu6")(shifted)
    scaled = keras.layers.Rescaling(1.0 / 6.0, name=f"{name}_div6")(x)
    return keras.layers.Multiply(name=name)([scaled, gate])


SPELLINGS = {"before": hard_swish_op, "x/6 first": _x_div6_first, "today": None}  # None: layers.hard_swish as it is


def rebuilt(config, trained, spelling):
    """The run's architecture with one hard-swish spelling, carrying `trained`'s weights."""
    import tflkit.models.layers as layers
    from tflkit.models import create_model

    current = layers.hard_swish
    layers.hard_swish = SPELLINGS[spelling] or current
    try:
        model = create_model(config.model, num_classes=trained.output_shape[-1], image_size=config.image_size,
                             small_input=config.small_input)
    finally:
        layers.hard_swish = current
    weights = {layer.name: layer.get_weights() for layer in trained.layers}
    for layer in model.layers:
        if weights.get(layer.name):
            layer.set_weights(weights[layer.name])
    return model


def measure_run(run_dir: Path, recipes, calib_samples: int, limit, data_dir, log) -> dict:
    from converters.calibration import calibration_images
    from converters.convert import convert_saved_model, export_saved_model
    from tflkit.data import load_dataset
    from tflkit.data.pipeline import load_images
    from tflkit.tflite.inspect import op_counts
    from tflkit.tflite.runtime import delegation_of, load_interpreter
    from tflkit.training.evaluation import evaluate, load_keras_model

    config = Run(run_dir).config
    source = load_dataset(config.dataset, data_dir=data_dir or config.data_dir, seed=config.seed)
    trained = load_keras_model(run_dir / "model.keras")
    models = {spelling: rebuilt(config, trained, spelling) for spelling in SPELLINGS}
    probe = load_images(source.split("test"), config.image_size, np.arange(16))
    outputs = {spelling: model.predict(probe, verbose=0) for spelling, model in models.items()}
    calib = calibration_images(source.split("train"), config.image_size, calib_samples, seed=config.seed)
    row = {"run": str(run_dir.relative_to(ROOT) if run_dir.is_relative_to(ROOT) else run_dir),
           "model": config.model, "dataset": config.dataset, "image_size": config.image_size,
           "float_max_abs_diff": max(float(np.abs(o - outputs["before"]).max()) for o in outputs.values()),
           "logit_range": float(np.abs(outputs["before"]).max()),
           "calib_samples": len(calib), "test_images": limit or len(source.split("test")), "recipes": {}}
    with tempfile.TemporaryDirectory(prefix="tflkit-hs-") as tmp:
        for variant, model in models.items():
            saved = export_saved_model(model, Path(tmp) / f"{variant.replace('/', '')}.saved")
            for recipe in recipes:
                start = time.perf_counter()
                path = Path(tmp) / f"{variant.replace('/', '')}.{recipe}.tflite"
                path.write_bytes(convert_saved_model(saved, recipe, calib))
                result = evaluate(path, source, "test", limit=limit, seed=config.seed)
                delegation = delegation_of(load_interpreter(path, threads=1))
                entry = {"top1": result.top1, "top5": result.top5, "images": result.count,
                         "hard_swish_ops": op_counts(path).get("HARD_SWISH", 0), "size_bytes": path.stat().st_size,
                         "xnnpack_partitions": delegation.partitions}
                row["recipes"].setdefault(recipe, {})[variant] = entry
                log(f"{config.model} {variant:<9} {recipe:<18} top-1 {result.top1 * 100:6.2f}%  "
                    f"({time.perf_counter() - start:.0f} s)")
    return row


def markdown(rows, command) -> str:
    names = list(SPELLINGS)
    lines = ["# Hard-swish spelling: top-1 of every recipe under each spelling, same weights", "",
             f"Command: `{command}`", "",
             "before: one HARD_SWISH op per hard-swish in every file (int8: 20 XNNPACK partitions, the op on the "
             "reference kernels); x/6 first: (x/6)*relu6(x+3), issue 14's first change; today: (relu6(x+3)*x)/6. "
             "Both split spellings run int8 in one XNNPACK partition; their float files are converted with one "
             "HARD_SWISH per hard-swish (converters.convert.float_graph). Same trained weights, same calibration "
             "images, whole test split, `tflkit eval`'s evaluation. Cells: top-1 % (XNNPACK partitions, "
             "HARD_SWISH ops).", ""]
    for row in rows:
        lines += [f"## {row['model']} on {row['dataset']} ({row['image_size']}x{row['image_size']}), `{row['run']}`",
                  "", f"Float Keras outputs of the three spellings: max abs difference {row['float_max_abs_diff']:.2e}"
                  f" (logits up to {row['logit_range']:.2f}). Calibration {row['calib_samples']} train images; "
                  f"{row['test_images']} test images.", "",
                  "| recipe | " + " | ".join(names) + " | today - before (pts) | today - x/6 first (pts) |",
                  "|---|" + "---|" * (len(names) + 2)]
        for recipe, v in row["recipes"].items():
            if any(n not in v for n in names):
                continue
            cells = [f"{v[n]['top1'] * 100:.2f} ({v[n]['xnnpack_partitions']}, {v[n]['hard_swish_ops']})"
                     for n in names]
            gains = [(v["today"]["top1"] - v[n]["top1"]) * 100 for n in ("before", "x/6 first")]
            lines.append(f"| {recipe} | " + " | ".join(cells) + "".join(f" | {g:+.2f}" for g in gains) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories of MobileNetV3 models")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--calib-samples", type=int, default=200, help="as the export (default 200)")
    parser.add_argument("--limit", type=int, help="a stratified subset of N test images (default: all)")
    parser.add_argument("--data-dir", help="where the datasets are (default: each run's own)")
    parser.add_argument("--out", type=Path, default=RESULTS / "hardswish_accuracy")
    args = parser.parse_args(argv)
    from tflkit.core.fileio import atomic_write_text
    from tflkit.core.tfenv import quiet_tensorflow

    quiet_tensorflow()
    rows = [measure_run(run.resolve(), args.recipes.split(","), args.calib_samples, args.limit, args.data_dir,
                        log=lambda line: print(line, flush=True)) for run in args.runs]
    command = "python -m benchmarks.archive.hardswish_accuracy " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), markdown(rows, command))
    print(f"wrote {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
