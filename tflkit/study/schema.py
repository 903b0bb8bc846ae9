"""Nested frozen dataclasses from YAML mappings: types coerced by annotation, unknown keys and wrong types named.

YAML reads `1e-3` as a string and `5` where a float is meant as an int; a study file is written by hand, so values
are coerced by the field's annotation (scalars as tflkit.core.config coerces a flat config), and anything that does
not fit is one error naming its key path (`study.yaml: training.lr: expected a number, got 'fast'`).
"""

from __future__ import annotations

import dataclasses
import types
import typing

from tflkit.core.config import coerce as coerce_scalar
from tflkit.core.errors import UsageError

_NONE = type(None)
_SCALAR_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def build(cls, data, where: str):
    """An instance of dataclass `cls` from the mapping `data`; `where` is its key path ('' at the top)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"{where or 'top level'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UsageError(f"{where or 'top level'}: unknown key {unknown[0]!r}; valid keys: {', '.join(fields)}")
    values = {}
    for name, value in data.items():
        values[name] = coerce(hints[name], value, f"{where}.{name}" if where else name)
    missing = [n for n, f in fields.items() if n not in values and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise UsageError(f"{where or 'top level'}: missing key {missing[0]!r}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{where}: {exc}") from None


def coerce(hint, value, where: str):
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and _NONE in args:
            return None
        errors = []
        for arg in (a for a in args if a is not _NONE):
            try:
                return coerce(arg, value, where)
            except UsageError as exc:
                errors.append(str(exc))
        raise UsageError(errors[0] if len(errors) == 1 else f"{where}: {value!r} fits none of "
                         f"{', '.join(_name(a) for a in args)}")
    if hint is typing.Any:
        return value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin in (tuple, list):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # `threads: 1` means `threads: [1]`
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else typing.Any
        return tuple(coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{where}: expected a mapping, got {value!r}")
        key_t, val_t = args or (str, typing.Any)
        return {coerce(key_t, k, where): coerce(val_t, v, f"{where}.{k}") for k, v in value.items()}
    if hint in _SCALAR_NAMES:
        if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # a phone serial or a name that YAML read as a number
        try:
            return coerce_scalar(value, hint)
        except ValueError:
            raise UsageError(f"{where}: expected {_SCALAR_NAMES[hint]}, got {value!r}") from None
    return value


def _name(hint) -> str:
    return getattr(hint, "__name__", str(hint))


def to_plain(obj):
    """A dataclass tree as plain dicts and lists (tuples become lists), for YAML/JSON and hashing."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj
