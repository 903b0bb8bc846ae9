"""`tflkit study report DIR`: the study's cross-model report from DIR/study.db.

Writes report.html (one self-contained file: tables, the claims and the plots inline as PNG data URIs; no script,
nothing fetched), report.md (the same tables and claims; the plots are in the HTML), results.csv and results.json
(the rows of tflkit.study.rows.study_rows, raw values). It measures nothing: a figure that was not measured is an
empty cell, never 0, and a failed stage or file is a row with its status and reason.

Both open with the answer (tflkit.study.recommend: the file to deploy per target and why, or "no model learned"),
then a short table of the Pareto front, the study's budget, the claims, the microcontroller fits and the plots; the
full table and the stages and provenance are collapsed (<details>). No path of this machine shows: a path under a
study directory is made relative to the report, any other absolute path is cut to its file name (PathScrubber).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from tflkit.core.errors import UsageError
from tflkit.core.fileio import atomic_write_text
from tflkit.pipeline.rows import HEADERS, format_value
from tflkit.study.claims import check_claims
from tflkit.study.plots import make_plots, model_colors
from tflkit.study.recommend import recommend
from tflkit.study.rows import columns, study_rows
from tflkit.study.store import open_store

# cell is model.dataset.regime; the interval shows beside top-1; the rest stays in the CSV
TABLE_HIDDEN = ("cell", "eval_images", "classes", "top1_lo", "top1_hi", "seed", "top1_seeds")


def load_study(out_dir) -> tuple[list[dict], list[dict], dict]:
    """(rows, stages, meta) of the study in `out_dir`; one clear error when there is none."""
    db = Path(out_dir) / "study.db"
    if not db.is_file():  # open_store would create an empty one
        raise UsageError(f"no study.db in {out_dir}: run `tflkit study run STUDY.yaml --out {out_dir}` first")
    with open_store(out_dir) as store:
        rows = study_rows(store)
        stages = store.stages()
        files = store.files()
        meta = {r["key"]: json.loads(r["value"]) for r in store.db.execute("SELECT key, value FROM meta")}
    meta["_files"] = files
    return rows, stages, meta


def load_rows(out_dir) -> list[dict]:
    """The study's rows (for `tflkit pick`)."""
    return load_study(out_dir)[0]


def load_studies(dirs: list[Path]) -> tuple[list[dict], list[dict], list[dict], dict, str]:
    """(rows, stages, files, meta, budget) of one study, or of several joined: their cells side by side (a cell id
    in two of them is an error), the meta naming each study, the budget line of each."""
    loaded = []
    for study_dir in dirs:
        rows, stages, meta = load_study(study_dir)
        loaded.append((study_dir, rows, stages, meta.pop("_files"), meta))
    if len(loaded) == 1:
        _, rows, stages, files, meta = loaded[0]
        return rows, stages, files, meta, training_budget(meta)
    seen: dict[str, Path] = {}
    for study_dir, rows, *_ in loaded:
        for cell in dict.fromkeys(r["cell"] for r in rows):  # in row order: the same error every time
            if cell in seen:
                raise UsageError(f"cell {cell} is in both {seen[cell]} and {study_dir}; a joined report needs "
                                 f"distinct cells")
            seen[cell] = study_dir
    names = [m.get("name") or d.name for d, *_, m in loaded]
    meta = {"name": " + ".join(names), "studies": {n: str(d) for n, (d, *_) in zip(names, loaded)},
            "digests": {n: m.get("digest") for n, (*_, m) in zip(names, loaded)}}
    budget = "; ".join(f"{n}: {training_budget(m) or 'not recorded'}" for n, (*_, m) in zip(names, loaded))
    return ([r for _, rows, *_ in loaded for r in rows], [s for _, _, stages, *_ in loaded for s in stages],
            [f for *_, files, _ in loaded for f in files], meta, budget)


