"""Run a .tflite classifier on float pixels, whatever its input and output types. No TensorFlow import.

A full-integer model takes int8 (or uint8) input: pixels are quantized with the input tensor's own scale and zero
point (for a model calibrated on 0..255 pixels that is about p - 128), and int8 logits are dequantized, so
accuracy is measured on exactly what a phone app would feed and read.
"""

from __future__ import annotations

import logging

import numpy as np

from tflkit.tflite.runtime import load_interpreter_or_builtin

_LOG = logging.getLogger(__name__)


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = detail["dtype"]
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, detail: dict) -> np.ndarray:
    if not np.issubdtype(detail["dtype"], np.integer):
        return q.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return (q.astype(np.float32) - zero_point) * scale


class TFLiteClassifier:
    def __init__(self, path, threads: int | None = None, runtime: str | None = None, batch_size: int = 64,
                 log=None):
        self.path = path
        # A model XNNPACK refuses is evaluated on the built-in kernels (same results, slower), with one line saying so.
        self.interpreter, self.xnnpack_refused = load_interpreter_or_builtin(
            path, threads=threads, runtime=runtime, log=log or _LOG.warning)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch_size = batch_size
        self._batch = int(self.input["shape"][0])

    @property
    def image_size(self) -> int:
        return int(self.input["shape"][1])

    @property
    def input_dtype(self):
        return self.input["dtype"]

    def _set_batch(self, n: int) -> None:
        # Batched invoke is much faster for evaluation; models with a fixed batch keep batch 1.
        if n != self._batch and self.input["shape_signature"][0] == -1:
            self.interpreter.resize_tensor_input(self.input["index"], [n, *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.output = self.interpreter.get_output_details()[0]
            self._batch = n

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Float logits for float32 pixels (N, H, W, 3) in 0..255."""
        outputs = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            self._set_batch(len(chunk))
            if self._batch == len(chunk):
                outputs.append(self._invoke(chunk))
            else:
                outputs.extend(self._invoke(image[None]) for image in chunk)
        return np.concatenate(outputs) if outputs else np.zeros((0, int(self.output["shape"][-1])), np.float32)

    def _invoke(self, batch: np.ndarray) -> np.ndarray:
        self.interpreter.set_tensor(self.input["index"], quantize(batch, self.input))
        self.interpreter.invoke()
        return dequantize(self.interpreter.get_tensor(self.output["index"]), self.output)
