"""study.db flattened to one row per (cell, recipe): what the report, results.csv and `tflkit pick` read.

Columns:
  cell, model, dataset, regime, pretrained, recipe, status, message
  top1, top5 (of the .tflite on the whole test split), top1_drop (the cell's fp32 top-1 minus this one's, points
    as a fraction), agreement (top-1 agreement with the float Keras model on held-out images)
  size_bytes, size_ratio (against the cell's fp32 file), gzip_bytes, params, macs, arena_bytes
  host_median_ms_t<N>, host_p95_ms_t<N>, host_partitions_t<N>, host_rss_delta_mb (the host, XNNPACK unless the
    column says `host_cpu_`), and per phone and delegate `<phone>_<delegate>_median_ms_t<N>` / `_p95_ms_t<N>`
    (`mean_ms` where the phone's tool printed no median), `<phone>_<delegate>_peak_memory_mb`
  eval_images, classes (of the test split the top-1 was measured on), at_chance (True when that top-1 cannot be
    told from guessing among `classes`: see at_chance; None when the class count is not known)
  top1_lo, top1_hi (its 95% interval on those images: tflkit.core.uncertainty.wilson_interval)
  convergence, last_gain, epochs (the cell's training: still improving / converged / early-stopped / unknown, the
    points its last epoch added to the best validation top-1, epochs trained: tflkit.core.uncertainty.convergence)
  with a study's `mcu:` (tflkit.mcu): tflm (runs / refused: reason), tflm_arena_bytes (the smallest arena that
    allocates and invokes under TFLite Micro, I/O included), tflm_top1 and tflm_agreement (top-1 under TFLM on
    tflm_eval_images images, and its top-1 agreement with LiteRT), fits_on (the boards it fits, `board:npu` on an
    Ethos-U), fits_<board> (True/False) and fits_<board>_breaks, and per Ethos-U target
    vela_<target>_sram_kib / _flash_kib / _ms / _cpu_ops
  seed; with a study's `seeds`, the cells of one grid point merged (merge_seeds): seeds (how many measured),
    top1_seeds (each seed's top-1), top1_sd (their sample standard deviation)
A value that was not measured is None (empty in CSV), never 0.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

from tflkit.core.uncertainty import convergence, mean_interval, wilson_interval
from tflkit.mcu.columns import mcu_columns
from tflkit.study.spec import cell_dir
from tflkit.study.store import StudyStore

IDENTITY = ("cell", "model", "dataset", "regime", "pretrained", "recipe", "status")
FIGURES = ("top1", "top1_lo", "top1_hi", "top1_sd", "seeds", "top5", "top1_drop", "at_chance", "convergence",
           "last_gain", "epochs", "agreement", "size_bytes", "size_ratio", "gzip_bytes", "params", "macs",
           "arena_bytes")


def target_prefix(target: str, device: str | None, delegate: str) -> str:
    """`host` (XNNPACK, the default) or `host_cpu`; a phone as `<device>_<delegate>`, id-safe."""
    if target == "host":
        return "host" if delegate == "xnnpack" else f"host_{delegate}"
    name = device or target.split(":", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "_", f"{name} {delegate}".lower()).strip("_")


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
        latency.setdefault((lat["cell"], lat["recipe"]), []).append(lat)
    failed_stages = {}
    for stage in stages:
        if stage["status"] == "failed":
            failed_stages.setdefault(stage["cell"], []).append(stage)
    rows = []
    for f in store.files():
        cell = cells.get(f["cell"])
        if cell is None:
            continue
        row = {"cell": f["cell"], "model": cell["model"], "dataset": cell["dataset"], "regime": cell["regime"],
               "pretrained": _weights_name(cell["config"].get("pretrained")), "recipe": f["recipe"],
               "status": f["status"], "message": f["message"] or "", "seed": cell["config"].get("seed")}
        for key in ("top1", "top5", "agreement", "size_bytes", "gzip_bytes", "params", "macs", "arena_bytes",
                    "eval_images"):
            row[key] = f[key]
        row["classes"] = classes.get(f["cell"])
        row["at_chance"] = at_chance(row["top1"], row["classes"], row["eval_images"])
        row["top1_lo"] = row["top1_hi"] = None
        if row["top1"] is not None and row["eval_images"]:
            row["top1_lo"], row["top1_hi"] = wilson_interval(row["top1"], row["eval_images"])
        row.update(trained.get(f["cell"], {"convergence": None, "last_gain": None, "epochs": None}))
        if row["at_chance"]:
            row["message"] = _joined(row["message"], f"top-1 at chance ({row['classes']} classes)")
        row.update({k: v for k, v in (f["extra"] or {}).items() if k not in row})
        if (f["cell"], f["recipe"]) in mcu:
            row.update(mcu_columns(mcu[(f["cell"], f["recipe"])]))
        _add_latency(row, latency.get((f["cell"], f["recipe"]), []))
        _add_stage_failures(row, failed_stages.get(f["cell"], []))
        rows.append(row)
    _add_ratios(rows)
    return merge_seeds(rows, {c["cell"] for c in cells.values() if _seeded(c)})


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
        info = cell_dir(out_dir, cell) / "model_info.json"
        if cell not in counts and info.is_file():
            try:
                counts[cell] = int(json.loads(info.read_text())["num_classes"])
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


def _add_latency(row: dict, measurements: list[dict]) -> None:
    for lat in measurements:
        prefix = target_prefix(lat["target"], lat["device"], lat["delegate"])
        t = lat["threads"]
        if lat["status"] != "ok":
            note = f"{prefix} t{t}: {lat['status']}" + (f" ({lat['message']})" if lat["message"] else "")
            row["message"] = _joined(row["message"], note)
            if lat["target"] == "host" and row["status"] == "ok":
                row["status"] = lat["status"]  # the file does not run on the host: that is the row's status
            if lat["median_ms"] is None and lat["mean_ms"] is None:
                continue  # e.g. xnnpack_failed still carries the built-in kernels' figures
        if lat["median_ms"] is not None:
            row[f"{prefix}_median_ms_t{t}"] = lat["median_ms"]
        elif lat["mean_ms"] is not None:
            row[f"{prefix}_mean_ms_t{t}"] = lat["mean_ms"]
        if lat["p95_ms"] is not None:
            row[f"{prefix}_p95_ms_t{t}"] = lat["p95_ms"]
        if lat["partitions"] is not None:
            row[f"{prefix}_partitions_t{t}"] = lat["partitions"]
        if lat["rss_delta_mb"] is not None:
            row[f"{prefix}_rss_delta_mb"] = lat["rss_delta_mb"]
        if lat["peak_memory_mb"] is not None:  # a phone's benchmark_model memory footprint
            row[f"{prefix}_peak_memory_mb"] = lat["peak_memory_mb"]


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


def _add_ratios(rows: list[dict]) -> None:
    base = {r["cell"]: r for r in rows if r["recipe"] == "fp32" and r["status"] == "ok"}
    for row in rows:
        ref = base.get(row["cell"])
        row["top1_drop"] = row["size_ratio"] = None
        if ref is None:
            continue
        if row.get("top1") is not None and ref.get("top1") is not None:
            row["top1_drop"] = ref["top1"] - row["top1"]
        if row.get("size_bytes") and ref.get("size_bytes"):
            row["size_ratio"] = row["size_bytes"] / ref["size_bytes"]


def latency_key(target: str = "host", threads: int = 1, delegate: str | None = None) -> str:
    """The row column holding the median latency on `target` (`host` or a phone prefix) at `threads`."""
    prefix = target if delegate is None else f"{target}_{delegate}"
    return f"{prefix}_median_ms_t{threads}"


def columns(rows: list[dict]) -> list[str]:
    extra = sorted({k for r in rows for k in r} - set(IDENTITY) - set(FIGURES) - {"message"})
    measured = ("_ms_t", "_partitions_t", "rss_delta", "peak_memory")
    latency_cols = sorted((k for k in extra if any(m in k for m in measured)),
                          key=lambda k: (k.rsplit("_t", 1)[0].split("_")[0] != "host", k))
    others = [k for k in extra if k not in latency_cols]
    return [*IDENTITY, *FIGURES, *latency_cols, *others, "message"]
