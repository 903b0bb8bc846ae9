"""Export a trained run to TFLite under several recipes: one uniform log line and one status row per recipe.

Explicit steps per recipe: prepare (QAT or pruning fine-tune, only for recipes that need it), calibrate, convert,
validate against the float model, write the model card. A recipe that fails is a row with a failed status
(`qat_failed` / `prune50_failed`, `convert_failed`, `run_failed`) and the reason; the others go on.
Files are written atomically, so a failed or interrupted conversion never replaces a good .tflite.

A recipe with extra training (QAT, pruning) is compared with the fp32 model fine-tuned the same way (same steps,
batch size, lr, data order and seed, no tfmot): both scored on the held-out images every recipe is validated on, the
figures in the recipe's `fine_tune` record, so the report can tell quantization's own effect from the fine-tune's.
QAT and pruning share the fine-tune settings, so the reference is trained once per export (or reused from a record).

Nothing computed is lost: each recipe's row is merged into tflite/exports.json (read, update one row, atomic
replace) the moment it is final, and a later export skips recipes whose file and ok row exist with the same
settings (calibration size, fine-tune), so a convert killed midway and run again converts only what is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from converters.calibration import DEFAULT_CALIB_SAMPLES, calibration_images, calibration_indices
from converters.convert import ConversionError, export_saved_model
from converters.isolated import ConverterPool, IsolatedConverter
from converters.model_card import build_card, model_normalization, write_card
from converters.pruning import pruned_model
from converters.qat import float_fine_tuned, qat_model
from converters.recipes import DEFAULT_RECIPES, FineTuneSettings, resolve_recipes
from converters.twin import TfmotError, save_for_conversion
from converters.validate import DEFAULT_TENSOR_SAMPLES, DEFAULT_VALIDATION_SAMPLES, validate
from tflkit.core.errors import ModelFileError
from tflkit.core.fileio import atomic_write_bytes, atomic_write_text
from tflkit.core.results import ExportResult
from tflkit.core.run import Run, validation_path
from tflkit.core.tfenv import quiet_tensorflow
from tflkit.data import load_dataset
from tflkit.data.check import screen_images
from tflkit.data.pipeline import load_images
from tflkit.models import get_spec
from tflkit.tflite.describe import file_figures
from tflkit.tflite.inspect import gzip_size, weight_sparsity
from tflkit.tflite.model import TFLiteClassifier
from tflkit.training.evaluation import load_keras_model, topk_accuracy
from tflkit.training.loop import train_subset

MAX_CONVERT_WORKERS = 2  # conversions in flight at once (each its own process); the demo machine has 2 cores


@dataclass
class HeldOut:
    """The held-out images every recipe is validated on (val if the dataset has it, else test; never calibration
    images), with their classes and the run's float Keras model's logits on them (None when there are none)."""

    split: str
    images: np.ndarray
    labels: np.ndarray
    logits: np.ndarray | None

    def top1(self, logits: np.ndarray) -> float:
        return topk_accuracy(logits, self.labels, 1)


def _settings(recipe, calib_samples: int, calib_given: bool, fine_tune: FineTuneSettings) -> dict:
    """What a recipe's file depends on beyond the run itself; a rerun redoes a recipe whose settings differ."""
    return {"calib_samples": ("given" if calib_given else calib_samples) if recipe.needs_calibration else None,
            "fine_tune": asdict(fine_tune) if recipe.prepare else None}


def _already_done(row: dict | None, settings: dict) -> bool:
    if not row or row.get("status") != "ok" or not row.get("path") or not Path(row["path"]).is_file():
        return False
    if settings["calib_samples"] == "given":  # a caller's own calibration set: never assumed to match
        return False
    recorded = row.get("settings")
    return recorded is None or recorded == settings  # records written before settings were kept: trust the file


# Below this top-1 agreement with the float model on held-out images, a converted file is worth a warning: the
# int8 demo files agree on 95.5-97% (seeds 0-2, benchmarks/results/demo_seeds.md runs).
LOW_AGREEMENT = 0.90


