"""study.db flattened to one row per (cell, recipe): what the report, results.csv and `tflkit pick` read.

Every file's columns are a run report's (tflkit.pipeline.rows: the same builder over the same records, so a file has
the same columns and values in both), plus the study's own:
  cell, regime, pretrained, seed
  classes (of the test split the top-1 was measured on), at_chance (True when that top-1 cannot be told from
    guessing among `classes`: see at_chance; None when the class count is not known)
  top1_lo, top1_hi (its 95% interval on those images: tflkit.core.uncertainty.wilson_interval)
  convergence, last_gain, epochs (the cell's training: still improving / converged / early-stopped / unknown, the
    points its last epoch added to the best validation top-1, epochs trained: tflkit.core.uncertainty.convergence)
  with a study's `seeds`, the cells of one grid point merged (merge_seeds): seeds (how many measured),
    top1_seeds (each seed's top-1), top1_sd (their sample standard deviation)
A value that was not measured is None (empty in CSV), never 0.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from tflkit.core.results import BenchResult
from tflkit.core.run import Run
from tflkit.core.uncertainty import convergence, mean_interval, wilson_interval
from tflkit.pipeline.rows import add_ratios, file_row
from tflkit.pipeline.rows import columns as rows_columns
from tflkit.study.spec import cell_dir
from tflkit.study.store import StudyStore

IDENTITY = ("cell", "model", "dataset", "regime", "pretrained", "recipe", "status")
STUDY_FIGURES = ("top1_lo", "top1_hi", "top1_sd", "seeds", "at_chance", "convergence", "last_gain", "epochs")


CHANCE_SIGMAS = 3.0  # a top-1 within 3 standard errors of 1/classes is not told from guessing


def at_chance(top1: float | None, classes: int | None, images: int | None) -> bool | None:
    """Whether a top-1 measured on `images` test images is indistinguishable from guessing one of `classes`:
    at most 1/classes plus CHANCE_SIGMAS binomial standard errors (CIFAR-10, 10,000 images: 10.90%). A model
    trained at chance did not learn; its accuracy says nothing about its architecture. None: not known."""
    if top1 is None or not classes or not images:
        return None
    p = 1.0 / classes
    return top1 <= p + CHANCE_SIGMAS * math.sqrt(p * (1 - p) / images)


def study_rows(store: StudyStore) -> list[dict]:
    cells = {c["cell"]: c for c in store.cells()}
    stages = store.stages()
    classes = _class_counts(stages, cells, store.path.parent)
    trained = _training(stages)
    mcu = _mcu(stages)
    latency = {}
    for lat in store.latencies():
        latency.setdefault((lat["cell"], lat["recipe"]), []).append(_bench_result(lat))
    failed_stages = {}
    for stage in stages:
        if stage["status"] == "failed":
            failed_stages.setdefault(stage["cell"], []).append(stage)
    rows = []
    for f in store.files():
        cell = cells.get(f["cell"])
        if cell is None:
            continue
        evaluation = {"top1": f["top1"], "top5": f["top5"], "count": f["eval_images"]} if f["top1"] is not None \
            else None
        row = file_row(cell["model"], cell["dataset"], _export(f), evaluation,
                       latency.get((f["cell"], f["recipe"]), []), mcu.get((f["cell"], f["recipe"])),
                       params=f["params"])
        row.update({"cell": f["cell"], "regime": cell["regime"], "seed": cell["config"].get("seed"),
                    "pretrained": _weights_name(cell["config"].get("pretrained")), "classes": classes.get(f["cell"])})
        row["at_chance"] = at_chance(row["top1"], row["classes"], row["eval_images"])
        row["top1_lo"] = row["top1_hi"] = None
        if row["top1"] is not None and row["eval_images"]:
            row["top1_lo"], row["top1_hi"] = wilson_interval(row["top1"], row["eval_images"])
        row.update(trained.get(f["cell"], {"convergence": None, "last_gain": None, "epochs": None}))
        if row["at_chance"]:
            row["message"] = _joined(row["message"], f"top-1 at chance ({row['classes']} classes)")
        _add_stage_failures(row, failed_stages.get(f["cell"], []))
        rows.append(row)
    add_ratios(rows, group=lambda row: row["cell"])
    return merge_seeds(rows, {c["cell"] for c in cells.values() if _seeded(c)})


def _export(f: dict) -> dict:
    """A files row as the export record the run report reads: the whole ExportResult where the study kept it (the
    `export` in `extra`), else (studies recorded before) the columns it had, its scalar extras at the top level."""
    extra = f["extra"] or {}
    export = dict(extra.get("export") or {k: v for k, v in extra.items() if not isinstance(v, (dict, list))})
    export.update({k: f[k] for k in ("recipe", "status", "message", "path", "size_bytes", "gzip_bytes", "macs",
                                      "arena_bytes") if f.get(k) is not None or k not in export})
    if f.get("agreement") is not None:
        export["validation"] = {**(export.get("validation") or {}), "agreement": f["agreement"]}
    return export


def _bench_result(lat: dict) -> BenchResult:
    return BenchResult.from_dict({**lat, "model": lat["recipe"], "runtime": "", "message": lat["message"] or ""})


def _seeded(cell: dict) -> bool:
    """A cell of a study with `seeds` (its id ends in .s<seed>)."""
    return cell["cell"] == f"{cell['model']}.{cell['dataset']}.{cell['regime']}.s{cell['config'].get('seed')}"


MEAN_KEYS = ("top1", "top5", "top1_drop", "agreement")  # averaged over seeds; other figures: their median
WORST_FIRST = ("unknown", "still improving", None, "converged", "early-stopped")


def merge_seeds(rows: list[dict], seeded: set[str]) -> list[dict]:
    """One row per (model, dataset, regime, recipe) from the rows of cells trained once per seed: the mean top-1
    and its spread, the interval of the mean (tflkit.core.uncertainty.mean_interval), the least settled convergence, the
    median of the other figures; a seed's failure makes the row's status and message. Other rows pass unchanged."""
    groups: dict[tuple, list[dict]] = {}
    out = []
    for row in rows:
        if row["cell"] in seeded:
            groups.setdefault((row["model"], row["dataset"], row["regime"], row["recipe"]), []).append(row)
        else:
            out.append(row)
    for (model, dataset, regime, _), members in groups.items():
        members.sort(key=lambda r: r["seed"])
        merged = {**members[0], "cell": f"{model}.{dataset}.{regime}", "seed": None}
        for key in {k for r in members for k in r} - {"cell", "seed", "message", "status", *IDENTITY}:
            values = [r[key] for r in members if isinstance(r.get(key), (int, float)) and not isinstance(r[key], bool)]
            if values:
                merged[key] = statistics.fmean(values) if key in MEAN_KEYS else statistics.median(values)
            elif key not in ("convergence", "at_chance"):
                merged[key] = None
        measured = [r for r in members if r.get("top1") is not None]
        merged["seeds"] = len(measured)
        merged["top1_seeds"] = [r["top1"] for r in measured]
        merged["top1_sd"] = _sample_sd(merged["top1_seeds"])
        merged["top1_lo"] = merged["top1_hi"] = None
        if measured and merged.get("eval_images"):
            merged["top1_lo"], merged["top1_hi"] = mean_interval(merged["top1_seeds"], int(merged["eval_images"]))
        merged["convergence"] = min((r.get("convergence") for r in members), key=WORST_FIRST.index)
        merged["at_chance"] = any(r.get("at_chance") for r in measured) if measured else None
        failed = [r for r in members if r["status"] != "ok"]
        merged["status"] = failed[0]["status"] if failed else "ok"
        merged["message"] = "; ".join(f"seed {r['seed']}: {r['message']}" for r in members if r.get("message"))
        out.append(merged)
    return out


def _sample_sd(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def _class_counts(stages: list[dict], cells: dict, out_dir: Path) -> dict[str, int]:
    """cell -> the number of classes of its test split: from its eval stages (studies run since they record
    it), else from the trained model's model_info.json in the study directory; absent when neither exists."""
    counts = {}
    for stage in stages:
        result = stage["result"] if isinstance(stage["result"], dict) else {}
        if stage["stage"].startswith("eval/") and result.get("classes"):
            counts[stage["cell"]] = int(result["classes"])
    for cell in cells:
        if cell not in counts:
            try:
                counts[cell] = int(Run(cell_dir(out_dir, cell)).model_info()["num_classes"])
            except (ValueError, KeyError, TypeError):
                pass  # unknown stays unknown
    return counts


