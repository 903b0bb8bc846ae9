"""The quantized-vs-float report of a run: one row per recipe, written as JSON, CSV and Markdown.

Assembles what was measured (exports.json, eval.json, bench/*.json, model_info.json); it measures nothing itself.
Ratios are against the fp32 row of the same run. Latency columns carry the thread count (median_ms_t1) and the
target, so host and phone numbers sit side by side: host columns are bare with XNNPACK (the default) and prefixed
by the delegate otherwise (cpu_median_ms_t1); phone columns are prefixed by the phone's name and the delegate
(google_pixel_7_gs201_cpu_median_ms_t1), so runs with several delegates never overwrite each other. Where a
benchmark_model version printed no median (TF 2.x builds print only the mean), the phone's column is `mean_ms_t<N>`:
a mean is never shown as a median.

A recipe with extra training (QAT, pruning) has, beside `top1_drop` against the run's fp32 file, `finetune_fp32_top1`
and `top1_drop_vs_finetune_fp32`: the fp32 model fine-tuned exactly as the recipe's model was, and the recipe's file,
both scored on the held-out images the export validates with (converters.export), so the drop is quantization's (and
pruning's) own effect, not the fine-tune's. Unknown stays unknown: a record from before these figures were kept
gives None (`-` in the Markdown table), never 0.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from tflkit.core.fileio import atomic_write_text
from tflkit.core.runrecords import load_bench, load_evals, load_mcu, load_model_info
from tflkit.mcu.columns import mcu_columns

BASE_COLUMNS = ["model", "dataset", "recipe", "status", "size_bytes", "size_ratio", "params", "macs", "top1",
                "top1_drop", "top5", "agreement"]
# Recipes with extra training, against the fp32 model fine-tuned alike (on the export's held-out images); shown after
# top1_drop when any row had extra training
FINETUNE_COLUMNS = ["finetune_fp32_top1", "top1_drop_vs_finetune_fp32"]
# What those figures rest on, for the JSON/CSV and the note under the Markdown table (not table columns there)
FINETUNE_DETAIL = ["heldout_top1", "fp32_heldout_top1", "heldout_images", "heldout_split"]


def _target_prefix(result) -> str:
    if result.target == "host":
        return "" if result.delegate == "xnnpack" else f"{result.delegate}_"
    name = result.device or result.target.split(":", 1)[-1]
    return re.sub(r"[^a-z0-9]+", "_", f"{name} {result.delegate}".lower()).strip("_") + "_"


def build_rows(run_dir) -> list[dict]:
    from tflkit.training.loop import load_run_config

    config = load_run_config(run_dir)
    info = load_model_info(run_dir)
    evals = load_evals(run_dir)
    bench = load_bench(run_dir)
    mcu = load_mcu(run_dir)
    rows = []
    for export in _exports_and_unrecorded_files(run_dir):
        name = Path(export["path"]).name if export.get("path") else None
        row = {"model": config.model, "dataset": config.dataset, "recipe": export["recipe"],
               "status": export["status"], "size_bytes": export.get("size_bytes"), "params": info.get("params"),
               "file": name, "message": export.get("message", "")}
        trained = export.get("fine_tune") or {}  # QAT / pruning: the extra training this file had
        row["finetune_steps"] = trained.get("steps")
        row["finetune_epochs"] = trained.get("epochs")
        if trained:
            row.update(_finetune_reference(trained))
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
        if name in mcu:
            row.update(mcu_columns(mcu[name]))
        if export["status"] == "ok" and export["recipe"].startswith(("static_", "qat_", "prune")):
            from tflkit.tflite.inspect import float_ops

            row["float_ops"] = ",".join(float_ops(export["path"])) if Path(export["path"]).is_file() else ""
        if row["status"] == "ok":
            row["missing"] = _missing_figures(row)
        rows.append(row)
    _add_ratios(rows)
    return rows


def _finetune_reference(trained: dict) -> dict:
    """The recipe's file against the fp32 model fine-tuned alike, both on the held-out images (None: not recorded)."""
    reference, own = trained.get("fp32_same_finetune_top1"), trained.get("heldout_top1")
    return {"finetune_fp32_top1": reference,
            "top1_drop_vs_finetune_fp32": reference - own if reference is not None and own is not None else None,
            "heldout_top1": own, "fp32_heldout_top1": trained.get("fp32_heldout_top1"),
            "heldout_images": trained.get("heldout_images"), "heldout_split": trained.get("heldout_split")}


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
    tail = ["finetune_steps", "finetune_epochs", *FINETUNE_DETAIL, "worst_layer", "float_ops", "missing", "file",
            "message"]
    present = {k for r in rows for k in r}
    extra = sorted(present - set(BASE_COLUMNS) - set(FINETUNE_COLUMNS) - set(tail),
                   key=lambda k: (not k.startswith(("median", "p95", "speedup", "mean")), k.split("_t")[-1], k))
    after_drop = BASE_COLUMNS.index("top1_drop") + 1
    base = BASE_COLUMNS[:after_drop] + [c for c in FINETUNE_COLUMNS if c in present] + BASE_COLUMNS[after_drop:]
    return base + extra + [c for c in tail if c in present or c not in FINETUNE_DETAIL]


