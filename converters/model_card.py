"""The model card beside each .tflite (`<artifact>.card.json`): what a phone app needs to use the file unaided.

Input contract (size, pixel range, where normalization happens, dtype and quantization of the input tensor), the
output (logits, class names, dtype and quantization), how it was made (recipe, calibration, source run) and
sha256 checksums of the .tflite and of the .keras it came from.

The normalization is read from the model's own normalization layer, not assumed from the registry: ported
weights can change it (SqueezeNet 1.1's Caffe weights subtract the mean only), and the card must say what the
file does. It is named when it matches one the registry spec knows (`imagenet`, `caffe`), else `custom`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tflkit.core.fileio import atomic_write_text, sha256_file
from tflkit.core.run import card_path
from tflkit.models import get_spec
from tflkit.models.layers import NORMALIZE_LAYER
from tflkit.tflite.arena import arena_bytes
from tflkit.tflite.inspect import io_details


def build_card(tflite_path, *, model: str, recipe, run_dir, keras_path, image_size: int, class_names,
               normalization: dict, calibration: dict | None, fine_tune: dict | None = None,
               dataset: str = "") -> dict:
    """`normalization`: model_normalization() of the Keras model at keras_path (read once per run by the caller)."""
    spec = get_spec(model)
    io = io_details(tflite_path)
    return {
        "format": "tflkit.model_card/1",
        "file": Path(tflite_path).name,
        "sha256": sha256_file(tflite_path),
        "size_bytes": Path(tflite_path).stat().st_size,  # weights and graph: flash
        "arena_bytes": _arena_bytes(tflite_path),  # activation memory the runtime plans beyond the weights: RAM
        "architecture": {"name": model, "family": spec.family, "reference": spec.reference},
        "input": {
            "shape": io["inputs"][0]["shape"], "layout": "NHWC", "color": "RGB", "size": image_size,
            "pixel_range": list(spec.pixel_range),
            # The model normalizes inside (its first layer), so the app feeds raw pixels.
            "normalization": {"inside_model": True, **normalization,
                              "units": "0..255 pixels"},
            "dtype": io["inputs"][0]["dtype"],
            "quantization": _quant(io["inputs"][0]),
        },
        "output": {
            "shape": io["outputs"][0]["shape"], "meaning": "logits (apply softmax for probabilities)",
            "dtype": io["outputs"][0]["dtype"], "quantization": _quant(io["outputs"][0]),
            "class_names": list(class_names),
        },
        "recipe": {"name": recipe.name, "summary": recipe.summary, "weights": recipe.weights,
                   "activations": recipe.activations},
        "calibration": calibration if recipe.needs_calibration else None,
        "fine_tune": fine_tune,
        "source": {"run_dir": str(run_dir), "dataset": dataset, "keras": Path(keras_path).name,
                   "keras_sha256": sha256_file(keras_path)},
    }


def model_normalization(keras_model, spec) -> dict:
    """{"name", "mean", "std"} of the model's normalization layer, in 0..255 pixel units (RGB)."""
    kernel, bias = keras_model.get_layer(NORMALIZE_LAYER).get_weights()  # y = x * kernel + bias
    scale = np.asarray(kernel, np.float64).reshape(-1)
    mean = [round(float(m), 4) for m in -np.asarray(bias, np.float64) / scale]
    std = [round(float(s), 4) for s in 1.0 / scale]
    name = next((n.name for n in spec.known_normalizations()
                 if np.allclose(n.mean, mean, rtol=1e-4, atol=1e-3) and np.allclose(n.std, std, rtol=1e-4)), "custom")
    return {"name": name, "mean": mean, "std": std}


def _arena_bytes(tflite_path) -> int:
    return arena_bytes(tflite_path)


def _quant(detail: dict) -> dict | None:
    if detail["scale"] == 0.0:
        return None
    # real = scale * (q - zero_point); for a pixel p in 0..255 the app feeds round(p / scale + zero_point).
    return {"scale": detail["scale"], "zero_point": detail["zero_point"]}


def write_card(tflite_path, card: dict) -> Path:
    path = card_path(tflite_path)
    atomic_write_text(path, json.dumps(card, indent=2) + "\n")
    return path
