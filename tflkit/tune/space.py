"""The search space: which TrainConfig keys a trial samples, over which ranges; a default per model family and a
YAML file that overrides it, validated like every other config (unknown key, empty range, wrong type: UsageError).

A space file maps TrainConfig keys to one of:
  lr: {low: 1.0e-4, high: 1.0e-2, log: true}      a float range (log-uniform with `log: true`)
  finetune_epochs: {low: 1, high: 4}              an integer range (both ends integers)
  optimizer: {choices: [adam, sgd]}               a categorical choice
  label_smoothing: 0.1                            a fixed value: set on every trial, not searched
Keys the file leaves out keep the default space's entry; `key: null` drops it from the search.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from pathlib import Path

from tflkit.core.config import coerce_field, read_yaml
from tflkit.core.errors import UsageError
from tflkit.core.trainconfig import AUGMENT_PRESETS, OPTIMIZERS, SCHEDULES, TrainConfig
from tflkit.models import get_spec

# What each searchable key is, so a space file is checked before any trial trains.
FLOAT_KEYS = ("lr", "weight_decay", "label_smoothing", "warmup_epochs", "finetune_lr", "bn_momentum", "step_gamma")
INT_KEYS = ("batch_size", "finetune_epochs", "epochs", "step_epochs")
NAMED_CHOICES = {"optimizer": OPTIMIZERS, "lr_schedule": SCHEDULES, "augment": AUGMENT_PRESETS}
SEARCHABLE = (*FLOAT_KEYS, *INT_KEYS, *NAMED_CHOICES)


@dataclass(frozen=True)
class Param:
    """One searched key: a float or int range (`low`..`high`, `log`), or `choices`."""

    name: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple | None = None

    @property
    def kind(self) -> str:
        if self.choices is not None:
            return "categorical"
        return "int" if self.name in INT_KEYS else "float"

    def suggest(self, trial):
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log)

    def extremes(self) -> list:
        """The values a check of the base config must accept: both ends, or every choice."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def contains(self, value) -> bool:
        if self.choices is not None:
            return value in self.choices
        return value is not None and self.low <= value <= self.high

    def describe(self) -> str:
        if self.choices is not None:
            return "{" + ", ".join(map(str, self.choices)) + "}"
        return f"[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    fixed: dict = dataclasses.field(default_factory=dict)  # keys set on every trial, not searched

    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def sample(self, trial) -> dict:
        return {**self.fixed, **{p.name: p.suggest(trial) for p in self.params}}

    def baseline(self, base: TrainConfig) -> dict:
        """The base config's own values of the searched keys that lie in the space: TrainConfig's defaults, queued
        as the first trial so the search measures the configuration it has to beat."""
        return {p.name: getattr(base, p.name) for p in self.params if p.contains(getattr(base, p.name))}

    def check_against(self, base: TrainConfig) -> None:
        """Every end of every range must make a valid TrainConfig with the base (batch size vs train_limit, a
        fine-tune key without --pretrained, ...): a bad space is one line before any training, not trial 7."""
        base = replace(base, **self.fixed, **{p.name: p.extremes()[0] for p in self.params})
        try:
            base.check()
        except UsageError as exc:
            raise UsageError(f"search space: the tune settings with the lowest of each range are not valid ({exc})") \
                from None
        for param in self.params:
            for value in param.extremes():
                try:
                    replace(base, **{param.name: value}).check()
                except UsageError as exc:
                    raise UsageError(f"search space: {param.name}={value} is not a valid setting here ({exc})") \
                        from None

    def to_dict(self) -> dict:
        out = {}
        for p in self.params:
            if p.choices is not None:
                out[p.name] = {"choices": list(p.choices)}
            else:
                out[p.name] = {"low": p.low, "high": p.high, **({"log": True} if p.log else {})}
        return {**out, **self.fixed}


