"""Frozen dataclass configs, loaded from YAML or dicts that may not carry unknown keys, saved beside each result."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from tflkit.errors import UsageError
from tflkit.fileio import atomic_write_text


def from_dict(cls, data: dict, source: str = "config"):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UsageError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise UsageError(f"{source}: {exc}") from None


def load_yaml(cls, path):
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping of keys to values")
    return from_dict(cls, data, source=str(path))


def save_yaml(config, path) -> None:
    atomic_write_text(path, yaml.safe_dump(dataclasses.asdict(config), sort_keys=False))