def write_study_report(out_dir, log=print, more=(), into=None) -> dict[str, Path]:
    """The report of the study in `out_dir`, written there; with `more` study directories, one report of them all,
    written to `into` (a directory of its own, so that no study's own report is overwritten)."""
    dirs = [Path(out_dir), *map(Path, more)]
    twice = [d for i, d in enumerate(dirs) if d.resolve() in {e.resolve() for e in dirs[:i]}]
    if twice:
        raise UsageError(f"{twice[0]} is given twice")
    if more and not into:
        raise UsageError("a report of several studies needs --into DIR (a directory of its own)")
    dest = Path(into) if into else dirs[0]
    if more and dest.resolve() in {d.resolve() for d in dirs}:
        raise UsageError(f"--into {dest} is one of the studies; a joined report goes to a directory of its own")
    rows, stages, files, meta, budget = load_studies(dirs)
    histories = {s["cell"]: (s["result"] or {}).get("history") or {} for s in stages
                 if s["stage"] == "train" and s["status"] == "ok" and isinstance(s["result"], dict)}
    advice = recommend(rows)
    colors = model_colors(rows)  # once: a model has one colour in every plot and key
    plots, plot_notes = make_plots(rows, histories, budget, colors=colors, learned=advice["learned"])
    report = StudyReport(title=f"Study {meta.get('name') or dest.name}", rows=rows, claims=check_claims(rows),
                         plots=plots, plot_notes=plot_notes, provenance=provenance_summary(stages, meta),
                         stages=stages, files=files, budget=budget, advice=advice, colors=colors,
                         paths=PathScrubber.of(dirs, dest))
    dest.mkdir(parents=True, exist_ok=True)
    paths = {"html": dest / "report.html", "md": dest / "report.md", "csv": dest / "results.csv",
             "json": dest / "results.json"}
    atomic_write_text(paths["json"], json.dumps(rows, indent=2) + "\n")
    atomic_write_text(paths["csv"], to_csv(rows))
    atomic_write_text(paths["md"], to_markdown(report))
    atomic_write_text(paths["html"], to_html(report))
    for path in paths.values():
        log(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return paths


@dataclass(frozen=True)
class StudyReport:
    """Everything report.md and report.html show, gathered once: both renderers read the same figures."""

    title: str
    rows: list[dict]
    claims: list[dict]
    plots: list
    plot_notes: list[str]
    provenance: list[tuple[str, str]]
    stages: list[dict]
    files: list[dict]
    budget: str
    advice: dict  # tflkit.study.recommend.recommend
    colors: dict  # model -> "#rrggbb", tflkit.study.plots.model_colors
    paths: PathScrubber


# a path of two or more parts from the root, not inside a word, a relative path or a URL (nor base64: its "/" always
# follows a letter, digit, "+" or "/")
ABSOLUTE = re.compile(r"(?<![\w.~+=:/-])(?:/[\w.+@-]+){2,}/?")


@dataclass(frozen=True)
class PathScrubber:
    """Makes the report's text free of this machine's paths: a path under a study directory (as given, resolved, or
    as the study recorded it when it ran elsewhere) becomes relative to the report's directory; any other absolute
    path becomes its file name."""

    roots: tuple[tuple[str, str], ...]  # (a spelling of a study directory, its path relative to the report)

    @classmethod
    def of(cls, dirs: list[Path], dest: Path) -> PathScrubber:
        roots = {}
        for study_dir in dirs:
            rel = os.path.relpath(study_dir.resolve(), dest.resolve())
            for spelling in (str(study_dir), str(study_dir.resolve()), *_recorded_dirs(study_dir)):
                if spelling not in (".", "", "/"):
                    roots[spelling.rstrip("/")] = "" if rel == "." else rel
        return cls(tuple(sorted(roots.items(), key=lambda kv: -len(kv[0]))))

    def __call__(self, text: str) -> str:
        for root, rel in self.roots:
            text = re.sub(rf"(?<![\w.~/-]){re.escape(root)}(/|(?![\w.-]))",
                          lambda m, rel=rel: (f"{rel}/" if rel else "") if m.group(1) else (rel or "."), text)
        return ABSOLUTE.sub(lambda m: Path(m.group(0).rstrip("/")).name, text)


def _recorded_dirs(study_dir: Path) -> list[str]:
    """The study directory as its cells' run directories recorded it (`<study>/cells/<cell>`), wherever it ran."""
    with open_store(study_dir) as store:
        return sorted({str(Path(c["run_dir"]).parent.parent) for c in store.cells() if c.get("run_dir")})


# --- summaries ---------------------------------------------------------------------------------------------------

def training_budget(meta: dict) -> str:
    """The training budget every cell shared, from the study spec: what a reader needs to weigh the accuracies."""
    spec = meta.get("spec")
    if not isinstance(spec, dict):
        return ""
    training = spec.get("training") or {}
    parts = [f"{k} {training[k]}" for k in ("epochs", "finetune_epochs", "image_size", "batch_size", "train_limit",
                                              "lr", "lr_schedule", "augment") if training.get(k) is not None]
    if spec.get("overrides"):  # each with its settings: a reader weighs that model's figures by them
        parts.append("per-model overrides: " + "; ".join(
            f"{model} " + ", ".join(f"{k} {v}" for k, v in sorted((settings or {}).items()))
            for model, settings in sorted(spec["overrides"].items())))
    text = ", ".join(parts)
    if meta.get("max_steps"):  # tflkit study run --max-steps: a runnability check, not a measurement
        text = (f"a --max-steps {meta['max_steps']} check (every cell cut to {meta['max_steps']} steps, evaluated on "
                f"a few test images): it shows the study runs; its figures and claims mean nothing. Declared: {text}")
    return text


PER_ITEM = ("cell", "file_sha256")  # provenance keys the Stages and Files tables already show per item


def provenance_summary(stages: list[dict], meta: dict) -> list[tuple[str, str]]:
    """(key, value) of the stages' provenance: one value where every stage agrees, else each value and its stages."""
    values: dict[str, dict[str, list[str]]] = {}
    for stage in stages:
        for key, value in (stage.get("provenance") or {}).items():
            if key in PER_ITEM:
                continue
            shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            values.setdefault(key, {}).setdefault(shown, []).append(f"{stage['cell']}:{stage['stage']}")
    out = []
    for key, value in sorted(meta.items()):
        if key == "created" and isinstance(value, (int, float)):
            value = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))
        out.append((f"meta.{key}", value if isinstance(value, str) else json.dumps(value, sort_keys=True)))
    for key in sorted(values):
        seen = values[key]
        if len(seen) == 1:
            out.append((key, next(iter(seen))))
        else:
            out.append((key, " | ".join(f"{v} ({len(where)} stages, e.g. {where[0]})" for v, where in seen.items())))
    return out


