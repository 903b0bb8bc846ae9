"""What a search leaves a user to act on: best.yaml (TrainConfig keys only: `tflkit train --config best.yaml`),
best_study_overrides.yaml (the searched keys as a study file's `overrides:` entry for the model),
trials.csv (every trial, its parameters, measurements and fate), and report.md / report.html with the plots inline
(optimization history, parameter importances, top-1 per augmentation preset).

Importances: Optuna's fANOVA evaluator when scikit-learn is installed (it fits a random forest), else Optuna's
PED-ANOVA (no extra dependency). Either way the report names the one it used. Both see COMPLETE trials only (a
pruned trial's value is a Keras val top-1 at an earlier epoch, not the objective). PED-ANOVA compares the
parameters of the best `target_quantile` of the trials with all of them, and Optuna advises at least 5 trials in
that top set; its default 0.1 puts one trial there in a 12-trial search, so the quantile here is 5 / n (at least
0.1, at most 0.5: the better half). With a dozen trials any importance is a hint, not a measurement.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import warnings
from pathlib import Path

from tflkit.core.config import save_yaml
from tflkit.core.fileio import atomic_write_bytes, atomic_write_text
from tflkit.core.run import Run

MEASURES = ("keras_val_top1", "tflite_val_top1", "size_bytes", "median_ms", "train_s", "epochs_run")
ATTRS = ("baseline", "infeasible_reason", "fail_reason", "retry_of", "run_dir")


def feasible(trial) -> bool:
    return not trial.user_attrs.get("infeasible_reason")


def completed(study) -> list:
    return [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]


def best_trial(study):
    """The best COMPLETE trial that meets the budget (the lowest number among equals); None when there is none."""
    candidates = [t for t in completed(study) if feasible(t)]
    return max(candidates, key=lambda t: (t.value, -t.number)) if candidates else None


def trial_rows(study) -> list[dict]:
    names = sorted({k for t in study.get_trials(deepcopy=False) for k in t.params})
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"number": t.number, "state": t.state.name, "value": t.value,
               "feasible": (feasible(t) if t.state.name == "COMPLETE" else None),
               "duration_s": round(t.duration.total_seconds(), 1) if t.duration else None}
        row.update({f"param_{n}": t.params.get(n) for n in names})
        row.update({k: t.user_attrs.get(k) for k in (*MEASURES, *ATTRS)})
        rows.append(row)
    return rows


def write_trials_csv(study, path) -> None:
    rows = trial_rows(study)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def write_best_yaml(trial, settings, space, path) -> None:
    """The best trial's resolved TrainConfig, read back through TrainConfig so it holds its keys only. With a shared
    --storage the trial may have run on another machine: then it is rebuilt from the search's settings."""
    from dataclasses import replace


    run = Run(trial.user_attrs.get("run_dir", ""))
    if run.exists:
        config = run.config
    else:
        config = replace(settings.base_config(), **space.fixed, **trial.params).check()
    save_yaml(config, path)


def write_study_overrides(trial, model: str, space, path) -> None:
    """The searched keys alone, as a study file's per-model `overrides:` entry (a study sets the model, dataset and
    budget per cell itself)."""
    import yaml

    chosen = {**space.fixed, **trial.params}
    text = (f"# tflkit tune: trial {trial.number}'s settings for {model}; merge under a study file's overrides:\n"
            + yaml.safe_dump({"overrides": {model: chosen}}, sort_keys=False))
    atomic_write_text(path, text)


