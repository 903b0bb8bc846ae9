"""Export a trained run to TFLite under several recipes: one uniform log line and one status row per recipe.

Explicit steps per recipe: prepare (QAT or pruning fine-tune, only for recipes that need it), calibrate, convert,
validate against the float model, write the model card. A recipe that fails is a row with a failed status
(`qat_failed` / `prune50_failed`, `convert_failed`, `run_failed`) and the reason; the others go on.
Files are written atomically, so a failed or interrupted conversion never replaces a good .tflite.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from converters.calibration import DEFAULT_CALIB_SAMPLES, calibration_images, calibration_indices
from converters.convert import ConversionError, export_saved_model
from converters.isolated import ConverterPool, IsolatedConverter
from converters.qat import FineTuneSettings
from converters.recipes import DEFAULT_RECIPES, resolve_recipes
from converters.validate import DEFAULT_TENSOR_SAMPLES, DEFAULT_VALIDATION_SAMPLES
from tflkit.errors import ModelFileError
from tflkit.fileio import atomic_write_bytes, atomic_write_text

MAX_CONVERT_WORKERS = 2  # conversions in flight at once (each its own process); the demo machine has 2 cores


@dataclass
class ExportResult:
    recipe: str
    status: str  # ok, qat_failed, prune50_failed, convert_failed, run_failed
    path: str | None = None
    size_bytes: int | None = None
    seconds: float | None = None
    message: str = ""
    gzip_bytes: int | None = None
    weight_sparsity: float | None = None  # zeros in CONV_2D/FULLY_CONNECTED weights, read from the .tflite
    validation: dict | None = None  # Validation.summary(); the full record is <artifact>.validation.json


def artifact_name(model: str, dataset: str, recipe: str) -> str:
    """`<model>.<dataset>.<recipe>.tflite`, with the dataset spec made file-name safe (folder:/a/b -> folder-b)."""
    name, _, arg = dataset.partition(":")
    slug = name if not arg else f"{name}-{Path(arg.rstrip('/')).name}"
    return f"{model}.{re.sub(r'[^A-Za-z0-9_-]+', '-', slug)}.{recipe}.tflite"


def tflite_dir(run_dir) -> Path:
    return Path(run_dir) / "tflite"


def validation_path(tflite_path) -> Path:
    path = Path(tflite_path)
    return path.with_name(path.name[: -len(".tflite")] + ".validation.json")


def export_run(run_dir, recipes=DEFAULT_RECIPES, calib_samples: int = DEFAULT_CALIB_SAMPLES, log=print,
               source=None, validate_samples: int = DEFAULT_VALIDATION_SAMPLES,
               tensor_samples: int = DEFAULT_TENSOR_SAMPLES, fine_tune: FineTuneSettings | None = None,
               calib_images=None) -> list[ExportResult]:
    """Convert, validate and document `recipes` for the run in `run_dir`. `calib_images` overrides the calibration
    set (tests feed a deliberately broken one)."""
    from tflkit.tfenv import quiet_tensorflow

    quiet_tensorflow()
    from tflkit.data import load_dataset
    from tflkit.data.pipeline import load_images
    from converters.model_card import model_normalization
    from tflkit.evaluation import load_keras_model
    from tflkit.models import get_spec
    from tflkit.training import RunFiles, load_run_config

    recipes = resolve_recipes(recipes)
    recipes.sort(key=lambda r: r.name != "fp32")  # fp32 first: the per-tensor reference of the others
    fine_tune = fine_tune or FineTuneSettings()
    config = load_run_config(run_dir)
    files = RunFiles(Path(run_dir))
    model = load_keras_model(files.model)
    out_dir = tflite_dir(run_dir)
    source = source or load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed)
    calib = calib_images
    if calib is None and any(r.needs_calibration for r in recipes):
        calib = calibration_images(source.split("train"), config.image_size, calib_samples, seed=config.seed)
    calibration = {"samples": 0 if calib is None else len(calib), "split": "train", "seed": config.seed,
                   "distinct_images": True, "preprocessing": "training pipeline (resize to input size, 0..255)"}
    if calib_images is not None:
        calibration = {"samples": len(calib_images), "split": "given", "seed": None}

    # Held-out images for validation: val if the dataset has it, else test; never the calibration images.
    held_out = "val" if "val" in source.splits else "test"
    split = source.split(held_out)
    val_images = load_images(split, config.image_size,
                             calibration_indices(len(split), validate_samples, config.seed + 1))
    val_logits = np.asarray(model.predict(val_images, batch_size=256, verbose=0)) if len(val_images) else None
    normalization = model_normalization(model, get_spec(config.model))  # for every recipe's model card

    results = []
    with tempfile.TemporaryDirectory(prefix="tflkit-export-") as tmp, contextlib.ExitStack() as workers:
        # Conversions run in a worker process (converters/isolated.py): a converter crash is a failed row.
        saved_model = Path(tmp) / "saved_model"
        plain = [r for r in recipes if r.prepare is None]  # converted straight from the SavedModel
        fp32_ref = None
        wants_ref = val_logits is not None and tensor_samples > 0 and any(r.name != "fp32" for r in recipes)
        scratch_ref = wants_ref and recipes[0].name != "fp32"
        workers_wanted = min(MAX_CONVERT_WORKERS, os.cpu_count() or 1, max(1, len(plain) + scratch_ref))
        convert = workers.enter_context(ConverterPool(saved_model, calib, workers=workers_wanted)).start()
        start = time.perf_counter()
        export_saved_model(model, saved_model)
        log(f"export   saved_model  {time.perf_counter() - start:6.1f}s  (once, reused by every recipe)")
        convert.prefetch((["fp32"] if scratch_ref else []) + plain)
        # The float .tflite is the per-tensor reference of the others: the fp32 recipe's own file when it is
        # converted in this batch (it comes first), else a scratch conversion.
        if scratch_ref:
            fp32_ref = Path(tmp) / "fp32_reference.tflite"
            fp32_ref.write_bytes(convert("fp32"))
        prepared = {}  # prepare kind -> a converter over its SavedModel (or the TfmotError)
        for recipe in recipes:
            path = out_dir / artifact_name(config.model, config.dataset, recipe.name)
            start = time.perf_counter()
            result = _export_one(recipe, path, convert, calib, prepared, model, config, source, fine_tune, tmp,
                                 workers, log)
            # a pooled conversion's own time; it may have run in the background while earlier files validated
            result.seconds = convert.seconds.get(recipe.name, time.perf_counter() - start)
            if result.status == "ok":
                log(f"convert  {recipe.name:<22} {result.seconds:6.1f}s  {path}  ({result.size_bytes / 1e6:.2f} MB)")
                result = _validate_and_document(result, recipe, val_images, val_logits, fp32_ref, tensor_samples,
                                                config, files, calibration, normalization, fine_tune, log)
            else:
                log(f"convert  {recipe.name:<22} FAILED ({result.status})  {result.message}")
            if recipe.name == "fp32" and result.status == "ok" and wants_ref:
                fp32_ref = Path(result.path)
            results.append(result)
    record = {"calibration": calibration, "validation": {"split": held_out, "samples": len(val_images)},
              "results": [asdict(r) for r in results]}
    _merge_export_record(out_dir / "exports.json", record)
    return results


def _export_one(recipe, path, convert, calib, prepared, model, config, source, fine_tune, tmp, workers, log):
    from converters.twin import TfmotError

    if recipe.prepare is not None:
        if recipe.prepare not in prepared:
            try:
                saved = _prepare(recipe.prepare, model, config, source, fine_tune, tmp, log)
                prepared[recipe.prepare] = workers.enter_context(IsolatedConverter(saved, calib))
            except TfmotError as exc:
                prepared[recipe.prepare] = exc
        if isinstance(prepared[recipe.prepare], TfmotError):
            return ExportResult(recipe.name, f"{recipe.prepare}_failed", message=str(prepared[recipe.prepare]))
        convert = prepared[recipe.prepare]
    try:
        data = convert(recipe)
    except ConversionError as exc:
        return ExportResult(recipe.name, "convert_failed", message=str(exc))
    atomic_write_bytes(path, data)
    return ExportResult(recipe.name, "ok", str(path), len(data))


def _prepare(kind: str, model, config, source, fine_tune: FineTuneSettings, tmp, log) -> Path:
    """The tfmot step of a recipe, as a SavedModel ready for conversion."""
    from converters.twin import save_for_conversion

    start = time.perf_counter()
    if kind == "qat":
        from converters.qat import qat_model

        prepared = qat_model(model, config.model, source, config.image_size, config.small_input, fine_tune,
                             seed=config.seed, log=log)
    elif kind == "prune50":
        from converters.pruning import pruned_model

        prepared = pruned_model(model, config.model, source, config.image_size, config.small_input, fine_tune,
                                seed=config.seed, log=log)
    else:
        raise ValueError(f"unknown prepare step {kind!r}")
    out = Path(tmp) / f"saved_model_{kind}"
    save_for_conversion(prepared, out)
    log(f"prepare  {kind:<22} {time.perf_counter() - start:6.1f}s  (tfmot, tf_keras twin)")
    return out


def _validate_and_document(result, recipe, val_images, val_logits, fp32_ref, tensor_samples, config, files,
                           calibration, normalization, fine_tune, log):
    from converters.inspect import gzip_size, weight_sparsity
    from converters.model_card import build_card, write_card
    from converters.validate import validate
    from tflkit.runrecords import load_model_info

    path = Path(result.path)
    try:
        result.gzip_bytes = gzip_size(path)
        result.weight_sparsity = weight_sparsity(path)
        if val_logits is not None:
            validation = validate(path, val_logits, val_images, fp32_path=None if recipe.name == "fp32" else fp32_ref,
                                  tensor_samples=tensor_samples, integer_only=recipe.integer_only)
            atomic_write_text(validation_path(path), json.dumps(validation.to_dict(), indent=2) + "\n")
            result.validation = validation.summary()
            log(f"validate {recipe.name:<22} agreement {100 * validation.top1_agreement:6.2f}%  "
                f"max |dlogit| {validation.max_abs_logit_diff:.3f}  worst {result.validation['worst_layer'] or '-'}")
    except (ModelFileError, ValueError, RuntimeError) as exc:  # the runtime refused to load or run the file
        result.status, result.message = "run_failed", str(exc).splitlines()[0][:300]
        log(f"validate {recipe.name:<22} FAILED  {result.message}")
        return result
    info = load_model_info(files.root)
    card = build_card(path, model=config.model, recipe=recipe, run_dir=files.root, keras_path=files.model,
                      input_size=config.image_size, class_names=info.get("class_names", []),
                      normalization=normalization, calibration=calibration, dataset=config.dataset,
                      fine_tune=asdict(fine_tune) if recipe.prepare else None)
    write_card(path, card)
    return result


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