# --- formats -----------------------------------------------------------------------------------------------------

def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns(rows), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def cell_text(key: str, row: dict) -> str:
    """A table cell: format_value, with top-1's 95% interval as +/- its larger half (the CSV keeps both bounds)."""
    text = format_value(key, row.get(key))
    if key == "top1" and text and row.get("top1_lo") is not None and row.get("top1_hi") is not None:
        half = max(row["top1_hi"] - row["top1"], row["top1"] - row["top1_lo"])
        text += f" ±{100 * half:.2f}"
    if key == "last_gain" and text:
        text = f"{row[key]:+.2f}"
    return text


def table_columns(rows: list[dict]) -> list[str]:
    """The row columns worth a table column (TABLE_HIDDEN aside); empty columns are left out."""
    return [c for c in columns(rows) if c not in TABLE_HIDDEN and not c.startswith(("fits_", "vela_"))
            and c != "tflm" and any(r.get(c) not in (None, "") for r in rows)]


def mcu_table(rows: list[dict]) -> tuple[list[str], list[list[str]]] | None:
    """The "fits on" table of a study with `mcu:`: one row per file with TFLite Micro's figures, one column per
    board (yes, or the budget it breaks); None when nothing was measured on microcontrollers."""
    measured = [r for r in rows if r.get("tflm")]
    if not measured:
        return None
    boards = sorted({k[len("fits_"):-len("_breaks")] for r in measured for k in r
                     if k.startswith("fits_") and k.endswith("_breaks")})
    head = ["model", "dataset", "recipe", "TFLM", "TFLM arena KB", "planned arena KB", "file KB", "TFLM top-1 %",
            "LiteRT top-1 % (same images)", "agreement %", *boards]
    body = []
    for r in measured:
        kb = lambda v: "" if v is None else f"{v / 1024:,.1f}"  # noqa: E731
        pct = lambda v: "" if v is None else f"{100 * v:.2f}"  # noqa: E731
        fits = [_fit_cell(r, b) for b in boards]
        body.append([r["model"], r["dataset"], r["recipe"], r["tflm"], kb(r.get("tflm_arena_bytes")),
                     kb(r.get("arena_bytes")), kb(r.get("size_bytes")), pct(r.get("tflm_top1")),
                     pct(r.get("tflm_litert_top1")), pct(r.get("tflm_agreement")), *fits])
    return head, body


