"""Export a trained run to TFLite under several recipes: one uniform log line and one status row per recipe.

A recipe that fails is a row with status `convert_failed` and the converter's reason; the others go on.
Files are written atomically, so a failed or interrupted conversion never replaces a good .tflite.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from converters.calibration import DEFAULT_CALIB_SAMPLES, calibration_images
from converters.convert import ConversionError, convert_saved_model, export_saved_model
from converters.recipes import DEFAULT_RECIPES, resolve_recipes
from tflkit.fileio import atomic_write_bytes, atomic_write_text


@dataclass
class ExportResult:
    recipe: str
    status: str  # ok, convert_failed
    path: str | None = None
    size_bytes: int | None = None
    seconds: float | None = None
    message: str = ""


def artifact_name(model: str, dataset: str, recipe: str) -> str:
    """`<model>.<dataset>.<recipe>.tflite`, with the dataset spec made file-name safe (folder:/a/b -> folder-b)."""
    name, _, arg = dataset.partition(":")
    slug = name if not arg else f"{name}-{Path(arg.rstrip('/')).name}"
    return f"{model}.{re.sub(r'[^A-Za-z0-9_-]+', '-', slug)}.{recipe}.tflite"


def tflite_dir(run_dir) -> Path:
    return Path(run_dir) / "tflite"


def export_run(run_dir, recipes=DEFAULT_RECIPES, calib_samples: int = DEFAULT_CALIB_SAMPLES, log=print,
               source=None) -> list[ExportResult]:
    from tflkit.tfenv import quiet_tensorflow

    quiet_tensorflow()
    from tflkit.data import load_dataset
    from tflkit.evaluation import load_keras_model
    from tflkit.training import RunFiles, load_run_config

    recipes = resolve_recipes(recipes)
    config = load_run_config(run_dir)
    model = load_keras_model(RunFiles(Path(run_dir)).model)
    out_dir = tflite_dir(run_dir)
    calib = None
    if any(r.needs_calibration for r in recipes):
        source = source or load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed)
        calib = calibration_images(source.split("train"), config.image_size, calib_samples, seed=config.seed)

    results = []
    with tempfile.TemporaryDirectory(prefix="tflkit-export-") as tmp:
        start = time.perf_counter()
        saved_model = export_saved_model(model, Path(tmp) / "saved_model")
        log(f"export   saved_model  {time.perf_counter() - start:6.1f}s  (once, reused by every recipe)")
        for recipe in recipes:
            path = out_dir / artifact_name(config.model, config.dataset, recipe.name)
            start = time.perf_counter()
            try:
                data = convert_saved_model(saved_model, recipe, calib if recipe.needs_calibration else None)
            except ConversionError as exc:
                result = ExportResult(recipe.name, "convert_failed", seconds=time.perf_counter() - start,
                                      message=str(exc))
                log(f"convert  {recipe.name:<18} FAILED  {result.message}")
            else:
                atomic_write_bytes(path, data)
                result = ExportResult(recipe.name, "ok", str(path), len(data), time.perf_counter() - start)
                log(f"convert  {recipe.name:<18} {result.seconds:6.1f}s  {path}  ({len(data) / 1e6:.2f} MB)")
            results.append(result)
    record = {"calibration": {"samples": 0 if calib is None else len(calib), "split": "train", "seed": config.seed},
              "results": [asdict(r) for r in results]}
    _merge_export_record(out_dir / "exports.json", record)
    return results


def _merge_export_record(path: Path, record: dict) -> None:
    # Converting a second batch of recipes later keeps the first batch's rows.
    rows = {}
    if path.is_file():
        rows = {r["recipe"]: r for r in json.loads(path.read_text())["results"]}
    rows.update({r["recipe"]: r for r in record["results"]})
    record = {**record, "results": list(rows.values())}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def load_export_record(run_dir) -> list[dict]:
    path = tflite_dir(run_dir) / "exports.json"
    return json.loads(path.read_text())["results"] if path.is_file() else []
