"""A run directory: the one module that spells a path inside it, and the typed records every stage writes there.

  config.yaml                the resolved TrainConfig
  model.keras                the final model (the best validation epoch)
  checkpoints/last.keras     with optimizer state, for resume; checkpoints/best.keras
  history.json, state.json   per-epoch metrics; the last finished epoch, the best score, early stopping
  pretrained.json            with pretrained weights: where they came from and which layers took them
  environment.json           one entry per session of the run (a resume may be on another machine)
  model_info.json            params, input size, classes of the trained model
  tflite/                    <model>.<dataset>.<recipe>.tflite, each with .card.json and .validation.json beside it;
                             exports.json (one row per recipe); vela/ (Ethos-U compilations)
  eval.json                  file name -> EvalResult
  bench/host.json            BenchResult list (host); bench/android*.json from phones (android_bench)
  mcu.json                   file name -> McuResult (TFLite Micro arena, Vela figures, fits per board)
  report.md, .csv, .json     the quantized-vs-float table

Every record is merged on write (read, update, atomic replace), so a reader never sees a half-written file and a
stage killed midway keeps everything recorded before it. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tflkit.core.config import from_dict, read_yaml, save_yaml
from tflkit.core.errors import UsageError
from tflkit.core.fileio import atomic_write_text
from tflkit.core.results import BenchResult, load_results, save_results
from tflkit.core.trainconfig import TrainConfig

TFLITE_DIR = "tflite"
CARD_SUFFIX = ".card.json"
VALIDATION_SUFFIX = ".validation.json"


def artifact_name(model: str, dataset: str, recipe: str) -> str:
    """`<model>.<dataset>.<recipe>.tflite`, with the dataset spec made file-name safe (folder:/a/b -> folder-b)."""
    name, _, arg = dataset.partition(":")
    slug = name if not arg else f"{name}-{Path(arg.rstrip('/')).name}"
    return f"{model}.{re.sub(r'[^A-Za-z0-9_-]+', '-', slug)}.{recipe}.tflite"


def recipe_of_file(path) -> str:
    """The recipe in an artifact name `<model>.<dataset>.<recipe>.tflite` (the last dotted part before .tflite)."""
    return Path(path).name[: -len(".tflite")].rsplit(".", 1)[-1]


def _sidecar(tflite_path, suffix: str) -> Path:
    path = Path(tflite_path)
    return path.with_name(path.name[: -len(".tflite")] + suffix)


def card_path(tflite_path) -> Path:
    """The model card beside any .tflite (converters.model_card): inside a run or not."""
    return _sidecar(tflite_path, CARD_SUFFIX)


def validation_path(tflite_path) -> Path:
    """The validation record beside a converted .tflite (converters.validate)."""
    return _sidecar(tflite_path, VALIDATION_SUFFIX)


class _inside:
    """A path inside the run directory, as a property: `run.config_path` is `run.path / "config.yaml"`."""

    def __init__(self, *parts: str):
        self.parts = parts

    def __get__(self, run, owner=None) -> Path:
        return self if run is None else run.path.joinpath(*self.parts)


def _read_json(path: Path, default):
    return json.loads(path.read_text()) if path.is_file() else default


class Run:
    """A run directory as `tflkit train` writes it and every later stage adds to it."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Run) and self.path.resolve() == other.path.resolve()

    def __hash__(self) -> int:
        return hash(self.path.resolve())

    @classmethod
    def of(cls, run) -> Run:
        """`run` itself when it is a Run, else the Run of that directory (the steps take either)."""
        return run if isinstance(run, Run) else cls(run)

    @classmethod
    def of_file(cls, model_path) -> Run | None:
        """The run a model file belongs to (RUN/model.keras or RUN/tflite/x.tflite), else None."""
        path = Path(model_path).resolve()
        for candidate in (path.parent, path.parent.parent):
            if (candidate / "config.yaml").is_file():
                return cls(candidate)
        return None

    # -- what is there -----------------------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        """A run directory: its config.yaml is written before anything else."""
        return self.config_path.is_file()

    @property
    def trained(self) -> bool:
        return self.model_path.is_file()

    @property
    def resumable(self) -> bool:
        """Training finished at least one epoch (state.json is written last in an epoch)."""
        return self.state_path.is_file() and self.config_path.is_file()

    def require(self, trained: bool = False) -> Run:
        """This run, or a UsageError (exit 2) naming what is missing."""
        if not self.exists:
            raise UsageError(f"{self.path} is not a tflkit run directory (no config.yaml)")
        if trained and not self.trained:
            raise UsageError(f"trained model not found: {self.model_path}")
        return self

    # -- paths ----------------------------------------------------------------------------------------------------
    config_path = _inside("config.yaml")
    model_path = _inside("model.keras")
    last_checkpoint = _inside("checkpoints", "last.keras")
    best_checkpoint = _inside("checkpoints", "best.keras")
    history_path = _inside("history.json")
    state_path = _inside("state.json")
    pretrained_path = _inside("pretrained.json")
    environment_path = _inside("environment.json")
    model_info_path = _inside("model_info.json")
    eval_path = _inside("eval.json")
    bench_dir = _inside("bench")
    host_bench_path = _inside("bench", "host.json")
    mcu_path = _inside("mcu.json")
    tflite_dir = _inside(TFLITE_DIR)
    exports_path = _inside(TFLITE_DIR, "exports.json")

    def phone_bench_path(self, name: str = "android") -> Path:
        return self.bench_dir / f"{name}.json"

    def artifact_path(self, model: str, dataset: str, recipe: str) -> Path:
        return self.tflite_dir / artifact_name(model, dataset, recipe)

    def report_path(self, kind: str) -> Path:
        """report.md / report.csv / report.json."""
        return self.path / f"report.{kind}"

    # -- the config ----------------------------------------------------------------------------------------------
    @property
    def config(self) -> TrainConfig:
        """The run's resolved TrainConfig, as saved in config.yaml (UsageError where there is none)."""
        self.require()
        return from_dict(TrainConfig, read_yaml(self.config_path, what="run config"), source=str(self.config_path))

    def save_config(self, config: TrainConfig) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        save_yaml(config, self.config_path)

    # -- training records ----------------------------------------------------------------------------------------
    def history(self) -> dict:
        return _read_json(self.history_path, {})

    def state(self) -> dict:
        return _read_json(self.state_path, {})

    def pretrained_layers(self) -> set[str]:
        return set(_read_json(self.pretrained_path, {}).get("loaded_layers", []))

    def model_info(self) -> dict:
        return _read_json(self.model_info_path, {})

    def record_model_info(self, info: dict) -> None:
        atomic_write_text(self.model_info_path, json.dumps(info, indent=2) + "\n")

    # -- exports -------------------------------------------------------------------------------------------------
    def exports(self) -> list[dict]:
        """The export rows, each `path` rebased onto this run's tflite/ folder: a run directory copied or moved (to a
        phone's host, into a study, an archive) names its own files, never the ones where it was converted."""
        rows = _read_json(self.exports_path, {}).get("results", [])
        for row in rows:
            if row.get("path"):
                row["path"] = str(self.tflite_dir / Path(row["path"]).name)
        return rows

    def record_export(self, row: dict, batch: dict | None = None) -> None:
        """Merge one recipe's row into exports.json (rows of other recipes kept); `batch`: what the whole export
        shared (calibration, validation images)."""
        record = _read_json(self.exports_path, {})
        rows = {r["recipe"]: r for r in record.get("results", [])}
        rows[row["recipe"]] = row
        atomic_write_text(self.exports_path, json.dumps({**record, **(batch or {}), "results": list(rows.values())},
                                                        indent=2) + "\n")

    def converted(self) -> dict[str, Path]:
        """recipe -> its .tflite, for the recipes converted ok whose file is there."""
        return {r["recipe"]: Path(r["path"]) for r in self.exports()
                if r["status"] == "ok" and r.get("path") and Path(r["path"]).is_file()}

    def tflite_files(self) -> list[Path]:
        """Every .tflite of the run that can be measured: the recorded ok ones, then files in tflite/ with no record
        (a convert killed after writing them, or copied in); failed recipes' leftovers are skipped."""
        records = self.exports()
        paths = [Path(r["path"]) for r in records if r["status"] == "ok" and Path(r["path"]).is_file()]
        recorded = {Path(r["path"]).name for r in records if r.get("path")}
        return paths + [p for p in sorted(self.tflite_dir.glob("*.tflite")) if p.name not in recorded]

    # -- measurements --------------------------------------------------------------------------------------------
    def evals(self) -> dict:
        """file name -> EvalResult as a dict."""
        return _read_json(self.eval_path, {})

    def record_eval(self, result) -> None:
        records = self.evals()
        records[result.model] = result.to_dict()
        atomic_write_text(self.eval_path, json.dumps(records, indent=2) + "\n")

    def benches(self) -> list[BenchResult]:
        """Every latency measurement of the run's files: the host's and the phones'."""
        results = []
        for path in sorted(self.bench_dir.glob("*.json")):
            results.extend(load_results(path))
        return results

    def record_host_bench(self, results: list[BenchResult]) -> None:
        """Replace earlier host rows of the same (model, threads, delegate, runtime); keep the rest."""
        old = load_results(self.host_bench_path) if self.host_bench_path.is_file() else []
        key = lambda r: (r.model, r.threads, r.delegate, r.runtime)  # noqa: E731
        new_keys = {key(r) for r in results}
        save_results([r for r in old if key(r) not in new_keys] + list(results), self.host_bench_path)

    def record_phone_bench(self, results: list[BenchResult], name: str = "android") -> None:
        """Replace earlier rows of the same (model, phone, threads, delegate) in bench/<name>.json; keep the rest."""
        path = self.phone_bench_path(name)
        old = load_results(path) if path.is_file() else []
        key = lambda r: (r.model, r.target, r.threads, r.delegate)  # noqa: E731
        new_keys = {key(r) for r in results}
        save_results([r for r in old if key(r) not in new_keys] + list(results), path)

    def unevaluated(self) -> list[Path]:
        """model.keras and the .tflite files with no test-split score recorded yet."""
        done = self.evals()
        return [p for p in [self.model_path, *self.tflite_files()] if p.is_file() and p.name not in done]

    def unbenched(self) -> list[Path]:
        """The .tflite files with no host latency recorded yet."""
        timed = {r.model for r in self.benches() if r.target == "host"}
        return [p for p in self.tflite_files() if p.name not in timed]

    def mcu(self) -> dict:
        """file name -> McuResult as a dict."""
        return _read_json(self.mcu_path, {})

    def record_mcu(self, result: dict) -> None:
        records = self.mcu()
        records[result["model"]] = result
        atomic_write_text(self.mcu_path, json.dumps(records, indent=2) + "\n")
