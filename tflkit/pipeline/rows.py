"""One row per .tflite file, one column vocabulary: a run's report (`tflkit report`, the demo) and a study's results
(`tflkit study report`, `tflkit pick`) are built here, from the same records, so a file has the same columns and
values in both.

Columns (a value that was not measured is None, never 0):
  model, dataset, recipe, status, message, file
  size_bytes, gzip_bytes, size_ratio (against the fp32 file of the same run), params, macs, arena_bytes (the
    activation arena TFLite's planner lays out), float_ops (float ops left in an integer file), weight_sparsity
  top1, top5, eval_images (the .tflite itself on the test split), top1_drop (the fp32 file's top-1 minus this one's,
    a fraction), agreement and worst_layer (against the float Keras model on held-out images: converters.validate)
  finetune_steps, finetune_epochs, finetune_fp32_top1, top1_drop_vs_finetune_fp32 (a QAT or pruning recipe's extra
    training, and the fp32 model fine-tuned alike: converters.export), heldout_top1, fp32_heldout_top1,
    heldout_images, heldout_split (what those figures rest on)
  <target>_median_ms_t<N>, _p95_ms_t<N>, _mean_ms_t<N> (where a phone's tool printed no median), _partitions_t<N>,
    _speedup_t<N> (against the fp32 file), _rss_delta_mb, _peak_memory_mb; <target> is `host` (LiteRT with
    XNNPACK), `host_cpu` (the built-in kernels), or a phone and delegate, `<device>_<delegate>`
  with an MCU measurement (tflkit.mcu.columns): tflm, tflm_arena_bytes, tflm_top1, fits_on, fits_<board>, vela_...
"""

from __future__ import annotations

import re
from pathlib import Path

from tflkit.core.results import BenchResult
from tflkit.core.run import Run, recipe_of_file
from tflkit.mcu.columns import mcu_columns
from tflkit.tflite.describe import file_figures as read_file_figures

IDENTITY = ("model", "dataset", "recipe", "status")
FIGURES = ("top1", "top1_drop", "top5", "agreement", "size_bytes", "size_ratio", "gzip_bytes", "params", "macs",
           "arena_bytes")
FINETUNE = ("finetune_fp32_top1", "top1_drop_vs_finetune_fp32")  # after top1_drop where any row had extra training
FINETUNE_DETAIL = ("heldout_top1", "fp32_heldout_top1", "heldout_images", "heldout_split")
TAIL = ("finetune_steps", "finetune_epochs", *FINETUNE_DETAIL, "eval_images", "weight_sparsity", "worst_layer",
        "float_ops", "missing", "file", "message")
LATENCY_MARKS = ("_ms_t", "_speedup_t", "_partitions_t", "rss_delta", "peak_memory")


def target_prefix(target: str, device: str | None, delegate: str | None) -> str:
    """`host` (XNNPACK, the default) or `host_<delegate>`; a phone as `<device>_<delegate>`, id-safe."""
    delegate = delegate or "unknown"
    if target == "host":
        return "host" if delegate == "xnnpack" else f"host_{delegate}"
    name = device or target.split(":", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "_", f"{name} {delegate}".lower()).strip("_")


def latency_key(target: str = "host", threads: int = 1, delegate: str | None = None) -> str:
    """The column holding the median latency on `target` (`host` or a phone prefix) at `threads`."""
    prefix = target if delegate is None else f"{target}_{delegate}"
    return f"{prefix}_median_ms_t{threads}"


def _joined(message: str, note: str) -> str:
    return f"{message}; {note}" if message else note


