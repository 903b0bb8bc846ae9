"""One row per registered model for `tflkit models`: parameters, MACs, input size, reference and how we match it.

Both figures come from the Keras layers, without converting anything: the model is built inside a
`keras.StatelessScope` (shapes only, its variables never initialized: half the build time), parameters are its
trainable weights' sizes and MACs are summed over the conv, depthwise, separable and dense layers from their output
shapes and kernel sizes (the same convention as tflkit/tflite/macs.py counts from a .tflite, which the tests
cross-check). All registered models take about 7 s on 2 cores (3.4 s of it importing Keras), so rows are cached,
keyed by name, input size, classes and a hash of the model code, and reused until the architecture's source changes:
in ~/.cache/tflkit/model_summary.json, and in `shipped_summary.json` beside this file, which the package carries for
the registered models so that the first `tflkit models` answers without importing Keras (tests/test_models.py fails
when it is stale; `python -m tflkit.models.summary` rewrites it).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from pathlib import Path

from tflkit.core.fileio import atomic_write_text, cache_dir
from tflkit.core.tfenv import quiet_tensorflow
from tflkit.models import layers, registry
from tflkit.models.registry import count_params, create_model, get_spec, list_models

SHIPPED = Path(__file__).with_name("shipped_summary.json")


def default_cache_path() -> Path:
    return cache_dir() / "model_summary.json"


def describe_models(include_test: bool = False, compute_macs: bool = False, cache_path=None, names=None) -> list[dict]:
    """Rows for every registered model (or `names`). `macs` is None unless cached or `compute_macs` is set."""
    cache_path = Path(cache_path) if cache_path else default_cache_path()
    cache = _read_cache(cache_path)
    shipped = _read_cache(SHIPPED)
    rows, changed = [], False
    for name in names if names is not None else list_models(include_test=include_test):
        spec = get_spec(name)
        key = _cache_key(name)
        entry = cache.get(key) or shipped.get(key)
        if entry is None or (compute_macs and entry.get("macs") is None):
            entry, changed = _measure(name, compute_macs, entry), True
            # rows for older versions of this model's code are dead weight
            cache = {k: v for k, v in cache.items() if k.split("@")[0] != name}
            cache[key] = entry
        rows.append({
            "name": name,
            "family": spec.family,
            "params": entry["params"],
            "macs": entry.get("macs"),
            "image_size": spec.default_image_size,
            "num_classes": spec.default_num_classes,
            "reference": spec.reference,
            "reference_params": spec.reference_params,
            "reference_macs": spec.reference_macs,
            "small_input_note": spec.small_input_note,
            "test_variant": spec.test_variant,
        })
    if changed:
        atomic_write_text(cache_path, json.dumps(cache, indent=1, sort_keys=True) + "\n")
    return rows


def _measure(name, compute_macs, entry):
    quiet_tensorflow()
    import keras

    with keras.StatelessScope(initialize_variables=False):  # shapes are all we read: no variable is initialized
        model = create_model(name)
    entry = dict(entry or {}, params=count_params(model))
    if compute_macs:
        entry["macs"] = keras_macs(model)
    keras.backend.clear_session(free_memory=False)  # drops the deferred variables; gc.collect would take 1 s
    return entry


def keras_macs(model) -> int:
    """Multiply-accumulates of one inference (batch 1) over conv, depthwise, separable conv and dense layers, from
    each call's output shape and the layer's kernel shape. Nested models are walked; element-wise work is not
    counted (as tflkit/tflite/macs.py leaves it out of `macs`)."""
    return sum(_layer_macs(layer, shape) for layer, shape in _calls(model))


def _calls(model):
    """(layer, output shape) for every call of every leaf layer, nested models included."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:  # a nested Functional/Sequential model
            yield from _calls(layer)
            continue
        for node in layer._inbound_nodes:  # one node per call: a shared layer counts every time it runs
            yield layer, tuple(node.outputs[0].shape)


def _layer_macs(layer, out_shape) -> int:
    import keras

    out_elems = math.prod(d for d in out_shape[1:] if d is not None)
    if isinstance(layer, keras.layers.SeparableConv2D):
        depthwise, pointwise = layer.depthwise_kernel.shape, layer.pointwise_kernel.shape
        spatial = out_elems // pointwise[-1]
        return spatial * math.prod(depthwise) + spatial * pointwise[-2] * pointwise[-1]
    if isinstance(layer, keras.layers.DepthwiseConv2D):  # kernel (kh, kw, in_c, multiplier)
        return out_elems * math.prod(layer.kernel.shape[:2])
    if isinstance(layer, keras.layers.Conv2DTranspose):  # every input element meets the whole kernel
        return math.prod(d for d in layer.input.shape[1:]) * math.prod(layer.kernel.shape[:2]) * layer.filters
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
        return out_elems * math.prod(layer.kernel.shape[:-1])  # kernel (k..., in_c / groups, out_c)
    if isinstance(layer, keras.layers.Dense):  # kernel (in, units), applied over any leading axes
        return out_elems * layer.kernel.shape[0]
    return 0


def _cache_key(name) -> str:
    spec = get_spec(name)
    import sys


    modules = (inspect.getmodule(spec.builder), layers, registry, sys.modules[__name__])
    source = "".join(inspect.getsource(m) for m in modules)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    return f"{name}@{spec.default_image_size}x{spec.default_num_classes}@{digest}"


def _read_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}  # a missing or half-written cache is only a slower run


def write_shipped(path: Path = SHIPPED) -> dict:
    """Measure every registered model (MACs included) and write the rows the package carries."""
    rows = {_cache_key(name): _measure(name, True, None) for name in list_models(include_test=True)}
    atomic_write_text(path, json.dumps(rows, indent=1, sort_keys=True) + "\n")
    return rows


if __name__ == "__main__":
    print(f"{len(write_shipped())} rows -> {SHIPPED}")
