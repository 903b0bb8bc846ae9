"""Dataset sources behind one `--dataset` spec. `load_dataset(spec, data_dir)` gives a DatasetSource."""

from __future__ import annotations

from tflkit.data.source import DatasetSource, Split  # noqa: F401
from tflkit.errors import unknown_choice


def _shapes(data_dir=None, seed=0, **_):
    from tflkit.data.shapes import load_shapes

    return load_shapes(seed=seed)


# spec name -> loader(data_dir=..., seed=..., **options). Sources with a "prefix:" form (folder:PATH) are matched on
# the prefix.
SOURCES = {
    "shapes": _shapes,
}


def dataset_names() -> list[str]:
    return sorted(SOURCES)


def load_dataset(spec: str, data_dir=None, seed: int = 0, **options) -> DatasetSource:
    name, _, arg = spec.partition(":")
    if name not in SOURCES:
        raise unknown_choice("dataset", spec, SOURCES)
    if arg:
        options["path"] = arg
    source = SOURCES[name](data_dir=data_dir, seed=seed, **options)
    source.name = spec
    return source