def file_row(model: str, dataset: str, export: dict, evaluation: dict | None = None,
             benches: list[BenchResult] = (), mcu: dict | None = None, params: int | None = None) -> dict:
    """The row of one file: `export` is its export record (converters.export: recipe, status, path, size_bytes,
    validation, fine_tune, file figures), `evaluation` its test-split EvalResult as a dict, `benches` every latency
    measurement of it, `mcu` its tflkit.mcu.measure record."""
    validation = export.get("validation") or {}
    trained = export.get("fine_tune") or {}  # QAT / pruning: the extra training this file had
    row = {"model": model, "dataset": dataset, "recipe": export["recipe"], "status": export["status"],
           "message": export.get("message") or "", "file": Path(export["path"]).name if export.get("path") else None,
           "size_bytes": export.get("size_bytes"), "gzip_bytes": export.get("gzip_bytes"), "params": params,
           "macs": export.get("macs"), "arena_bytes": export.get("arena_bytes"),
           "float_ops": export.get("float_ops"), "weight_sparsity": export.get("weight_sparsity"),
           "agreement": validation.get("agreement"), "worst_layer": validation.get("worst_layer") or None,
           "finetune_steps": trained.get("steps"), "finetune_epochs": trained.get("epochs"),
           "top1": None, "top5": None, "eval_images": None}
    if trained:
        reference, own = trained.get("fp32_same_finetune_top1"), trained.get("heldout_top1")
        row.update({"finetune_fp32_top1": reference,
                    "top1_drop_vs_finetune_fp32": reference - own if reference is not None and own is not None
                    else None, **{k: trained.get(k) for k in FINETUNE_DETAIL}})
    if evaluation:
        row.update(top1=evaluation.get("top1"), top5=evaluation.get("top5"), eval_images=evaluation.get("count"))
    for r in benches:
        _add_latency(row, r)
    if mcu:
        row.update(mcu_columns(mcu))
    return row


def _add_latency(row: dict, r: BenchResult) -> None:
    prefix = target_prefix(r.target, r.device, r.delegate)
    t = r.threads if r.threads is not None else 0
    if not r.ok:
        row["message"] = _joined(row["message"], f"{prefix} t{t}: {r.status}" + (f" ({r.message})" if r.message
                                                                                   else ""))
        if r.target == "host" and row["status"] == "ok":
            row["status"] = r.status  # the file does not run on the host: that is the row's status
        if r.median_ms is None and r.mean_ms is None:
            return  # e.g. xnnpack_failed still carries the built-in kernels' figures
    if r.median_ms is not None:
        row[f"{prefix}_median_ms_t{t}"] = r.median_ms
    elif r.mean_ms is not None:  # a mean is never shown as a median
        row[f"{prefix}_mean_ms_t{t}"] = r.mean_ms
    if r.p95_ms is not None:
        row[f"{prefix}_p95_ms_t{t}"] = r.p95_ms
    if r.partitions is not None:
        row[f"{prefix}_partitions_t{t}"] = r.partitions  # XNNPACK partitions: 1 = the whole graph delegated
    if r.rss_delta_mb is not None:
        row[f"{prefix}_rss_delta_mb"] = r.rss_delta_mb
    if r.peak_memory_mb is not None:  # a phone's benchmark_model memory footprint
        row[f"{prefix}_peak_memory_mb"] = r.peak_memory_mb
    if r.target == "host" and row.get("arena_bytes") is None and r.arena_bytes is not None:
        row["arena_bytes"] = r.arena_bytes  # files converted before the export recorded it


def add_ratios(rows: list[dict], group=lambda row: (row["model"], row["dataset"])) -> None:
    """top1_drop, size_ratio and <target>_speedup_t<N> against the ok fp32 row of the same `group` (a run, a cell)."""
    base = {group(r): r for r in rows if r["recipe"] == "fp32" and r["status"] == "ok"}
    for row in rows:
        ref = base.get(group(row))
        row["top1_drop"] = row["size_ratio"] = None
        if ref is None:
            continue
        if row.get("top1") is not None and ref.get("top1") is not None:
            row["top1_drop"] = ref["top1"] - row["top1"]
        if row.get("size_bytes") and ref.get("size_bytes"):
            row["size_ratio"] = row["size_bytes"] / ref["size_bytes"]
        for key in list(row):
            if re.search(r"_(median|mean)_ms_t\d+$", key) and ref.get(key) and row[key]:
                row[re.sub(r"_(median|mean)_ms_", "_speedup_", key)] = ref[key] / row[key]


def missing_figures(row: dict) -> str:
    """What an ok row still lacks: `tflkit eval` / `tflkit bench` (or `report` without --no-measure) fill it in."""
    missing = [] if row.get("top1") is not None else ["top1"]
    if not any("_ms_t" in key for key in row):
        missing.append("latency")
    if row.get("agreement") is None:
        missing.append("agreement")
    return ",".join(missing)