def _fmt(key: str, value) -> str:
    if value is None or value == "":
        return ""
    if key in ("top1", "top5", "top1_drop", "agreement", "tflm_top1", *FINETUNE_COLUMNS):
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


def _cell(row: dict, key: str) -> str:
    if key in FINETUNE_COLUMNS and row.get(key) is None and row.get("finetune_steps") is not None:
        return "-"  # a recipe with extra training whose reference was not recorded: unknown, not 0
    return _fmt(key, row.get(key))


def to_markdown(rows: list[dict]) -> str:
    trained = [r for r in rows if r.get("finetune_steps") is not None]
    per_board = [c for c in columns(rows) if c.startswith(("fits_", "vela_")) and c != "fits_on"]  # in JSON/CSV
    cols = [c for c in columns(rows) if c not in ("file", "model", "dataset", *FINETUNE_DETAIL, *per_board)
            and (any(r.get(c) not in (None, "") for r in rows) or (c in FINETUNE_COLUMNS and trained))]
    header = {"top1": "top1 %", "top5": "top5 %", "top1_drop": "top1 drop (pts)", "macs": "MACs",
              "agreement": "agreement %", "finetune_fp32_top1": "fp32 fine-tuned alike top1 % (held-out)",
              "top1_drop_vs_finetune_fp32": "top1 drop vs fp32 fine-tuned alike (pts, held-out)"}
    lines = []
    if rows:
        lines.append(f"**{rows[0]['model']}** on **{rows[0]['dataset']}**\n")
    lines.append("| " + " | ".join(header.get(c, c) for c in cols) + " |")
    lines.append("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        lines.append("| " + " | ".join(_cell(r, c) for c in cols) + " |")
    incomplete = [r for r in rows if r.get("missing")]
    if incomplete:
        lines.append("")
        lines.append("Missing figures: " + "; ".join(f"{r['recipe']}: {r['missing']}" for r in incomplete)
                     + " (run `tflkit eval` / `tflkit bench` on those files, or `tflkit report` with measuring on)")
    if trained:
        lines.append("")
        lines.append("finetune_steps / finetune_epochs: extra training (tfmot fine-tune on the run's own training "
                     "images) that QAT and pruning files had and the others did not. `top1 drop` compares them with "
                     "the run's fp32 file, which had none, so it mixes the fine-tune's effect with quantization's; "
                     "`top1 drop vs fp32 fine-tuned alike` compares them with the fp32 model fine-tuned exactly the "
                     "same way (steps, batch, lr, data order, seed), which leaves quantization's (and pruning's) own.")
        lines.extend(_finetune_notes(trained))
    return "\n".join(lines) + "\n"


def _finetune_notes(trained: list[dict]) -> list[str]:
    notes = []
    for r in trained:
        if r.get("finetune_fp32_top1") is None:
            notes.append(f"- {r['recipe']}: -: no fp32 fine-tuned alike in its record (converted before it was kept; "
                         f"`tflkit convert RUN --recipe {r['recipe']} --force` measures it)")
            continue
        if r.get("heldout_top1") is None:  # the file itself was not scored (its conversion or validation failed)
            continue
        before = (f", the run's fp32 model {_fmt('top1', r['fp32_heldout_top1'])}%"
                  if r.get("fp32_heldout_top1") is not None else "")
        notes.append(f"- {r['recipe']}: on the {r['heldout_images']} {r['heldout_split']} images the export validates "
                     f"with: this file {_fmt('top1', r['heldout_top1'])}%, the fp32 model fine-tuned alike "
                     f"{_fmt('top1', r['finetune_fp32_top1'])}%{before}")
    return [""] + notes if notes else []


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
