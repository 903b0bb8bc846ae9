"""Measurements saved inside a run directory, keyed by .tflite/.keras file name, merged on every write.

  eval.json          file name -> EvalResult
  bench/host.json    list of BenchResult (host)
  bench/android*.json  lists of BenchResult from phones (written by android_bench)
  model_info.json    params, input size, classes of the trained model
  mcu.json           file name -> McuResult (TFLite Micro arena, Vela figures, fits per board)
"""

from __future__ import annotations

import json
from pathlib import Path

from tflkit.core.benchresult import BenchResult, load_results, save_results
from tflkit.core.fileio import atomic_write_text


def run_dir_of(model_path) -> Path | None:
    """The run directory a model file belongs to (RUN/model.keras or RUN/tflite/x.tflite), else None."""
    path = Path(model_path).resolve()
    for candidate in (path.parent, path.parent.parent):
        if (candidate / "config.yaml").is_file():
            return candidate
    return None


def _read_json(path: Path, default):
    return json.loads(path.read_text()) if path.is_file() else default


def record_eval(run_dir, result) -> None:
    path = Path(run_dir) / "eval.json"
    records = _read_json(path, {})
    records[result.model] = result.to_dict()
    atomic_write_text(path, json.dumps(records, indent=2) + "\n")


def load_evals(run_dir) -> dict:
    return _read_json(Path(run_dir) / "eval.json", {})


def record_host_bench(run_dir, results: list[BenchResult]) -> None:
    """Replace earlier host rows of the same (model, threads, delegate, runtime); keep the rest."""
    path = Path(run_dir) / "bench" / "host.json"
    old = load_results(path) if path.is_file() else []
    key = lambda r: (r.model, r.threads, r.delegate, r.runtime)  # noqa: E731
    new_keys = {key(r) for r in results}
    save_results([r for r in old if key(r) not in new_keys] + list(results), path)


def load_bench(run_dir) -> list[BenchResult]:
    results = []
    for path in sorted((Path(run_dir) / "bench").glob("*.json")):
        results.extend(load_results(path))
    return results


def record_model_info(run_dir, info: dict) -> None:
    atomic_write_text(Path(run_dir) / "model_info.json", json.dumps(info, indent=2) + "\n")


def load_model_info(run_dir) -> dict:
    return _read_json(Path(run_dir) / "model_info.json", {})


def record_mcu(run_dir, result: dict) -> None:
    path = Path(run_dir) / "mcu.json"
    records = _read_json(path, {})
    records[result["model"]] = result
    atomic_write_text(path, json.dumps(records, indent=2) + "\n")


def load_mcu(run_dir) -> dict:
    return _read_json(Path(run_dir) / "mcu.json", {})