def _training(stages: list[dict]) -> dict[str, dict]:
    """cell -> convergence, last_gain, epochs from its finished train stage's history (validation top-1; the
    training top-1 where the dataset has no validation split)."""
    out = {}
    for stage in stages:
        result = stage["result"] if isinstance(stage["result"], dict) else {}
        if stage["stage"] != "train" or stage["status"] != "ok" or "history" not in result:
            continue
        history = result["history"] or {}
        curve = history.get("val_top1") or history.get("top1")
        status, gain = convergence(curve, bool(result.get("stopped")))
        out[stage["cell"]] = {"convergence": status, "last_gain": gain,
                              "epochs": result.get("epochs") or (len(curve) if curve else None)}
    return out


def _mcu(stages: list[dict]) -> dict[tuple, dict]:
    """(cell, recipe) -> the tflkit.mcu.measure record of its finished mcu stage."""
    return {(stage["cell"], stage["stage"].split("/", 1)[1]): stage["result"] for stage in stages
            if stage["stage"].startswith("mcu/") and stage["status"] == "ok" and isinstance(stage["result"], dict)}


def _joined(message: str, note: str) -> str:
    return f"{message}; {note}" if message else note


def _weights_name(pretrained: str | None) -> str:
    """none, imagenet, or the weights file's name (its full path is in the cell's config and provenance)."""
    if pretrained in (None, "", "none", "imagenet"):
        return pretrained or "none"
    return Path(pretrained).name


def _add_stage_failures(row: dict, stages: list[dict]) -> None:
    """A failed eval or bench stage of this recipe shows in its row, so an empty figure is explained."""
    for stage in stages:
        kind, _, recipe = stage["stage"].partition("/")
        if recipe.split("/")[-1] != row["recipe"] or kind == "convert":
            continue
        note = f"{kind} failed: {stage['message']}"
        row["message"] = _joined(row["message"], note)
        if row["status"] == "ok" and kind in ("eval", "bench_host"):
            row["status"] = f"{kind}_failed"


def columns(rows: list[dict]) -> list[str]:
    """A run report's column order, after the study's identity, with the study's own figures after top-1's."""
    order = rows_columns(rows, first=IDENTITY)
    at = order.index("top1") + 1
    study = [c for c in STUDY_FIGURES if c in order]
    rest = [c for c in order if c not in study]
    return rest[:at] + study + rest[at:]