def export_run(run, recipes=DEFAULT_RECIPES, calib_samples: int = DEFAULT_CALIB_SAMPLES, log=print,
               source=None, validate_samples: int = DEFAULT_VALIDATION_SAMPLES,
               tensor_samples: int = DEFAULT_TENSOR_SAMPLES, fine_tune: FineTuneSettings | None = None,
               calib_images=None, *, on_result: Callable[[ExportResult], None] | None = None,
               skip_done: bool = True) -> list[ExportResult]:
    """Convert, validate and document `recipes` for `run` (a Run or its directory). `calib_images` overrides the
    calibration set (tests feed a deliberately broken one).

    Each recipe's row is merged into tflite/exports.json the moment it is final, then `on_result(result)` is
    called, so a run killed midway keeps every finished file. With `skip_done`, a recipe whose file and ok record
    exist with the same settings is not converted again: its recorded result is returned (`on_result` is not
    called for it, nothing new was recorded)."""
    recipes = resolve_recipes(recipes)
    recipes.sort(key=lambda r: r.name != "fp32")  # fp32 first: the per-tensor reference of the others
    fine_tune = fine_tune or FineTuneSettings()
    run = Run.of(run)

    config = run.config
    recorded = {row["recipe"]: row for row in run.exports()}
    settings = {r.name: _settings(r, calib_samples, calib_images is not None, fine_tune) for r in recipes}
    done = {r.name: ExportResult.from_record(recorded[r.name]) for r in recipes
            if skip_done and _already_done(recorded.get(r.name), settings[r.name])}
    for name, result in done.items():
        log(f"skip     {name:<22} already converted  {result.path}  (--force converts it again)")
    todo = [r for r in recipes if r.name not in done]
    if not todo:
        return [done[r.name] for r in recipes]


    quiet_tensorflow()

    model = load_keras_model(run.model_path)
    source = source or load_dataset(config.dataset, data_dir=config.data_dir, seed=config.seed)

    screen_images(source, strict=config.strict, log=log)  # an unreadable file must not stop calibration
    calib = calib_images
    if calib is None and any(r.needs_calibration for r in todo):
        calib = calibration_images(source.split("train"), config.image_size, calib_samples, seed=config.seed)
    calibration = {"samples": 0 if calib is None else len(calib), "split": "train", "seed": config.seed,
                   "distinct_images": True, "preprocessing": "training pipeline (resize to input size, 0..255)"}
    if calib_images is not None:
        calibration = {"samples": len(calib_images), "split": "given", "seed": None}

    # Held-out images for validation: val if the dataset has it, else test; never the calibration images.
    held_out = "val" if "val" in source.splits else "test"
    split = source.split(held_out)
    val_indices = calibration_indices(len(split), validate_samples, config.seed + 1)
    val_images = load_images(split, config.image_size, val_indices)
    val_logits = np.asarray(model.predict(val_images, batch_size=256, verbose=0)) if len(val_images) else None
    held = HeldOut(held_out, val_images, split.labels[val_indices], val_logits)
    normalization = model_normalization(model, get_spec(config.model))  # for every recipe's model card
    batch_meta = {"calibration": calibration, "validation": {"split": held_out, "samples": len(val_images)}}

    results = dict(done)
    with tempfile.TemporaryDirectory(prefix="tflkit-export-") as tmp, contextlib.ExitStack() as workers:
        # Conversions run in a worker process (converters/isolated.py): a converter crash is a failed row.
        saved_model = Path(tmp) / "saved_model"
        plain = [r for r in todo if r.prepare is None]  # converted straight from the SavedModel
        # The float .tflite is the per-tensor reference of the others: the fp32 recipe's own file when it is
        # converted in this batch (it comes first) or was converted before, else a scratch conversion.
        fp32_ref = Path(done["fp32"].path) if "fp32" in done else _recorded_fp32(recorded)
        wants_ref = val_logits is not None and tensor_samples > 0 and any(r.name != "fp32" for r in todo)
        scratch_ref = wants_ref and todo[0].name != "fp32" and fp32_ref is None
        workers_wanted = min(MAX_CONVERT_WORKERS, os.cpu_count() or 1, max(1, len(plain) + scratch_ref))
        convert = workers.enter_context(ConverterPool(saved_model, calib, workers=workers_wanted)).start()
        start = time.perf_counter()
        export_saved_model(model, saved_model, float_recipes=scratch_ref or any(
            r.activations == "float32" for r in plain))
        log(f"export   saved_model  {time.perf_counter() - start:6.1f}s  (once, reused by every recipe)")
        convert.prefetch((["fp32"] if scratch_ref else []) + plain)
        if scratch_ref:
            fp32_ref = Path(tmp) / "fp32_reference.tflite"
            fp32_ref.write_bytes(convert("fp32"))
        prepared = {}  # prepare kind -> (a converter over its SavedModel, the fine-tune record) or the TfmotError
        references = {}  # fine-tune -> the figures of the fp32 model fine-tuned alike (QAT and pruning share one)
        for recipe in todo:
            path = run.artifact_path(config.model, config.dataset, recipe.name)
            start = time.perf_counter()
            result = _export_one(recipe, path, convert, calib, prepared, model, config, source, fine_tune, tmp,
                                 workers, log, reference=lambda sub, resolved: _finetune_reference(
                                     references, recorded, model, config, sub, resolved, held, log))
            # a pooled conversion's own time; it may have run in the background while earlier files validated
            result.seconds = convert.seconds.get(recipe.name, time.perf_counter() - start)
            result.settings = settings[recipe.name]
            if result.status == "ok":
                log(f"convert  {recipe.name:<22} {result.seconds:6.1f}s  {path}  ({result.size_bytes / 1e6:.2f} MB)")
                result = _validate_and_document(result, recipe, held, fp32_ref, tensor_samples, config, run,
                                                calibration, normalization, log)
            else:
                log(f"convert  {recipe.name:<22} FAILED ({result.status})  {result.message}")
            if recipe.name == "fp32" and result.status == "ok" and wants_ref:
                fp32_ref = Path(result.path)
            run.record_export(asdict(result), batch_meta)
            results[recipe.name] = result
            if on_result is not None:
                on_result(result)
    return [results[r.name] for r in recipes]