def _fit_cell(row: dict, board: str) -> str:
    fits, breaks = row.get(f"fits_{board}"), row.get(f"fits_{board}_breaks") or ""
    if fits is None:
        return ""
    if fits:
        return "yes"
    return "no: does not run under TFLM" if breaks.startswith("does not run") else f"no: {breaks}"


MCU_NOTE = ("TFLM arena: the smallest tensor arena (16-byte aligned, inputs and outputs included) with which TFLite "
            "Micro allocates and invokes the file, found by bisection and checked at a byte less; planned arena: "
            "tflkit's plan of LiteRT's activations, which leaves out TFLM's own per-tensor and per-node records. "
            "A board column with `_npu` is the board's Ethos-U by Vela's figures. TFLM top-1 on the stratified "
            "subset the study's mcu.eval_limit sets.")


# --- the answer: what both renderers show first ----------------------------------------------------------------

ANSWER_LEAD = ("At the study's default constraints (a file that learned and was measured on the target; on a board, "
               "one that fits it): the most accurate file, the faster of equals, as `tflkit pick` ranks them. "
               "`tflkit pick DIR --max-latency-ms N --max-size-mb N` applies a budget.")


def _top1_text(cand: dict) -> str:
    text = f"{100 * cand['top1']:.2f}%"
    if cand.get("top1_lo") is not None and cand.get("top1_hi") is not None:
        text += f" (95% interval {100 * cand['top1_lo']:.2f}-{100 * cand['top1_hi']:.2f})"
    if cand.get("seeds") and cand["seeds"] > 1:
        text += f", mean of {cand['seeds']} seeds"
    return text


def answer_items(advice: dict) -> list[dict]:
    """Each recommendation as display text: target, choice (model (regime, recipe)) or None, figures, why."""
    several = len(advice["datasets"]) > 1
    items = []
    for rec in advice["recommendations"]:
        best = rec["best"]
        target = rec["target"] + (f", {rec['dataset']}" if several else "")
        if best is None:
            items.append({"target": target, "model": None, "choice": None, "figures": "", "why": rec["why"]})
            continue
        figures = [f"top-1 {_top1_text(best)}"]
        if rec["kind"] == "board":
            if best.get("tflm_arena_kb") is not None:
                figures.append(f"TFLM arena {best['tflm_arena_kb']:,.1f} KB")
            if best.get("flash_kb") is not None:
                figures.append(f"file {best['flash_kb']:,.1f} KB")
            if best.get("fits_on"):
                figures.append(f"fits on {best['fits_on']}")
            figures.append(f"{best['latency_ms']:.3f} ms {best['latency_statistic']} on {rec['latency_from']}")
        else:
            figures.append(f"{best['latency_ms']:.3f} ms {best['latency_statistic']} per inference")
            if best.get("size_mb") is not None:
                figures.append(f"{best['size_mb']:.3f} MB")
        items.append({"target": target, "model": best["model"],
                      "choice": f"{best['model']} ({best['regime']}, {best['recipe']})", "figures": ", ".join(figures),
                      "why": rec["why"]})
    return items