def run_rows(run: Run) -> list[dict]:
    """The rows of every file of a run: its export records, then any .tflite in tflite/ with none (converted by a run
    killed before it could record it, or copied in): a file on disk is never left out."""
    config, info = run.config, run.model_info()
    evals, mcu = run.evals(), run.mcu()
    benches: dict[str, list[BenchResult]] = {}
    for r in run.benches():
        benches.setdefault(r.model, []).append(r)
    exports = run.exports()
    known = {Path(e["path"]).name for e in exports if e.get("path")}
    for path in sorted(run.tflite_dir.glob("*.tflite")):
        if path.name not in known:
            exports.append({"recipe": recipe_of_file(path), "status": "ok", "path": str(path),
                            "size_bytes": path.stat().st_size, "message": "no export record (not validated)"})
    rows = []
    for export in exports:
        name = Path(export["path"]).name if export.get("path") else None
        if export["status"] == "ok" and name and Path(export["path"]).is_file():
            export = {**file_figures(export["path"], export), **export}
        row = file_row(config.model, config.dataset, export, evals.get(name), benches.get(name, []), mcu.get(name),
                       params=info.get("params"))
        if row["status"] == "ok":
            row["missing"] = missing_figures(row)
        rows.append(row)
    add_ratios(rows)
    return rows


def file_figures(path, known: dict | None = None) -> dict:
    """Figures read from the .tflite itself where a record lacks them (files converted before the export kept them):
    MACs, the planned arena, float ops. A figure that cannot be read stays unknown."""
    wanted = [k for k in ("macs", "arena_bytes", "float_ops") if (known or {}).get(k) is None]
    return read_file_figures(path, wanted) if wanted else {}


def columns(rows: list[dict], first=IDENTITY) -> list[str]:
    """Column order: `first`, the figures (the fine-tune comparison after top1_drop where any row had one), latency
    columns (the host's first, by thread count), the rest, then the tail."""
    present = {k for r in rows for k in r}
    figures = list(FIGURES)
    if any(k in present for k in FINETUNE):
        figures[figures.index("top1_drop") + 1:figures.index("top1_drop") + 1] = FINETUNE
    extra = sorted(present - set(first) - set(figures) - set(TAIL))
    latency = sorted((k for k in extra if any(m in k for m in LATENCY_MARKS)),
                     key=lambda k: (not k.startswith("host"), k.rsplit("_t", 1)[-1], k))
    others = [k for k in extra if k not in latency]
    return [*first, *figures, *latency, *others, *(c for c in TAIL if c in present)]


# What a report shows for a column: a percentage, MB, M MACs, ms; the CSV and JSON keep the raw values.
PERCENT = ("top1", "top5", "top1_drop", "agreement", "top1_sd", "tflm_top1", *FINETUNE)
HEADERS = {"top1": "top1 %", "top5": "top5 %", "top1_drop": "top1 drop (pts)", "agreement": "agreement %",
           "size_bytes": "size MB", "gzip_bytes": "gzip MB", "arena_bytes": "arena MB", "macs": "MACs (M)",
           "size_ratio": "size ratio", "at_chance": "at chance", "last_gain": "last-epoch gain (pts)",
           "top1_sd": "top1 sd over seeds (pts)", "tflm_top1": "TFLM top1 %",
           "finetune_fp32_top1": "fp32 fine-tuned alike top1 % (held-out)",
           "top1_drop_vs_finetune_fp32": "top1 drop vs fp32 fine-tuned alike (pts, held-out)"}


def format_value(key: str, value) -> str:
    """A column's value as a report's table shows it ("" for unknown)."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    if key in PERCENT:
        return f"{100 * value:.2f}"
    if key in ("size_bytes", "gzip_bytes", "arena_bytes"):
        return f"{value / 1e6:.3f}"
    if key == "size_ratio" or "_speedup_t" in key:
        return f"{value:.2f}x"
    if key == "macs":
        return f"{value / 1e6:.2f}"
    if key == "params":
        return f"{value:,}"
    if "_ms_t" in key or key.endswith("_mb"):
        return f"{value:.3f}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
