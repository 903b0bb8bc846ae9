"""The quantized-vs-float report of a run: one row per recipe, written as JSON, CSV and Markdown.

Assembles what was measured (exports.json, eval.json, bench/*.json, model_info.json); it measures nothing itself.
Ratios are against the fp32 row of the same run. Latency columns carry the thread count (median_ms_t1) and the
target, so host and phone numbers sit side by side: host columns are bare with XNNPACK (the default) and prefixed
by the delegate otherwise (cpu_median_ms_t1); phone columns are prefixed by the phone's name and the delegate
(google_pixel_7_gs201_cpu_median_ms_t1), so runs with several delegates never overwrite each other. Where a
benchmark_model version printed no median (TF 2.x builds print only the mean), the phone's column is `mean_ms_t<N>`:
a mean is never shown as a median.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from tflkit.fileio import atomic_write_text
from tflkit.runrecords import load_bench, load_evals, load_model_info

BASE_COLUMNS = ["model", "dataset", "recipe", "status", "size_bytes", "size_ratio", "params", "macs", "top1",
                "top1_drop", "top5", "agreement"]


def _target_prefix(result) -> str:
    if result.target == "host":
        return "" if result.delegate == "xnnpack" else f"{result.delegate}_"
    name = result.device or result.target.split(":", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "_", f"{name} {result.delegate}".lower()).strip("_") + "_"


def build_rows(run_dir) -> list[dict]:
    from tflkit.training import load_run_config

    config = load_run_config(run_dir)
    info = load_model_info(run_dir)
    evals = load_evals(run_dir)
    bench = load_bench(run_dir)
    rows = []
    for export in _exports_and_unrecorded_files(run_dir):
        name = Path(export["path"]).name if export.get("path") else None
        row = {"model": config.model, "dataset": config.dataset, "recipe": export["recipe"],
               "status": export["status"], "size_bytes": export.get("size_bytes"), "params": info.get("params"),
               "file": name, "message": export.get("message", "")}
        trained = export.get("fine_tune") or {}  # QAT / pruning: the extra training this file had
        row["finetune_steps"] = trained.get("steps")
        row["finetune_epochs"] = trained.get("epochs")
        validation = export.get("validation") or {}  # converters.validate: vs the float model, held-out images
        row["agreement"] = validation.get("agreement")
        row["worst_layer"] = validation.get("worst_layer") or None
        if name in evals:
            row["top1"] = evals[name]["top1"]
            row["top5"] = evals[name]["top5"]
        for r in bench:
            if r.model != name:
                continue
            prefix = _target_prefix(r)
            if not r.ok:
                if r.target == "host":  # the file does not run here: that is the row's status
                    row["status"] = row["status"] if row["status"] != "ok" else r.status
                    row["message"] = row["message"] or r.message
                else:  # one phone/delegate/thread run failed: the recipe itself (and its ratios) still stand
                    note = f"{prefix}t{r.threads}: {r.status}"
                    row["message"] = f"{row['message']}; {note}" if row["message"] else note
                continue
            if r.median_ms is not None:
                row[f"{prefix}median_ms_t{r.threads}"] = r.median_ms
            elif r.mean_ms is not None:
                row[f"{prefix}mean_ms_t{r.threads}"] = r.mean_ms
            if r.p95_ms is not None:
                row[f"{prefix}p95_ms_t{r.threads}"] = r.p95_ms
            if r.target == "host" and r.macs is not None:
                row["macs"] = r.macs
            if r.target == "host" and r.delegate == "xnnpack" and r.partitions is not None:
                row["partitions"] = r.partitions  # XNNPACK partitions: 1 = the whole graph delegated
            if r.target == "host" and r.arena_bytes is not None:
                row["arena_bytes"] = r.arena_bytes  # planned activation memory (RAM) beside size_bytes (flash)
        if export["status"] == "ok" and export["recipe"].startswith(("static_", "qat_", "prune")):
            from tflkit.tflite_inspect import float_ops

            row["float_ops"] = ",".join(float_ops(export["path"])) if Path(export["path"]).is_file() else ""
        if row["status"] == "ok":
            row["missing"] = _missing_figures(row)
        rows.append(row)
    _add_ratios(rows)
    return rows


def _exports_and_unrecorded_files(run_dir) -> list[dict]:
    """The export records, then every .tflite in tflite/ that has none (converted by a run killed before it
    could record it, or copied in): a file on disk is never left out of the report."""
    from converters.export import load_export_record, recipe_of_file, tflite_dir

    exports = load_export_record(run_dir)
    known = {Path(e["path"]).name for e in exports if e.get("path")}
    for path in sorted(tflite_dir(run_dir).glob("*.tflite")):
        if path.name not in known:
            exports.append({"recipe": recipe_of_file(path), "status": "ok", "path": str(path),
                            "size_bytes": path.stat().st_size, "message": "no export record (not validated)"})
    return exports


def _missing_figures(row: dict) -> str:
    """Which measurements an ok row still lacks: `tflkit eval` / `tflkit bench` (or `report` without
    --no-measure) fill them in."""
    missing = [] if row.get("top1") is not None else ["top1"]
    if not any("_ms_t" in key for key in row):
        missing.append("latency")
    if row.get("agreement") is None:
        missing.append("agreement")
    return ",".join(missing)


def _add_ratios(rows: list[dict]) -> None:
    base = next((r for r in rows if r["recipe"] == "fp32" and r["status"] == "ok"), None)
    if base is None:
        return
    for row in rows:
        if row.get("size_bytes") and base.get("size_bytes"):
            row["size_ratio"] = row["size_bytes"] / base["size_bytes"]
        if row.get("top1") is not None and base.get("top1") is not None:
            row["top1_drop"] = base["top1"] - row["top1"]
        for key in list(row):
            if ("median_ms_t" in key or "mean_ms_t" in key) and base.get(key) and row[key]:
                row[re.sub(r"(median|mean)_ms", "speedup", key)] = base[key] / row[key]


def columns(rows: list[dict]) -> list[str]:
    tail = ["finetune_steps", "finetune_epochs", "worst_layer", "float_ops", "missing", "file", "message"]
    extra = sorted({k for r in rows for k in r} - set(BASE_COLUMNS) - set(tail),
                   key=lambda k: (not k.startswith(("median", "p95", "speedup", "mean")), k.split("_t")[-1], k))
    return BASE_COLUMNS + extra + tail


def _fmt(key: str, value) -> str:
    if value is None or value == "":
        return ""
    if key in ("top1", "top5", "top1_drop", "agreement"):
        return f"{100 * value:.2f}"
    if key == "size_ratio" or key.startswith("speedup"):
        return f"{value:.2f}x"
    if "_ms_" in key:
        return f"{value:.3f}"
    if key == "macs":
        return f"{value / 1e6:.2f}M"
    if key == "params":
        return f"{value:,}"
    return str(value)


def to_markdown(rows: list[dict]) -> str:
    cols = [c for c in columns(rows) if c not in ("file", "model", "dataset") and any(r.get(c) not in (None, "")
                                                                                       for r in rows)]
    header = {"top1": "top1 %", "top5": "top5 %", "top1_drop": "top1 drop (pts)", "macs": "MACs",
              "agreement": "agreement %"}
    lines = []
    if rows:
        lines.append(f"**{rows[0]['model']}** on **{rows[0]['dataset']}**\n")
    lines.append("| " + " | ".join(header.get(c, c) for c in cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        lines.append("| " + " | ".join(_fmt(c, r.get(c)) for c in cols) + " |")
    incomplete = [r for r in rows if r.get("missing")]
    if incomplete:
        lines.append("")
        lines.append("Missing figures: " + "; ".join(f"{r['recipe']}: {r['missing']}" for r in incomplete)
                     + " (run `tflkit eval` / `tflkit bench` on those files, or `tflkit report` with measuring on)")
    if any(r.get("finetune_steps") for r in rows):
        lines.append("")
        lines.append("finetune_steps / finetune_epochs: extra training (tfmot fine-tune on the run's own training "
                     "images) that QAT and pruning files had and the others did not.")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(rows), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_report(run_dir) -> tuple[list[dict], str]:
    rows = build_rows(run_dir)
    run_dir = Path(run_dir)
    markdown = to_markdown(rows)
    atomic_write_text(run_dir / "report.json", json.dumps(rows, indent=2) + "\n")
    atomic_write_text(run_dir / "report.csv", to_csv(rows))
    atomic_write_text(run_dir / "report.md", markdown)
    return rows, markdown