def summary_table(report: StudyReport) -> tuple[str, list[str], list[list[str]]] | None:
    """(caption, head, body) of the short table at the top: the files on the top-1 vs latency Pareto front."""
    summary = report.advice.get("summary") or {}
    front = summary.get("candidates") or []
    if not front:
        return None
    several = len(report.advice["datasets"]) > 1
    tflm = any(c.get("tflm_arena_kb") is not None for c in front)
    head = [*(["dataset"] if several else []), "model", "regime", "recipe", "top-1 % (95% interval)",
            "latency ms", "size MB", "arena KB", *(["TFLM arena KB"] if tflm else [])]
    body = []
    for c in front:
        top1 = f"{100 * c['top1']:.2f}"
        if c.get("top1_lo") is not None and c.get("top1_hi") is not None:
            top1 += f" ({100 * c['top1_lo']:.2f}-{100 * c['top1_hi']:.2f})"
        body.append([*([c["dataset"]] if several else []), c["model"], c["regime"], c["recipe"], top1,
                     f"{c['latency_ms']:.3f}", "" if c["size_mb"] is None else f"{c['size_mb']:.3f}",
                     "" if c["arena_kb"] is None else f"{c['arena_kb']:,.1f}",
                     *(["" if c.get("tflm_arena_kb") is None else f"{c['tflm_arena_kb']:,.1f}"] if tflm else [])])
    caption = (f"The files on the top-1 vs latency Pareto front ({summary['target']}, median latency; each dataset "
               f"apart): no other file is both more accurate and faster. Best top-1 first; arena: the planned tensor "
               f"arena. Every file is in the full table under Results.")
    return caption, head, body


SUMMARY_NUMERIC = {"top-1 % (95% interval)", "latency ms", "size MB", "arena KB", "TFLM arena KB"}


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
            *("| " + " | ".join(_md_cell(v) for v in row) + " |" for row in body)]


