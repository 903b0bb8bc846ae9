"""Transfer learning: put pretrained weights into a freshly built model before training (`--pretrained`).

  imagenet   the model's published ImageNet weights (`ModelSpec.pretrained_source`, table in
             tflkit/models/pretrained.py: URL, checksum, format), downloaded once into ~/.cache/tflkit/weights
             (or found in Keras' ~/.keras/models), checksum-verified before use; with no network, one line
             naming --pretrained PATH within seconds
  PATH       a weights file: .tflite (float or quantized, mapped by graph order; tflkit/weights/tflite.py),
             .pth (torchvision state dict, read without torch; tflkit/weights/pth_port.py), .h5 (Keras 1/2),
             .weights.h5 (Keras 3), .keras; or a tflkit run directory (its model.keras)
  none       from scratch

Layers whose weights the source holds take them; the classifier, when the class count differs, keeps its
initialization. The names of the loaded layers go to pretrained.json: they are the ones frozen during the
head-only phase.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tflkit.core.download import fetch
from tflkit.core.errors import ModelFileError, UsageError
from tflkit.core.fileio import cache_dir
from tflkit.core.run import Run
from tflkit.models import get_spec
from tflkit.models.pretrained import IMAGENET_SOURCES
from tflkit.weights.load import load_weights_file, port_keras_applications_mobilenetv3
from tflkit.weights.pth_port import port_pth

CACHE_ENV = "TFLKIT_WEIGHTS_CACHE"  # where downloaded weights are kept (default ~/.cache/tflkit/weights)


def weights_cache_dir() -> Path:
    return Path(os.environ[CACHE_ENV]).expanduser() if os.environ.get(CACHE_ENV) else cache_dir("weights")


def file_digests(path) -> dict:
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha256.update(chunk)
            md5.update(chunk)
    return {"sha256": sha256.hexdigest(), "md5": md5.hexdigest()}


def verify_source_file(path, source) -> str:
    """Check `path` against the source's checksum; returns what was checked. Raises ModelFileError on mismatch."""
    digests = file_digests(path)
    if source.sha256:
        ok, checked = digests["sha256"] == source.sha256, f"sha256 {source.sha256}"
    elif source.sha256_prefix:  # torch.hub's check: the digest starts with the digits in the file name
        ok, checked = digests["sha256"].startswith(source.sha256_prefix), f"sha256 prefix {source.sha256_prefix}"
    elif source.md5:
        ok, checked = digests["md5"] == source.md5, f"md5 {source.md5}"
    else:
        raise ModelFileError(f"{source.url}: the weight source has no checksum to verify")
    if not ok:
        raise ModelFileError(f"{path}: checksum mismatch (expected {checked}, file has sha256 {digests['sha256']}); "
                             f"delete it and download again")
    return checked


def _source_of(model_name: str):
    source = get_spec(model_name).pretrained_source
    if source is None:
        raise UsageError(f"no published ImageNet weights for {model_name} (available for: "
                         f"{', '.join(sorted(IMAGENET_SOURCES))}); pass --pretrained PATH to a weights file or run")
    return source


def imagenet_weights_path(model_name: str, log=None) -> Path:
    """The verified local file of `model_name`'s ImageNet weights, downloaded into the cache if not there yet."""
    source = _source_of(model_name)
    for cached in (weights_cache_dir() / source.filename, Path("~/.keras/models").expanduser() / source.filename):
        if cached.is_file():
            verify_source_file(cached, source)
            return cached
    return download_weights(source, model_name, log=log)


def download_weights(source, model_name: str, log=None) -> Path:
    offline = (f"cannot download ImageNet weights for {model_name}; fetch {source.url} where a network exists and "
               f"pass --pretrained PATH")
    return fetch(source.url, weights_cache_dir() / source.filename, lambda path: verify_source_file(path, source),
                 offline, log=log)


def load_imagenet(model, model_name: str, log=None) -> dict:
    """Download (once), verify and port `model_name`'s ImageNet weights into `model`."""
    source = _source_of(model_name)
    path = imagenet_weights_path(model_name, log=log)
    if source.format == "torchvision_pth":
        report = port_pth(model, path)
    elif source.format == "keras_applications_h5":
        loaded, skipped = port_keras_applications_mobilenetv3(model, path)
        report = {"loaded_layers": loaded, "skipped_layers": skipped}
    else:
        loaded, skipped = load_weights_file(model, path)
        report = {"loaded_layers": loaded, "skipped_layers": skipped}
    return {"source": str(path), "url": source.url, "loaded_layers": report["loaded_layers"],
            "skipped_layers": report["skipped_layers"]}


def load_pretrained(model, spec: str, model_name: str) -> dict:
    """Load `spec` into `model`; returns {"source", "loaded_layers", "skipped_layers"} (for pretrained.json)."""
    if spec == "imagenet":
        return load_imagenet(model, model_name)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not Run(path).trained:
            raise UsageError(f"--pretrained {spec}: a directory but not a finished tflkit run (no model.keras)")
        path = Run(path).model_path
    elif not path.is_file():
        raise UsageError(f"--pretrained {spec}: no such file or run directory (or use imagenet / none)")
    loaded, skipped = load_weights_file(model, path)
    if not loaded:
        raise UsageError(f"--pretrained {spec}: no layer of {model_name} matched by name and shape")
    return {"source": str(path), "loaded_layers": loaded, "skipped_layers": skipped}
