"""One row per registered model for `tflkit models`: parameters, MACs, input size, reference and how we match it.

Parameters come from building the model (about a second each, 10 s for EfficientNetV2-S); MACs from converting it
to fp32 TFLite (seconds each, about a minute for EfficientNetV2-S at 384), so MACs are computed only when asked
and both are cached in ~/.cache/tflkit/model_summary.json, keyed by name, input size, classes and a hash of the
model code: a cached row is reused until the architecture's source changes.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from pathlib import Path

from tflkit.models.registry import count_params, create_model, get_spec, list_models


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tflkit" / "model_summary.json"


def describe_models(include_test: bool = False, compute_macs: bool = False, cache_path=None, names=None) -> list[dict]:
    """Rows for every registered model (or `names`). `macs` is None unless cached or `compute_macs` is set."""
    from tflkit.fileio import atomic_write_text

    cache_path = Path(cache_path) if cache_path else default_cache_path()
    cache = _read_cache(cache_path)
    rows, changed = [], False
    for name in names if names is not None else list_models(include_test=include_test):
        spec = get_spec(name)
        key = _cache_key(name)
        entry = cache.get(key)
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
            "input_size": spec.default_input_size,
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
    from tflkit.tfenv import quiet_tensorflow

    quiet_tensorflow()
    model = create_model(name)
    entry = dict(entry or {}, params=count_params(model))
    if compute_macs:
        from converters.macs import count_keras_macs

        entry["macs"] = count_keras_macs(model).macs
    return entry


def _cache_key(name) -> str:
    spec = get_spec(name)
    from converters import macs
    from tflkit.models import layers, registry

    modules = (inspect.getmodule(spec.builder), layers, registry, macs)
    source = "".join(inspect.getsource(m) for m in modules)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    return f"{name}@{spec.default_input_size}x{spec.default_num_classes}@{digest}"


def _read_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}  # a missing or half-written cache is only a slower run