def to_markdown(report: StudyReport) -> str:
    rows, advice = report.rows, report.advice
    lines = [f"# {report.title}", ""]
    if advice["learned"]:
        lines += ["## Recommendation", ""]
        for item in answer_items(advice):
            if item["choice"] is None:
                lines.append(f"- **{item['target']}**: nothing to recommend. {item['why']}")
            else:
                lines.append(f"- **{item['target']}**: **{item['choice']}**: {item['figures']}. {item['why']}")
        if not advice["recommendations"]:
            lines.append("No latency was measured: nothing to rank files by on a target.")
        lines += ["", ANSWER_LEAD]
    else:
        lines += ["## No model learned", "", advice["chance"]]
    table = summary_table(report)
    if table:
        caption, head, body = table
        lines += ["", "## Summary", "", caption, "", *_md_table(head, body)]
    lines += ["", "## Study", "", _summary(rows, report.stages, report.budget), ""]
    lines += ["## Claims", "", "| claim | verdict | criterion | evidence |", "|---|---|---|---|"]
    for c in report.claims:
        lines.append(f"| {_md_cell(c['claim'])} | **{c['verdict']}** | {_md_cell(c['criterion'])} | "
                     f"{_md_cell(c['evidence'])} |")
    mcu = mcu_table(rows)
    if mcu:
        head, body = mcu
        lines += ["", "## Microcontrollers: fits on", "", MCU_NOTE, "", *_md_table(head, body)]
    cols = table_columns(rows)
    lines += ["", "## Results", "", f"<details><summary>Full table: {len(rows)} rows, one per cell and recipe"
              "</summary>", "", "Empty: not measured. " + _units_note(), ""]
    lines += _md_table([HEADERS.get(c, c) for c in cols], [[cell_text(c, r) for c in cols] for r in rows])
    lines += ["", "</details>"]
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "### Failed", ""]
        lines += [f"- {r['cell']} {r['recipe']}: {r['status']}: {r.get('message') or 'no reason recorded'}"
                  for r in failed]
    lines += ["", "## Plots", "", "In report.html; model colours: "
              + ", ".join(f"{m} {c}" for m, c in report.colors.items()) + ".", ""]
    lines += [f"- **{p.title}**: {p.caption}" for p in report.plots]
    lines += [f"- {n}" for n in report.plot_notes]
    lines += ["", "## Appendix", "", "<details><summary>Stages, provenance and files</summary>", "", "### Stages", "",
              "| cell | stage | status | wall s | cpu s | message |", "|---|---|---|---|---|---|"]
    for st in report.stages:
        lines.append(f"| {st['cell']} | {st['stage']} | {st['status']} | {_seconds(st['wall_s'])} | "
                     f"{_seconds(st['cpu_s'])} | {_md_cell(st.get('message') or '')} |")
    lines += ["", "### Provenance", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {_md_cell(v)} |" for k, v in report.provenance]
    lines += ["", "### Files", "", "| cell | recipe | status | sha256 | path |", "|---|---|---|---|---|"]
    lines += [f"| {f['cell']} | {f['recipe']} | {f['status']} | {f.get('sha256') or ''} | {f.get('path') or ''} |"
              for f in report.files]
    lines += ["", "</details>"]
    return report.paths("\n".join(lines) + "\n")


def _summary(rows, stages, budget) -> str:
    ok = sum(1 for r in rows if r["status"] == "ok")
    cells = len({r["cell"] for r in rows})
    failed_stages = sum(1 for s in stages if s["status"] == "failed")
    running = sum(1 for s in stages if s["status"] == "running")
    text = (f"{len(rows)} files from {cells} cells: {ok} ok, {len(rows) - ok} not; {len(stages)} stages recorded "
            f"({failed_stages} failed, {running} unfinished).")
    if budget:
        text += f" Training budget: {budget}."
    text += _paper_gap(rows)
    chance = [r for r in rows if r["recipe"] == "fp32" and r["status"] == "ok" and r.get("at_chance")]
    if chance:
        text += (" Did not learn (fp32 top-1 at chance: within 3 standard errors of 1/classes; the claims do not use "
                 "their accuracy): " + ", ".join(f"{r['cell']} {100 * r['top1']:.2f}% with {r['classes']} classes"
                                                 for r in chance) + ".")
    return text + f" Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."


PAPER_BUDGET = "50 epochs on each full train split, early stopping on validation top-1"


def _paper_gap(rows: list[dict]) -> str:
    """One sentence: how far the budget is from the paper's, and what that does to the claims."""
    cells = {r["cell"]: r for r in rows if r["recipe"] == "fp32"}
    epochs = sorted({r["epochs"] for r in cells.values() if r.get("epochs")})
    climbing = sorted(c for c, r in cells.items() if r.get("convergence") == "still improving")
    if not cells:
        return ""
    trained = "an unrecorded number of"
    if epochs:
        trained = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}"
    text = f" The paper trained {PAPER_BUDGET}; these cells trained {trained} epochs"
    if climbing:
        return text + (f", and {len(climbing)} of {len(cells)} were still improving at their last epoch (over 1 point; "
                       f"{', '.join(climbing)}): an accuracy comparison that puts one of them below is undetermined, "
                       f"so the claims hold for this budget, not for the architectures.")
    return text + (", every one no longer improving at its last epoch: the claims hold for this budget; longer "
                   "training can still move them.")


def _units_note() -> str:
    return ("top1/top5/drop in % (drop: percentage points below the cell's fp32; top1 ± the larger half of its 95% "
            "interval on the test split); convergence: still improving when the last epoch added over 1 point to the "
            "best validation top-1; sizes in MB (10^6 bytes); MACs in "
            "millions; `<target>_median_ms_t<N>`: median latency per inference in ms at N threads (host: LiteRT "
            "with XNNPACK; phones: `<phone>_<delegate>`); `_p95_ms_t<N>`: 95th percentile.")


