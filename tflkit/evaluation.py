"""Top-1 / top-5 of a .keras or a .tflite model on a dataset split."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tflkit.errors import ModelFileError, UsageError

KERAS_BATCH = 256


@dataclass
class EvalResult:
    model: str
    dataset: str
    split: str
    count: int
    top1: float
    top5: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    if len(labels) == 0:
        return float("nan")
    topk = np.argsort(-logits, axis=1)[:, :k]
    return float(np.mean(np.any(topk == labels[:, None], axis=1)))


def load_keras_model(path):
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    from tflkit.tfenv import quiet_tensorflow

    quiet_tensorflow()
    import zipfile

    import keras

    import tflkit.models  # noqa: F401  (registers nothing custom today, but keeps load paths uniform)

    if not zipfile.is_zipfile(path):  # Keras' own message for this case says "File not found"
        raise ModelFileError(f"cannot load Keras model {path}: not a .keras file (not a zip archive)")
    try:
        return keras.models.load_model(path)
    except (ValueError, OSError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelFileError(f"cannot load Keras model {path}: {str(exc).strip().splitlines()[0][:200]}") from None


class Predictor:
    """A .keras or .tflite file behind one predict(float pixels) -> float logits."""

    def __init__(self, path, threads: int | None = None):
        self.path = Path(path)
        if self.path.suffix == ".tflite":
            from tflkit.tflite_model import TFLiteClassifier

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


def evaluate(path, source, split: str = "test", threads: int | None = None) -> EvalResult:
    from tflkit.data.pipeline import make_dataset

    predictor = Predictor(path, threads=threads)
    data = source.split(split)
    logits, labels = [], []
    for images, y in make_dataset(data, predictor.image_size, batch_size=256):
        logits.append(predictor.predict(images.numpy()))
        labels.append(y.numpy())
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    if logits.shape[1] != source.num_classes:
        raise UsageError(f"{Path(path).name} has {logits.shape[1]} outputs but {source.name} has "
                         f"{source.num_classes} classes")
    return EvalResult(
        model=Path(path).name, dataset=source.name, split=split, count=len(labels),
        top1=topk_accuracy(logits, labels, 1),
        top5=topk_accuracy(logits, labels, 5) if source.num_classes > 5 else None,
    )
