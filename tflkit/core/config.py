"""Frozen dataclass configs: one definition gives the CLI flags, the YAML loading and the saved record.

A config field carries its own help and choices in `field(metadata={"help": ..., "choices": ...})`.
- `add_flags(parser, cls)` turns the fields into argparse flags (`image_size` -> `--image-size`), typed from the
  annotation, with the help, the choices and the dataclass default in the help text. The flags default to None,
  so `flag_values(args, cls)` returns only what the user typed, which a YAML file or a saved run can be merged with.
- `from_dict(cls, data, source)` builds a config from a YAML mapping: unknown keys and wrong types are one-line
  UsageErrors (exit 2), and values are coerced by the field's annotation (PyYAML reads `lr: 1e-3` as a string).
- `save_yaml(config, path)` writes the resolved config beside a result; `load_yaml(cls, path)` reads one back.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import types
import typing
from pathlib import Path

import yaml

from tflkit.core.errors import UsageError
from tflkit.core.fileio import atomic_write_text
from tflkit.core.limits import YAML_ALIASES, YAML_BYTES, YAML_NODES

_SCALARS = (bool, int, float, str)


def _is_missing(value) -> bool:
    return value is dataclasses.MISSING


@functools.cache
def field_types(cls) -> dict[str, tuple[type, bool, type | None]]:
    """name -> (base type, None allowed, element type of a tuple) from the annotations (strings under PEP 563)."""
    hints = typing.get_type_hints(cls)
    result = {}
    for f in dataclasses.fields(cls):
        annotation = hints[f.name]
        args = typing.get_args(annotation)
        optional = False
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            optional = type(None) in args
            args = tuple(a for a in args if a is not type(None))
            annotation = args[0] if len(args) == 1 else str
            args = typing.get_args(annotation)
        origin = typing.get_origin(annotation) or annotation
        element = None
        if origin in (tuple, list):
            element = args[0] if args and args[0] in _SCALARS else None
            origin = tuple
        result[f.name] = (origin, optional, element)
    return result


def _type_name(kind) -> str:
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        kind, getattr(kind, "__name__", str(kind)))


def coerce(value, kind: type):
    """A scalar `value` as `kind`, or ValueError. Numbers written as strings (YAML's `1e-3`) become numbers; a bool
    is never taken for a number, nor a number for a bool; an int that is a whole float (YAML's `64.0`) is an int."""
    if value is None or isinstance(value, bool) != (kind is bool):
        raise ValueError(value)
    if kind in (int, float) and isinstance(value, str):
        value = value.strip()
    elif kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    elif not isinstance(value, kind if kind is not float else (int, float)):
        raise ValueError(value)
    return kind(value)


def from_dict(cls, data, source: str = "config", where: str = ""):
    """A `cls` from a mapping, nested dataclasses included (a study's `host_bench:`, a search's `train:`): values
    coerced by the fields' annotations, and an unknown key, a wrong type or a failed check is one UsageError naming
    `source` and the key's path (`study.yaml: host_bench.runs must be an integer, got 'lots'`). The one loader of
    every config tflkit reads: --config, config.yaml, study files, search settings, boards."""
    prefix = f"{source}: {where}: " if where else f"{source}: "
    if data is None and where:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"{prefix}expected a mapping of keys to values, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(map(str, set(data) - set(fields)))
    if unknown:
        raise UsageError(f"{prefix}unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(fields))}")
    values = {name: _coerce(hints[name], value, source, f"{where}.{name}" if where else name)
              for name, value in data.items()}
    missing = [n for n, f in fields.items() if n not in values and _is_missing(f.default)
               and _is_missing(f.default_factory)]
    if missing:
        raise UsageError(f"{prefix}missing key(s) {', '.join(missing)}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{prefix}{exc}") from None


def _coerce(hint, value, source: str, path: str):
    """`value` as the annotation `hint` says (unions, nested dataclasses, tuples, dicts, scalars)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kinds = [a for a in args if a is not type(None)]
        for kind in kinds:
            try:
                return _coerce(kind, value, source, path)
            except UsageError:
                continue
        names = " or ".join(_type_name(k) for k in kinds) + (" or null" if type(None) in args else "")
        raise UsageError(f"{source}: {path} must be {names}, got {value!r}")
    if hint is typing.Any:
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, source, where=path)
    if origin in (tuple, list) or hint in (tuple, list):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # `threads: 1` means `threads: [1]`, `recipes: fp32` the one-item list
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{source}: {path} must be a list, got {value!r}")
        item = args[0] if args else typing.Any
        return tuple(_coerce(item, v, source, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{source}: {path} must be a mapping, got {value!r}")
        key_t, val_t = args or (str, typing.Any)
        return {_coerce(key_t, k, source, path): _coerce(val_t, v, source, f"{path}.{k}") for k, v in value.items()}
    if hint in _SCALARS:
        if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # a phone serial or a name that YAML read as a number
        try:
            return coerce(value, hint)
        except ValueError:
            raise UsageError(f"{source}: {path} must be {_type_name(hint)}, got {value!r}") from None
    return value


def coerce_field(cls, name: str, value, source: str = "config"):
    """One field's value of `cls` coerced as from_dict would (a search space's fixed values and choices)."""
    return _coerce(typing.get_type_hints(cls)[name], value, source, name)


def to_plain(obj):
    """A dataclass tree as plain dicts and lists (tuples become lists), for YAML/JSON and hashing."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj


def read_yaml(path, what: str = "config file", expected: str = "a mapping of keys to values") -> dict:
    """The mapping in a YAML file (not yet checked against a config class), or a one-line UsageError naming the
    line and column of a syntax error. Every YAML file tflkit reads (--config, study, search space) comes here."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} not found: {path}")
    YAML_BYTES.check(path.stat().st_size, path)
    try:
        data = safe_load_bounded(path.read_bytes().decode("utf-8"), path) or {}
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not valid YAML (not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset "
                         f"{exc.start})") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({yaml_error_text(exc)})") from None
    except RecursionError:
        raise UsageError(f"{path}: not valid YAML (nested too deeply)") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected {expected}, got {type(data).__name__}")
    return data


def safe_load_bounded(text: str, source):
    """yaml.safe_load, with the composed node graph measured before any Python object is built: more aliases than
    tflkit.core.limits.YAML_ALIASES, or a graph that expands to more nodes than YAML_NODES (a billion-laughs file: 81
    aliases in 396 bytes, 490 million nodes expanded), is a one-line UsageError, in milliseconds."""
    aliases = sum(1 for event in yaml.parse(text, Loader=yaml.SafeLoader) if isinstance(event, yaml.AliasEvent))
    YAML_ALIASES.check(aliases, source)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        YAML_NODES.check(_expanded_nodes(node), source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_nodes(root) -> int:
    """Nodes the graph counts with every alias expanded (a shared node once per reference). Memoized per node, so
    the count costs one visit a node whatever the expansion (Python's integers hold 9^9 or 2^1000 alike)."""
    sizes: dict[int, int] = {}
    started: set[int] = set()  # a recursive structure (`&a [*a]`) reaches a node again before its size is known
    pending = [(root, False)]
    while pending:
        node, children_done = pending.pop()
        if id(node) in sizes or (not children_done and id(node) in started):
            continue
        started.add(id(node))
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        if children_done:
            sizes[id(node)] = 1 + sum(sizes.get(id(c), 1) for c in children)  # a cycle's back edge: 1
            continue
        pending.append((node, True))
        pending.extend((c, False) for c in children if id(c) not in started)
    return sizes[id(root)]


def yaml_error_text(exc) -> str:
    """'line 3, column 9: mapping values are not allowed here' (lines counted from 1, as editors do)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return problem
    context = f" ({exc.context})" if getattr(exc, "context", None) else ""
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}{context}"


def load_yaml(cls, path):
    return from_dict(cls, read_yaml(path), source=str(path))


def to_dict(config) -> dict:
    """Plain YAML/JSON types: tuples become lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def save_yaml(config, path) -> None:
    atomic_write_text(path, yaml.safe_dump(to_dict(config), sort_keys=False))


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, cls, only=None, skip=(), choices: dict | None = None,
              helps: dict | None = None) -> list[str]:
    """One flag per field of `cls` (or of `only`, in the dataclass order), defaulting to None so that
    `flag_values` sees only what was typed. `choices` and `helps` add or replace a field's choices (names known
    at run time, such as the model registry) and help. Returns the field names added."""
    added = []
    types_of = field_types(cls)
    for f in dataclasses.fields(cls):
        if (only is not None and f.name not in only) or f.name in skip:
            continue
        kind, _, element = types_of[f.name]
        options = (choices or {}).get(f.name) or f.metadata.get("choices")
        text = (helps or {}).get(f.name) or f.metadata.get("help") or f.name.replace("_", " ")
        default = None if _is_missing(f.default) else f.default
        if not _is_missing(f.default_factory):
            default = f.default_factory()
        if isinstance(default, tuple):
            default = " ".join(map(str, default))
        if options:
            text += f"; one of: {', '.join(map(str, options))}"
        if default is not None and "default" not in text:  # a None default is explained in the help itself
            text += f" (default: {default})"
        kwargs = {"dest": f.name, "default": None, "help": text.replace("%", "%%")}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:  # the choices are in the help text; a metavar keeps the usage line short
            if kind is tuple:
                kwargs.update(type=element or str, nargs="+")
            else:
                kwargs["type"] = kind
            kwargs["metavar"] = f.name.upper()
            if options:
                kwargs["choices"] = list(options)
        parser.add_argument(flag_name(f.name), **kwargs)
        added.append(f.name)
    return added


def flag_values(args: argparse.Namespace, cls) -> dict:
    """The fields of `cls` given on the command line (flags that were left out are None)."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
            if getattr(args, f.name, None) is not None}


def changed_fields(config, requested: dict) -> dict:
    """requested keys whose value differs from `config`'s: name -> (config's value, requested value)."""
    return {k: (getattr(config, k), v) for k, v in requested.items()
            if v is not None and _normal(getattr(config, k)) != _normal(v)}


def _normal(value):
    return list(value) if isinstance(value, tuple) else value