def _seconds(value) -> str:
    return "" if value is None else f"{value:.1f}"


CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1em 1.5em; color: #222; max-width: 1400px; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; overflow-wrap: break-word; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; overflow-wrap: normal; }
tr.failed td { background: #fff0f0; }
.scroll { overflow-x: auto; max-width: 100%; }
.answer { border-left: 4px solid #17692b; background: #f3faf4; padding: 0.4em 1em 0.6em; margin: 0 0 1em; }
.answer.none { border-left-color: #b00020; background: #fff4f4; }
.answer h2 { margin: 0.3em 0; }
.answer li { margin: 0.4em 0; }
.answer .note { font-size: 13px; color: #444; }
.verdict-true { color: #17692b; font-weight: bold; }
.verdict-false { color: #b00020; font-weight: bold; }
.verdict-undetermined { color: #8a6d00; font-weight: bold; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 13px; color: #444; max-width: 900px; }
ul.key { list-style: none; padding: 0; margin: 0.3em 0; font-size: 12px; display: flex; flex-wrap: wrap;
         gap: 0.3em 1em; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.3em; vertical-align: -0.1em; }
details > summary { cursor: pointer; font-weight: bold; margin: 0.5em 0; }
code { background: #f6f6f6; overflow-wrap: anywhere; }
"""


NUM, FAILED = ' class="num"', ' class="failed"'


def _e(text) -> str:
    """Text escaped for an attribute (no markup)."""
    return html.escape(str(text).replace("`", ""), quote=True)


def _t(text) -> str:
    """Text escaped for an element, its `code` spans (the Markdown's backticks) as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text), quote=False))


def _head(text: str) -> str:
    """A column head that may break after an underscore (host_median_ms_t1) rather than widen its column."""
    return _t(text).replace("_", "_<wbr>")


def _html_table(head: list[str], body: list[tuple[str, list[tuple[str, bool]]]], cls: str = "") -> str:
    """A table in a box of its own that scrolls sideways when it is wider than the page: `body` rows are
    (tr class, [(escaped cell text, numeric)])."""
    attr = f' class="{cls}"' if cls else ""
    out = [f'<div class="scroll"><table{attr}><thead><tr>' + "".join(f"<th>{_head(h)}</th>" for h in head)
           + "</tr></thead><tbody>"]
    for row_class, cells in body:
        out.append(f"<tr{row_class}>" + "".join(f"<td{NUM if num else ''}>{text}</td>" for text, num in cells)
                   + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _key(colors: dict, element_id: str = "") -> str:
    """The model colours as an HTML key: one item per model with its colour, as the plots draw it."""
    attr = f' id="{element_id}"' if element_id else ""
    return (f'<ul class="key"{attr}>' + "".join(
        f'<li class="key-model" data-model="{_e(m)}" data-color="{_e(c)}"><span class="swatch" '
        f'style="background:{_e(c)}"></span>{_t(m)}</li>' for m, c in colors.items()) + "</ul>")


def _answer_html(report: StudyReport) -> list[str]:
    advice = report.advice
    if not advice["learned"]:
        return ['<section id="no-model-learned" class="answer none"><h2>No model learned</h2>',
                f"<p>{_t(advice['chance'])}</p></section>"]
    out = ['<section id="recommendation" class="answer"><h2>Recommendation</h2>', "<ul>"]
    for item in answer_items(advice):
        if item["choice"] is None:
            out.append(f"<li><b>{_t(item['target'])}</b>: nothing to recommend. {_t(item['why'])}</li>")
        else:
            out.append(f'<li data-model="{_e(item["model"])}"><b>{_t(item["target"])}</b>: '
                       f"<b>{_t(item['choice'])}</b>: {_t(item['figures'])}. {_t(item['why'])}</li>")
    out.append("</ul>")
    if not advice["recommendations"]:
        out.append("<p>No latency was measured: nothing to rank files by on a target.</p>")
    out += [f'<p class="note">{_t(ANSWER_LEAD)}</p>', "</section>"]
    return out


def to_html(report: StudyReport) -> str:
    rows = report.rows
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{_t(report.title)}</title>",
           f"<style>{CSS}</style></head><body>", f"<h1>{_t(report.title)}</h1>", *_answer_html(report)]
    table = summary_table(report)
    if table:
        caption, head, body = table
        out += ['<h2 id="summary">Summary</h2>', f"<p>{_t(caption)}</p>",
                _html_table(head, [("", [(_t(v), h in SUMMARY_NUMERIC) for h, v in zip(head, r)]) for r in body],
                            "summary")]
    out += ['<h2 id="study">Study</h2>', f"<p>{_t(_summary(rows, report.stages, report.budget))}</p>",
            '<h2 id="claims">Claims</h2>']
    out.append(_html_table(["claim", "verdict", "criterion", "evidence"], [
        ("", [(_t(c["claim"]), False), (f'<span class="verdict-{_e(c["verdict"])}">{_t(c["verdict"])}</span>', False),
              (_t(c["criterion"]), False), (_t(c["evidence"]), False)]) for c in report.claims], "claims"))
    mcu = mcu_table(rows)
    if mcu:
        head, body = mcu
        out += ['<h2 id="mcu">Microcontrollers: fits on</h2>', f"<p>{_t(MCU_NOTE)}</p>",
                _html_table(head, [("", [(_t(v), False) for v in row]) for row in body])]
    out += ['<h2 id="plots">Plots</h2>', "<p>Model colours, the same in every plot:</p>",
            _key(report.colors, "model-colors")]
    images = {}
    for i, p in enumerate(report.plots):
        images[f"@@plot-{i}@@"] = base64.b64encode(p.png).decode("ascii")
        out.append(f'<figure id="plot-{i}"><img class="plot" alt="{_e(p.title)}" src="data:image/png;base64,'
                   f'@@plot-{i}@@">{_key(p.colors)}<figcaption><b>{_t(p.title)}.</b> {_t(p.caption)}'
                   "</figcaption></figure>")
    out += [f"<p>{_t(n)}</p>" for n in report.plot_notes]
    cols = table_columns(rows)
    out += ['<h2 id="results">Results</h2>',
            f"<details><summary>Full table: {len(rows)} rows, one per cell and recipe</summary>",
            f"<p>Empty: not measured. {_t(_units_note())}</p>"]
    out.append(_html_table([HEADERS.get(c, c) for c in cols], [
        ("" if r["status"] == "ok" else FAILED,
         [(_t(cell_text(c, r)), isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)) for c in cols])
        for r in rows], "results"))
    out.append("</details>")
    out += ['<h2 id="appendix">Appendix</h2>', "<details><summary>Stages, provenance and files</summary>",
            '<h3 id="stages">Stages</h3>']
    out.append(_html_table(["cell", "stage", "status", "wall s", "cpu s", "message"], [
        ("" if st["status"] == "ok" else FAILED,
         [(_t(st["cell"]), False), (_t(st["stage"]), False), (_t(st["status"]), False),
          (_seconds(st["wall_s"]), True), (_seconds(st["cpu_s"]), True), (_t(st.get("message") or ""), False)])
        for st in report.stages]))
    out.append('<h3 id="provenance">Provenance</h3>')
    out.append(_html_table(["key", "value"], [("", [(_t(k), False), (_t(v), False)]) for k, v in report.provenance]))
    out.append("<h4>Files</h4>")
    out.append(_html_table(["cell", "recipe", "status", "sha256", "path"], [
        ("", [(_t(f["cell"]), False), (_t(f["recipe"]), False), (_t(f["status"]), False),
              (f"<code>{_t(f.get('sha256') or '')}</code>", False), (_t(f.get("path") or ""), False)])
        for f in report.files]))
    out += ["</details>", "</body></html>"]
    page = report.paths("\n".join(out) + "\n")  # before the images go in: base64 is no text to rewrite
    for mark, data in images.items():
        page = page.replace(mark, data)
    return page
