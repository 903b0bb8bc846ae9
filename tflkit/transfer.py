"""Transfer learning: put pretrained weights into a freshly built model before training (`--pretrained`).

  imagenet   published ImageNet weights where a port exists (table below), downloaded when a network exists
  PATH       a weights file (.h5 Keras 1/2, .weights.h5 Keras 3, .keras) or a tflkit run directory (its model.keras)
  none       from scratch

Every layer whose name and shapes match takes the weights; the rest (the classifier, when the class count
differs) keep their initialization. The names of the loaded layers go to pretrained.json: they are the ones
frozen during the head-only phase.

| tflkit model     | ImageNet weights                                        | note                                     |
|------------------|---------------------------------------------------------|------------------------------------------|
| squeezenet1_1    | rcmalli/keras-squeezenet (Caffe SqueezeNet v1.1, notop) | ported by converters/weights.py          |
| others           | none yet                                                | keras.applications MobileNetV3/EfficientNetV2 differ layer for layer from the torchvision layouts; pass --pretrained PATH |
"""

from __future__ import annotations

from pathlib import Path

from tflkit.errors import UsageError

# model -> (url, file name) of published ImageNet weights that converters/weights.py can port
IMAGENET_WEIGHTS = {
    "squeezenet1_1": ("https://github.com/rcmalli/keras-squeezenet/releases/download/v1.0/"
                      "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5",
                      "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5"),
}


def imagenet_weights_path(model_name: str) -> Path:
    if model_name not in IMAGENET_WEIGHTS:
        raise UsageError(f"no ImageNet weights port for {model_name} (available: {', '.join(IMAGENET_WEIGHTS)}); "
                         f"pass --pretrained PATH to a weights file or run directory")
    url, fname = IMAGENET_WEIGHTS[model_name]
    cached = Path("~/.keras/models").expanduser() / fname
    if cached.is_file():
        return cached
    from urllib.parse import urlparse

    from tflkit.data.tfds_source import host_reachable

    if not host_reachable(urlparse(url).hostname):
        raise UsageError(f"cannot download ImageNet weights for {model_name} (no network to {urlparse(url).hostname}); "
                         f"fetch {url} and pass --pretrained PATH")
    import keras

    return Path(keras.utils.get_file(fname, url, cache_subdir="models"))


def load_pretrained(model, spec: str, model_name: str) -> dict:
    """Load `spec` into `model`; returns {"source", "loaded_layers", "skipped_layers"} (for pretrained.json)."""
    from converters.weights import load_weights_file

    if spec == "imagenet":
        path = imagenet_weights_path(model_name)
    else:
        path = Path(spec).expanduser()
        if path.is_dir():
            if not (path / "model.keras").is_file():
                raise UsageError(f"--pretrained {spec}: a directory but not a finished tflkit run (no model.keras)")
            path = path / "model.keras"
        elif not path.is_file():
            raise UsageError(f"--pretrained {spec}: no such file or run directory (or use imagenet / none)")
    loaded, skipped = load_weights_file(model, path)
    if not loaded:
        raise UsageError(f"--pretrained {spec}: no layer of {model_name} matched by name and shape")
    return {"source": str(path), "loaded_layers": loaded, "skipped_layers": skipped}