# The default space. Ranges are those that moved top-1 in short CIFAR-scale runs; per family below.
# - optimizer: Adam and AdamW only. One lr range serves every optimizer (a per-optimizer range would give `lr` two
#   distributions, which Optuna's importance evaluators drop), and SGD (momentum 0.9) wants 1e-2..1e-1 where Adam
#   wants 1e-3: in the 3e-4..1e-2 range below, most SGD draws undertrain in a short run. The ResNet family keeps SGD
#   with its SGD-scale range.
# - weight_decay: Keras 3 decays decoupled and scaled by the lr (w -= lr * wd * w every step, AdamW's convention:
#   Keras' AdamW default is 0.004, PyTorch's 0.01). The former 0..5e-4 (an L2 coefficient's scale) shrank weights by
#   under 1% over a run of a few thousand steps, a searched dimension that did nothing; 0..0.1 spans none to strong.
_BASE = {
    "lr": {"low": 3e-4, "high": 1e-2, "log": True},
    "batch_size": {"choices": [32, 64, 128]},
    "optimizer": {"choices": ["adam", "adamw"]},
    "weight_decay": {"low": 0.0, "high": 0.1},
    "label_smoothing": {"low": 0.0, "high": 0.2},
    "lr_schedule": {"choices": ["constant", "cosine"]},
    "warmup_epochs": {"low": 0.0, "high": 1.0},
    "augment": {"choices": list(AUGMENT_PRESETS)},
}
_PRETRAINED = {
    "finetune_epochs": {"low": 0, "high": 3},
    "finetune_lr": {"low": 1e-5, "high": 1e-3, "log": True},
}
# Family differences: SGD needs a larger lr than Adam (ResNet's reference recipe is SGD 0.1); EfficientNetV2-S at
# batch 128 does not fit a short CPU budget.
_FAMILY = {
    "resnet": {"lr": {"low": 1e-3, "high": 1e-1, "log": True}, "optimizer": {"choices": ["adam", "adamw", "sgd"]}},
    "efficientnetv2": {"batch_size": {"choices": [16, 32, 64]}},
    "squeezenet": {"lr": {"low": 1e-4, "high": 3e-3, "log": True}},  # diverges above a few 1e-3 from scratch
}


def default_space_dict(model: str, pretrained: bool) -> dict:
    family = get_spec(model).family
    return {**_BASE, **_FAMILY.get(family, {}), **(_PRETRAINED if pretrained else {})}


def default_space(model: str, pretrained: bool = False) -> SearchSpace:
    return parse_space(default_space_dict(model, pretrained), source=f"default space for {model}")


def load_space(path, model: str, pretrained: bool = False) -> SearchSpace:
    """The default space for `model` with the file's entries laid over it."""
    path = Path(path)
    data = read_yaml(path, what="space file", expected="a mapping of TrainConfig keys to ranges")
    merged = {**default_space_dict(model, pretrained), **data}
    parse_space({k: v for k, v in data.items() if v is not None}, source=str(path))  # errors name the file's keys
    return parse_space({k: v for k, v in merged.items() if v is not None}, source=str(path))


def parse_space(data: dict, source: str = "space") -> SearchSpace:
    config_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    params, fixed = [], {}
    for name, spec in data.items():
        if name not in SEARCHABLE:
            hint = "not a TrainConfig key" if name not in config_keys else "not searchable (set it as a tune flag)"
            raise UsageError(f"{source}: unknown parameter {name!r} ({hint}); searchable: {', '.join(SEARCHABLE)}")
        if isinstance(spec, dict):
            params.append(_param(name, spec, source))
        else:
            fixed[name] = _value(name, spec, source)
    return SearchSpace(params=tuple(params), fixed=fixed)


def _param(name: str, spec: dict, source: str) -> Param:
    where = f"{source}: {name}"
    unknown = sorted(map(str, set(spec) - {"low", "high", "log", "choices"}))  # YAML keys may be numbers
    if unknown:
        raise UsageError(f"{where}: unknown field(s) {', '.join(unknown)}; use low/high/log or choices")
    if "choices" in spec:
        if set(spec) - {"choices"}:
            raise UsageError(f"{where}: give either choices or low/high, not both")
        choices = spec["choices"]
        if not isinstance(choices, list):
            raise UsageError(f"{where}: choices must be a list, got {type(choices).__name__}")
        if not choices:
            raise UsageError(f"{where}: empty choices")
        values = tuple(_value(name, c, source) for c in choices)
        if len(set(values)) != len(values):
            raise UsageError(f"{where}: repeated choices {list(values)}")
        return Param(name, choices=values)
    if name in NAMED_CHOICES:
        raise UsageError(f"{where}: a named setting takes choices, e.g. {{choices: [{NAMED_CHOICES[name][0]}]}}")
    if "low" not in spec or "high" not in spec:
        raise UsageError(f"{where}: a range needs both low and high")
    low, high = _value(name, spec["low"], source), _value(name, spec["high"], source)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise UsageError(f"{where}: log must be true or false, got {log!r}")
    if not low < high:
        raise UsageError(f"{where}: empty range (low {low} must be below high {high})")
    if log and low <= 0:
        raise UsageError(f"{where}: a log range needs low > 0, got {low}")
    return Param(name, low=low, high=high, log=log)


def _value(name: str, value, source: str):
    """A value of TrainConfig key `name`, coerced as every config is (tflkit.core.config: YAML's `1e-3` is a string)."""
    if name in NAMED_CHOICES and value not in NAMED_CHOICES[name]:
        raise UsageError(f"{source}: {name}: unknown choice {value!r}; choose from: {', '.join(NAMED_CHOICES[name])}")
    value = coerce_field(TrainConfig, name, value, source)
    if value is None:
        raise UsageError(f"{source}: {name} must be a value, got None")
    return value
