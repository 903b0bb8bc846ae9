"""The quantized-vs-float report of a run: its rows (tflkit.pipeline.rows, the columns a study's results have too)
written as JSON, CSV and Markdown. It measures nothing itself; ratios are against the fp32 row of the same run.
Latency columns carry the target and the thread count (host_median_ms_t1, pixel_7_gs201_cpu_median_ms_t1), so host
and phone numbers sit side by side; where a benchmark_model version printed no median (TF 2.x builds print only the
mean), the phone's column is `..._mean_ms_t<N>`: a mean is never shown as a median.

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

from tflkit.core.fileio import atomic_write_text
from tflkit.core.run import Run
from tflkit.pipeline.rows import FINETUNE, FINETUNE_DETAIL, HEADERS, columns, format_value, run_rows


def _cell(row: dict, key: str) -> str:
    if key in FINETUNE and row.get(key) is None and row.get("finetune_steps") is not None:
        return "-"  # a recipe with extra training whose reference was not recorded: unknown, not 0
    return format_value(key, row.get(key))


def to_markdown(rows: list[dict]) -> str:
    trained = [r for r in rows if r.get("finetune_steps") is not None]
    per_board = [c for c in columns(rows) if c.startswith(("fits_", "vela_")) and c != "fits_on"]  # in JSON/CSV
    # the host process's own peak RSS and the partitions at every thread count but the first stay in JSON/CSV: the
    # table keeps what the model adds (rss_delta) and how XNNPACK takes it once
    partitions = sorted(c for c in columns(rows) if c.startswith("host_partitions_t"))[1:]
    hidden = ("file", "model", "dataset", "eval_images", "weight_sparsity", "host_peak_memory_mb", *partitions,
              *FINETUNE_DETAIL, *per_board)
    cols = [c for c in columns(rows) if c not in hidden
            and (any(r.get(c) not in (None, "") for r in rows) or (c in FINETUNE and trained))]
    lines = []
    if rows:
        lines.append(f"**{rows[0]['model']}** on **{rows[0]['dataset']}**\n")
    lines.append("| " + " | ".join(HEADERS.get(c, c) for c in cols) + " |")
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
        before = (f", the run's fp32 model {format_value('top1', r['fp32_heldout_top1'])}%"
                  if r.get("fp32_heldout_top1") is not None else "")
        notes.append(f"- {r['recipe']}: on the {r['heldout_images']} {r['heldout_split']} images the export validates "
                     f"with: this file {format_value('top1', r['heldout_top1'])}%, the fp32 model fine-tuned alike "
                     f"{format_value('top1', r['finetune_fp32_top1'])}%{before}")
    return [""] + notes if notes else []


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(rows), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_report(run) -> tuple[list[dict], str]:
    """report.json/.csv/.md of `run` (a Run or its directory); returns the rows and the markdown."""
    run = Run.of(run)
    rows = run_rows(run)
    markdown = to_markdown(rows)
    atomic_write_text(run.report_path("json"), json.dumps(rows, indent=2) + "\n")
    atomic_write_text(run.report_path("csv"), to_csv(rows))
    atomic_write_text(run.report_path("md"), markdown)
    return rows, markdown