def importances(study) -> tuple[dict, str]:
    """(parameter -> importance, evaluator name); ({}, reason) when there is too little to judge."""
    import optuna

    trials = completed(study)
    if len(trials) < 3:
        return {}, f"not computed: {len(trials)} complete trial(s), at least 3 needed"
    try:
        import sklearn  # noqa: F401

        evaluator, name = optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA (Optuna)"
    except ImportError:
        quantile = min(0.5, max(0.1, 5 / len(trials)))
        evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)
        name = f"PED-ANOVA (Optuna), top {quantile:.2g} of {len(trials)} complete trials vs all"
    try:
        with warnings.catch_warnings():  # PED-ANOVA warns when few trials make its quantiles coincide
            warnings.simplefilter("ignore", UserWarning)
            return dict(optuna.importance.get_param_importances(study, evaluator=evaluator)), name
    except (ValueError, RuntimeError) as exc:  # e.g. every trial the same value
        return {}, f"not computed ({name}): {str(exc).splitlines()[0]}"


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def plots(study, importance: dict, objective_label: str, fixed_augment: str = "none") -> dict[str, str]:
    """name -> PNG data URI. `fixed_augment`: the preset of every trial when the space does not search it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = sorted(completed(study), key=lambda t: t.number)
    out = {}
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if done:
        xs = [t.number for t in done]
        ys = [100 * t.value for t in done]
        colors = ["tab:blue" if feasible(t) else "tab:red" for t in done]
        ax.scatter(xs, ys, c=colors, s=22, label="trial (red: over budget)")
        best, running = [], float("-inf")
        for t in done:
            if feasible(t):
                running = max(running, 100 * t.value)
            best.append(running if running > float("-inf") else None)
        ax.step(xs, [b if b is not None else float("nan") for b in best], where="post", color="tab:green",
                label="best so far")
        ax.legend(fontsize=8, loc="lower right")
    pruned = [t for t in study.get_trials(deepcopy=False) if t.state.name == "PRUNED" and t.value is not None]
    if pruned:
        ax.scatter([t.number for t in pruned], [100 * t.value for t in pruned], marker="x", c="gray", s=22)
    ax.set_xlabel("trial number")
    ax.set_ylabel(f"{objective_label} (%)")
    ax.set_title("Optimization history (x: pruned, at its last reported Keras val top-1)", fontsize=10)
    out["history"] = _png(fig)

    if importance:
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(importance) + 1))
        names = list(importance)[::-1]
        ax.barh(names, [importance[n] for n in names], color="tab:blue")
        ax.set_xlabel("importance (share of the objective's variance)")
        ax.set_title("Parameter importances", fontsize=10)
        out["importance"] = _png(fig)

    by_preset: dict = {}
    for t in done:
        preset = t.params.get("augment", fixed_augment)
        by_preset.setdefault(str(preset), []).append(100 * t.value)
    if by_preset:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        names = sorted(by_preset)
        for i, name in enumerate(names):
            values = by_preset[name]
            ax.scatter([i] * len(values), values, s=22, color="tab:blue")
            ax.plot([i - 0.25, i + 0.25], [max(values)] * 2, color="tab:green")
        ax.set_xticks(range(len(names)), names)
        ax.set_xlabel("augmentation preset")
        ax.set_ylabel(f"{objective_label} (%)")
        ax.set_title("Top-1 per augmentation preset (line: best)", fontsize=10)
        out["augment"] = _png(fig)
    return out


def _table(rows: list[dict], keys: list[str]) -> tuple[str, str]:
    """(markdown, html) of the rows."""

    def fmt(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    md = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    md += ["| " + " | ".join(fmt(r.get(k)) for k in keys) + " |" for r in rows]
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(r.get(k)))}</td>" for k in keys) + "</tr>" for r in rows)
    return "\n".join(md), f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_results(study, settings, space) -> list[Path]:
    out = Path(settings.out)
    written = [out / "trials.csv"]
    write_trials_csv(study, written[0])
    best = best_trial(study)
    if best is not None:
        write_best_yaml(best, settings, space, out / "best.yaml")
        write_study_overrides(best, settings.train.model, space, out / "best_study_overrides.yaml")
        written += [out / "best.yaml", out / "best_study_overrides.yaml"]
    importance, evaluator = importances(study)
    objective_label = f"{settings.objective.target} val top-1"
    images = plots(study, importance, objective_label, space.fixed.get("augment", "none"))
    md, page = render(study, settings, space, best, importance, evaluator, images)
    atomic_write_text(out / "report.md", md)
    atomic_write_bytes(out / "report.html", page.encode())
    return [*written, out / "report.md", out / "report.html"]


def render(study, settings, space, best, importance: dict, evaluator: str, images: dict) -> tuple[str, str]:
    counts: dict = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    rows = sorted(trial_rows(study), key=lambda r: (r["state"] != "COMPLETE", -(r["value"] or 0.0)))
    param_keys = [k for k in rows[0] if k.startswith("param_")] if rows else []
    keys = ["number", "state", "value", "feasible", *param_keys, "keras_val_top1", "tflite_val_top1", "size_bytes",
            "median_ms", "duration_s", "baseline", "infeasible_reason", "fail_reason", "retry_of"]
    keys = [k for k in keys if any(r.get(k) is not None for r in rows) or k in ("number", "state", "value")]
    md_table, html_table = _table(rows, keys)
    train = settings.train
    conditions = (f"{train.model} on {train.dataset}, {train.epochs} epoch(s) per trial, "
                  f"train_limit {train.train_limit or 'all'}, image size {train.image_size or 'native'}, "
                  f"seed {train.seed}; objective: {settings.objective.describe()}; storage {settings.storage_shown}")
    space_lines = [f"- `{p.name}`: {p.describe()}" for p in space.params]
    space_lines += [f"- `{k}` fixed at {v}" for k, v in space.fixed.items()]
    params = best.params if best else {}
    chosen = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    best_line = (f"Best: trial {best.number}, {100 * best.value:.2f}% ({chosen})" if best
                 else "Best: none (no complete trial within the budget)")
    imp_lines = [f"- `{k}`: {v:.3f}" for k, v in importance.items()] or [f"- {evaluator}"]
    state_line = ", ".join(f"{n} {k.lower()}" for k, n in sorted(counts.items()))
    state_line += (f" (--trials {settings.trials} counts finished trials, complete or pruned; a failed trial does "
                   f"not count, and a killed one's parameters ran again)")
    md = "\n".join([
        f"# Tune report: {settings.name}", "", f"Conditions: {conditions}.", "", f"Trials: {state_line}.", "",
        best_line + ("; `tflkit train --config best.yaml --out RUN` retrains it." if best else ""), "",
        "## Search space", "", *space_lines, "",
        f"## Parameter importances ({evaluator})", "", *imp_lines, "",
        "## Trials (best first)", "", md_table, "",
        "Plots (optimization history, importances, top-1 per augmentation preset) are in report.html.", ""])
    figures = "".join(f'<figure><img src="{uri}" alt="{name}"></figure>' for name, uri in images.items())
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(settings.name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}figure{{display:inline-block;margin:0 1em 1em 0}}</style>
</head><body><h1>Tune report: {html.escape(settings.name)}</h1>
<p>Conditions: {html.escape(conditions)}.</p><p>Trials: {html.escape(state_line)}.</p><p>{html.escape(best_line)}</p>
{figures}
<h2>Parameter importances ({html.escape(evaluator)})</h2><pre>{html.escape(json.dumps(importance, indent=1))}</pre>
<h2>Search space</h2><ul>{''.join(f'<li>{html.escape(line[2:])}</li>' for line in space_lines)}</ul>
<h2>Trials (best first)</h2>{html_table}</body></html>
"""
    return md, page