def _recorded_fp32(recorded: dict) -> Path | None:
    row = recorded.get("fp32")
    if row and row.get("status") == "ok" and row.get("path") and Path(row["path"]).is_file():
        return Path(row["path"])
    return None


def _export_one(recipe, path, convert, calib, prepared, model, config, source, fine_tune, tmp, workers, log,
                reference=None):
    trained = None
    if recipe.prepare is not None:
        if recipe.prepare not in prepared:
            try:
                saved, trained = _prepare(recipe.prepare, model, config, source, fine_tune, tmp, log, reference)
                prepared[recipe.prepare] = (workers.enter_context(IsolatedConverter(saved, calib)), trained)
            except TfmotError as exc:
                prepared[recipe.prepare] = exc
        if isinstance(prepared[recipe.prepare], TfmotError):
            return ExportResult(recipe.name, f"{recipe.prepare}_failed", message=str(prepared[recipe.prepare]))
        convert, trained = prepared[recipe.prepare]
    try:
        data = convert(recipe)
    except ConversionError as exc:
        return ExportResult(recipe.name, "convert_failed", message=str(exc), fine_tune=trained)
    atomic_write_bytes(path, data)
    return ExportResult(recipe.name, "ok", str(path), len(data), fine_tune=trained)


def _prepare(kind: str, model, config, source, fine_tune: FineTuneSettings, tmp, log,
             reference: Callable | None = None) -> tuple[Path, dict]:
    """The tfmot step of a recipe, as a SavedModel ready for conversion, and a record of the extra training: on
    the run's own training subset (its train_limit), for `fine_tune.steps` or one epoch of it by default.
    `reference(source, settings)`, when given, adds the figures of the fp32 model fine-tuned alike to the record."""
    from dataclasses import replace


    train = train_subset(source.split("train"), config.train_limit, config.seed)
    source = replace(source, splits={**source.splits, "train": train})
    settings = fine_tune.resolved(len(train))
    start = time.perf_counter()
    log(f"prepare  {kind:<22} fine-tune {settings.steps} steps of batch {settings.batch_size} on the run's "
        f"{len(train)} training images")
    if kind == "qat":
        prepared = qat_model(model, config.model, source, config.image_size, config.small_input, settings,
                             seed=config.seed, log=log)
    elif kind == "prune50":
        prepared = pruned_model(model, config.model, source, config.image_size, config.small_input, settings,
                                seed=config.seed, log=log)
    else:
        raise ValueError(f"unknown prepare step {kind!r}")
    seconds = time.perf_counter() - start
    out = Path(tmp) / f"saved_model_{kind}"
    save_for_conversion(prepared, out)
    log(f"prepare  {kind:<22} {time.perf_counter() - start:6.1f}s  (tfmot, tf_keras twin)")
    trained = {"kind": kind, "steps": settings.steps, "batch_size": settings.batch_size, "lr": settings.lr,
               "images_seen": settings.steps * settings.batch_size, "train_images": len(train),
               "epochs": round(settings.steps * settings.batch_size / max(1, len(train)), 3),
               "seconds": round(seconds, 1)}
    if reference is not None:
        trained.update(reference(source, settings))
    return out, trained


REFERENCE_KEYS = ("steps", "batch_size", "lr", "train_images", "heldout_split", "heldout_images", "fp32_heldout_top1")


