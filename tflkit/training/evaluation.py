"""Top-1 / top-5 of a .keras or a .tflite model on a dataset split."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np

import tflkit.models  # noqa: F401  (keeps load paths uniform)
import tflkit.training.schedules  # noqa: F401  (a model saved with a warm-up/cosine lr schedule names this class)
from tflkit.core.errors import ModelFileError, UsageError
from tflkit.core.results import EvalResult
from tflkit.core.tfenv import quiet_tensorflow
from tflkit.data.check import screen_images
from tflkit.data.pipeline import make_dataset
from tflkit.data.preprocess import class_outputs, for_model, read_labels
from tflkit.data.splits import holdout_indices
from tflkit.mcu.tflm import TFLMClassifier
from tflkit.tflite.model import TFLiteClassifier
from tflkit.tflite.runtime import load_interpreter

KERAS_BATCH = 256


PROGRESS_SECONDS = 10.0  # a progress line at most this often on long evaluations


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    if len(labels) == 0:
        return float("nan")
    # Stable, so tied scores (common in uint8/int8 outputs) rank by class index as argmax does, every time.
    topk = np.argsort(-np.asarray(logits, dtype=np.float64), axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(topk == labels[:, None], axis=1)))


def load_keras_model(path):
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")

    quiet_tensorflow()
    import keras

    if not zipfile.is_zipfile(path):  # Keras' own message for this case says "File not found"
        raise ModelFileError(f"cannot load Keras model {path}: not a .keras file (not a zip archive)")
    try:
        return keras.models.load_model(path)
    except (ValueError, OSError, zipfile.BadZipFile, KeyError, TypeError) as exc:  # TypeError: an unknown class
        raise ModelFileError(f"cannot load Keras model {path}: {str(exc).strip().splitlines()[0][:200]}") from None


class Predictor:
    """A .keras or .tflite file behind one predict(float pixels) -> float logits."""

    def __init__(self, path, threads: int | None = None, runtime: str | None = None):
        self.path = Path(path)
        if runtime == "tflm":
            if self.path.suffix != ".tflite":
                raise UsageError(f"cannot run {self.path.name} on TFLite Micro: expected a .tflite file")

            self._tflite = TFLMClassifier(self.path)
            self.image_size = self._tflite.image_size
        elif self.path.suffix == ".tflite":
            self._tflite = TFLiteClassifier(self.path, threads=threads)
            self.image_size = self._tflite.image_size
        elif self.path.suffix == ".keras":
            self._keras = load_keras_model(self.path)
            self._tflite = None
            self.image_size = int(self._keras.input_shape[1])
        else:
            raise UsageError(f"cannot evaluate {self.path.name}: expected a .keras or .tflite file")

    def predict(self, images: np.ndarray) -> np.ndarray:
        if self._tflite is not None:
            return self._tflite.predict(images)
        # predict_on_batch, not predict: predict() builds a new data adapter per call, which cost more than the
        # forward pass when called once per 256-image batch. Padding to a full batch keeps to one traced shape.
        logits = []
        for start in range(0, len(images), KERAS_BATCH):
            chunk = images[start:start + KERAS_BATCH]
            padded = np.concatenate([chunk, np.zeros((KERAS_BATCH - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            logits.append(np.asarray(self._keras.predict_on_batch(padded))[:len(chunk)])
        return np.concatenate(logits) if logits else np.zeros((0, int(self._keras.output_shape[-1])), np.float32)


def output_shape_problem(path) -> str | None:
    """Why a .tflite is not a classifier eval can score (several outputs, or an output that is not one vector of
    class scores per image), else None."""
    # the built-in kernels: a file XNNPACK refuses is still scored on them (TFLiteClassifier falls back), so its
    # refusal must not end the evaluation here
    outputs = load_interpreter(path, xnnpack=False).get_output_details()
    shapes = [list(map(int, o["shape"])) for o in outputs]
    if len(outputs) != 1:
        return f"{len(outputs)} outputs {shapes} (a detection model?)"
    if len(shapes[0]) != 2:
        return f"output shape {shapes[0]} (a segmentation or detection model?)"
    return None


def evaluate(path, source, split: str = "test", threads: int | None = None, *, limit: int | None = None,
             preprocessing=None, labels=None, strict: bool = False, log=None, seed: int = 0,
             runtime: str | None = None, compare: bool = False) -> EvalResult:
    """Top-1/top-5 of a model file on `split`.

    `limit`: a stratified, seeded subset of N images. `preprocessing`: a tflkit.data.preprocess.Preprocessing
    (from flags); None takes the model's own (card, metadata, input quantization) or assumes raw pixels, saying so.
    `labels`: the model's class names in output order (a list, or a file path), matched to the dataset's classes.
    Unreadable image files are skipped with a count (`strict`: a DatasetError naming the first). `log` gets notes
    and a progress line every PROGRESS_SECONDS (default: none). `runtime` "tflm": the file as TensorFlow Lite Micro
    computes it; with `compare`, LiteRT scores the same images too and their top-1 agreement is recorded."""
    log = log or (lambda *_: None)
    name = Path(path).name
    if Path(path).suffix == ".tflite" and Path(path).is_file():
        try:
            problem = output_shape_problem(path)
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(f"cannot load {name}: {str(exc).strip().splitlines()[0][:200]}") from None
        if problem:
            raise ModelFileError(f"{name} is not a classifier: {problem}; eval scores class vectors only")
    predictor = Predictor(path, threads=threads, runtime=runtime)
    reference = Predictor(path, threads=threads) if compare and runtime else None
    prep = for_model(path, preprocessing, log=log)
    screen_images(source, strict=strict, log=log)
    data = source.split(split)
    if limit is not None:
        if limit < 1:
            raise UsageError(f"--limit must be 1 or more, got {limit}")
        if limit < len(data):
            data = data.take(np.sort(holdout_indices(data.labels, limit, seed)))
    if isinstance(labels, (str, Path)):
        labels = read_labels(labels)
    logits, targets, reference_logits = [], [], []
    start = last = time.perf_counter()
    done = 0
    columns = None
    for images, y in make_dataset(data, predictor.image_size, batch_size=256):
        pixels = prep.apply(images.numpy())
        batch_logits = predictor.predict(pixels)
        if reference is not None:
            reference_logits.append(reference.predict(pixels))
        if columns is None:
            columns = class_outputs(batch_logits.shape[1], list(source.class_names), labels, name, log=log)
        logits.append(batch_logits)
        targets.append(columns[y.numpy()])
        done += len(batch_logits)
        now = time.perf_counter()
        if now - last >= PROGRESS_SECONDS and done < len(data):
            last = now
            log(f"eval     {name}  {done}/{len(data)} images  {now - start:.0f}s")
    if columns is None:
        raise UsageError(f"no {split} images to evaluate {name} on")
    logits, targets = np.concatenate(logits), np.concatenate(targets)
    reference_top1 = agreement = None
    if reference is not None:
        reference_logits = np.concatenate(reference_logits)
        reference_top1 = topk_accuracy(reference_logits, targets, 1)
        agreement = float(np.mean(np.argmax(reference_logits, 1) == np.argmax(logits, 1)))
    outputs, classes = logits.shape[1], len(source.class_names)
    scoring = (f"{outputs}-way top-1: all {outputs} outputs compete, over the {classes} dataset classes mapped to "
               f"them" if outputs > classes + 1 else "")
    return EvalResult(
        model=name, dataset=source.name, split=split, count=len(targets),
        top1=topk_accuracy(logits, targets, 1),
        top5=topk_accuracy(logits, targets, 5) if logits.shape[1] > 5 else None,
        preprocessing=prep.describe(), limit=limit, scoring=scoring, runtime=runtime or "",
        reference_top1=reference_top1, agreement=agreement,
    )