def _finetune_reference(cache: dict, recorded: dict, model, config, source, settings: FineTuneSettings,
                        held: HeldOut, log) -> dict:
    """The held-out top-1 of the run's fp32 model and of its plain twin fine-tuned exactly as the QAT / pruning
    twin was (`converters.qat.float_fine_tuned`): computed once per fine-tune (`cache`), or taken from a record of
    an earlier export with the same fine-tune, model and held-out images. {} without held-out images."""
    if held.logits is None or not len(held.labels):
        log("prepare  fp32 fine-tuned alike: not computed (no held-out images to score it on)")
        return {}
    figures = {"heldout_split": held.split, "heldout_images": int(len(held.labels)),
               "fp32_heldout_top1": round(held.top1(held.logits), 4)}
    same = {"steps": settings.steps, "batch_size": settings.batch_size, "lr": settings.lr,
            "train_images": len(source.split("train")), **figures}
    key = tuple(same[k] for k in REFERENCE_KEYS)
    if key in cache:
        return cache[key]
    for row in recorded.values():
        earlier = row.get("fine_tune") or {}
        if earlier.get("fp32_same_finetune_top1") is not None and all(earlier.get(k) == same[k]
                                                                       for k in REFERENCE_KEYS):
            cache[key] = {**figures, "fp32_same_finetune_top1": earlier["fp32_same_finetune_top1"],
                          "fp32_same_finetune_seconds": earlier.get("fp32_same_finetune_seconds")}
            log(f"prepare  fp32 fine-tuned alike: top1 {100 * cache[key]['fp32_same_finetune_top1']:.2f}% on "
                f"{len(held.labels)} {held.split} images, from the {row['recipe']} record")
            return cache[key]

    start = time.perf_counter()
    log(f"prepare  fp32 fine-tuned alike: {settings.steps} steps of batch {settings.batch_size}, same data order "
        f"and seed, no tfmot (the reference of the recipes with extra training)")
    try:
        twin = float_fine_tuned(model, config.model, source, config.image_size, config.small_input, settings,
                                seed=config.seed, log=log)
    except TfmotError as exc:  # the twin itself failed: then so did the recipe's; nothing to compare with
        log(f"prepare  fp32 fine-tuned alike: not computed ({exc})")
        return figures
    top1 = held.top1(np.asarray(twin.predict(held.images, batch_size=256, verbose=0)))
    cache[key] = {**figures, "fp32_same_finetune_top1": round(top1, 4),
                  "fp32_same_finetune_seconds": round(time.perf_counter() - start, 1)}
    log(f"prepare  fp32 fine-tuned alike: top1 {100 * top1:.2f}% on {len(held.labels)} {held.split} images "
        f"(the run's fp32 model {100 * figures['fp32_heldout_top1']:.2f}%)  {time.perf_counter() - start:6.1f}s")
    return cache[key]


def _validate_and_document(result, recipe, held: HeldOut, fp32_ref, tensor_samples, config, run: Run, calibration,
                           normalization, log):
    path = Path(result.path)
    try:
        result.gzip_bytes = gzip_size(path)
        result.weight_sparsity = weight_sparsity(path)
        for key, value in file_figures(path).items():
            setattr(result, key, value)
        if held.logits is not None:
            validation = validate(path, held.logits, held.images, fp32_path=None if recipe.name == "fp32" else fp32_ref,
                                  tensor_samples=tensor_samples, integer_only=recipe.integer_only)
            atomic_write_text(validation_path(path), json.dumps(validation.to_dict(), indent=2) + "\n")
            result.validation = validation.summary()
            log(f"validate {recipe.name:<22} agreement {100 * validation.top1_agreement:6.2f}%  "
                f"max |dlogit| {validation.max_abs_logit_diff:.3f}  worst {result.validation['worst_layer'] or '-'}")
            if validation.top1_agreement < LOW_AGREEMENT:
                log(f"warning: {recipe.name}: only {100 * validation.top1_agreement:.2f}% of held-out images get the "
                    f"float model's top-1 (worst layer {result.validation['worst_layer'] or 'unknown'}): check this "
                    f"file's test top-1 before deploying it")
            if result.fine_tune and "heldout_images" in result.fine_tune:  # on the images its references scored on

                top1 = held.top1(TFLiteClassifier(path).predict(held.images))
                result.fine_tune = {**result.fine_tune, "heldout_top1": round(top1, 4)}
                reference = result.fine_tune.get("fp32_same_finetune_top1")
                versus = (f"  (fp32 fine-tuned alike {100 * reference:.2f}%: drop {100 * (reference - top1):.2f} pts)"
                          if reference is not None else "")
                log(f"validate {recipe.name:<22} top1 {100 * top1:6.2f}% on {len(held.labels)} {held.split} "
                    f"images{versus}")
    except (ModelFileError, ValueError, RuntimeError) as exc:  # the runtime refused to load or run the file
        result.status, result.message = "run_failed", str(exc).splitlines()[0][:300]
        log(f"validate {recipe.name:<22} FAILED  {result.message}")
        return result
    info = run.model_info()
    card = build_card(path, model=config.model, recipe=recipe, run_dir=run.path, keras_path=run.model_path,
                      image_size=config.image_size, class_names=info.get("class_names", []),
                      normalization=normalization, calibration=calibration, dataset=config.dataset,
                      fine_tune=result.fine_tune)
    write_card(path, card)
    return result


