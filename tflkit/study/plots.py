"""The study report's plots (matplotlib, Agg canvas, no pyplot state), each a PNG with its caption.

Every axis carries its unit, every caption the conditions (target, threads, dataset, recipes); a plot with nothing
to draw is not made (the report says so) rather than drawn blank.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from tflkit.study.pick import pareto_front

RECIPE_MARKERS = {"fp32": "o", "fp16": "s", "dynamic_wi8_afp32": "^", "static_wi8_ai8": "D",
                  "static_wi8_ai8_fio": "d", "static_wi8_ai16": "v", "qat_wi8_ai8": "P", "prune50_static_wi8_ai8": "X"}
DPI = 96


@dataclass(frozen=True)
class Plot:
    title: str
    caption: str
    png: bytes


def make_plots(rows: list[dict], histories: dict[str, dict], budget: str = "") -> tuple[list[Plot], list[str]]:
    """All the report's plots, and a note for each kind that had no data. `histories`: cell -> {metric: [..]}."""
    plots, notes = [], []
    for kind, plotter in (("accuracy vs latency", lambda: accuracy_vs_latency(rows, budget)),
                          ("accuracy vs size", lambda: accuracy_vs_size(rows, budget)),
                          ("quantization drop", lambda: quantization_drop(rows, budget)),
                          ("pretrained vs scratch", lambda: pretrained_vs_scratch(rows, budget)),
                          ("training curves", lambda: training_curves(rows, histories, budget))):
        made = plotter()
        if made:
            plots.extend(made)
        else:
            notes.append(f"No {kind} plot: the study has no figures for it.")
    return plots, notes


def latency_targets(rows: list[dict]) -> list[tuple[str, str, int]]:
    """(column, prefix, threads) of every latency measured: host first, then phones, by thread count."""
    found = set()
    for row in rows:
        for key, value in row.items():
            for stat in ("_median_ms_t", "_mean_ms_t"):
                if stat in key and value is not None:
                    prefix, _, t = key.partition(stat)
                    found.add((key, prefix, int(t)))
    return sorted(found, key=lambda f: (not f[1].startswith("host"), f[1], f[2], f[0]))


def _ok(rows: list[dict], *keys: str) -> list[dict]:
    return [r for r in rows if r["status"] == "ok" and all(r.get(k) is not None for k in keys)]


def _datasets(rows: list[dict]) -> list[str]:
    return sorted({r["dataset"] for r in rows})


def _figure(width: float = 7.5, height: float = 4.8):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _colors(models: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(sorted(set(models)))}


def _scatter_tradeoff(rows: list[dict], x_key: str, x_label: str, title: str, caption: str, scale: float = 1.0,
                      front: bool = True) -> Plot:
    """top-1 (%) against a cost, a point per file, colour by model, marker by recipe, regime by fill."""
    fig = _figure()
    ax = fig.add_subplot()
    colors = _colors([r["model"] for r in rows])
    for r in rows:
        scratch = r.get("pretrained") in (None, "", "none")
        color = colors[r["model"]]
        ax.scatter(r[x_key] * scale, 100 * r["top1"], marker=RECIPE_MARKERS.get(r["recipe"], "o"), s=46,
                   c=[color] if not scratch else "white", edgecolors=[color], linewidths=1.5, zorder=3)
    if front:
        points = [{"dataset": r["dataset"], "top1": r["top1"], "cost": r[x_key] * scale} for r in rows]
        best = pareto_front(points, cost="cost")
        ax.plot([p["cost"] for p in best], [100 * p["top1"] for p in best], "--", color="black", linewidth=1,
                zorder=2, label="Pareto front")
    costs = [r[x_key] * scale for r in rows]
    if min(costs) > 0 and max(costs) / min(costs) > 20:
        ax.set_xscale("log")
        # plain decimal ticks; matplotlib's minor labels (2x10^-1, 3x10^-1, ...) overlap on a short axis
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(x_label)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    _legend(ax, colors, sorted({r["recipe"] for r in rows}), front)
    return Plot(title, caption, _png(fig))


def _legend(ax, colors: dict, recipes: list[str], front: bool) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=m) for m, c in colors.items()]
    handles += [Line2D([], [], marker=RECIPE_MARKERS.get(r, "o"), linestyle="", color="grey", label=r) for r in recipes]
    handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="white", color="grey", label="scratch"))
    handles.append(Line2D([], [], marker="o", linestyle="", color="grey", label="pretrained"))
    if front:
        handles.append(Line2D([], [], linestyle="--", color="black", label="Pareto front"))
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)


def accuracy_vs_latency(rows: list[dict], budget: str = "") -> list[Plot]:
    plots = []
    for key, prefix, threads in latency_targets(rows):
        stat = "mean" if "_mean_ms_t" in key else "median"
        for ds in _datasets(rows):
            chosen = _ok([r for r in rows if r["dataset"] == ds], key, "top1")
            if not chosen:
                continue
            target = "host (LiteRT, XNNPACK)" if prefix == "host" else prefix.replace("_", " ")
            title = f"Top-1 vs latency: {prefix}, {threads} thread{'s' if threads != 1 else ''}, {ds}"
            caption = (f"Top-1 of each .tflite on the whole {ds} test split against its {stat} latency per inference "
                       f"on {target} at {threads} thread{'s' if threads != 1 else ''}; filled markers pretrained, "
                       f"hollow scratch; the dashed line joins the Pareto front (no file both more accurate and "
                       f"faster).{_budget(budget)}")
            plots.append(_scatter_tradeoff(chosen, key, f"{stat} latency per inference (ms)", title, caption))
    return plots


def accuracy_vs_size(rows: list[dict], budget: str = "") -> list[Plot]:
    plots = []
    for ds in _datasets(rows):
        chosen = _ok([r for r in rows if r["dataset"] == ds], "size_bytes", "top1")
        if not chosen:
            continue
        title = f"Top-1 vs file size: {ds}"
        caption = (f"Top-1 on the whole {ds} test split against the .tflite file size (MB = 10^6 bytes), every "
                   f"recipe; the dashed line joins the Pareto front.{_budget(budget)}")
        plots.append(_scatter_tradeoff(chosen, "size_bytes", "file size (MB)", title, caption, scale=1e-6))
    return plots


def quantization_drop(rows: list[dict], budget: str = "") -> list[Plot]:
    plots = []
    for ds in _datasets(rows):
        chosen = [r for r in _ok([r for r in rows if r["dataset"] == ds], "top1_drop") if r["recipe"] != "fp32"]
        if not chosen:
            continue
        cells = sorted({(r["model"], r["regime"]) for r in chosen})
        recipes = sorted({r["recipe"] for r in chosen}, key=lambda n: list(RECIPE_MARKERS).index(n)
                         if n in RECIPE_MARKERS else 99)
        fig = _figure(max(6.0, 1.1 * len(cells) + 3), 4.8)
        ax = fig.add_subplot()
        width = 0.8 / len(recipes)
        for j, recipe in enumerate(recipes):
            xs, ys = [], []
            for i, cell in enumerate(cells):
                row = next((r for r in chosen if (r["model"], r["regime"]) == cell and r["recipe"] == recipe), None)
                if row is not None:
                    xs.append(i + (j - (len(recipes) - 1) / 2) * width)
                    ys.append(100 * row["top1_drop"])
            bars = ax.bar(xs, ys, width=width, label=recipe)
            ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=1)  # a zero drop is still a visible figure
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(cells)), [f"{m}\n({g})" for m, g in cells], fontsize=7, rotation=20, ha="right")
        ax.set_ylabel("top-1 drop against the cell's fp32 (percentage points)")
        title = f"Quantization drop: {ds}"
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
        caption = (f"The cell's fp32 top-1 minus each recipe's, on the whole {ds} test split, per model and regime; "
                   f"above zero the recipe lost accuracy. Missing bars: the recipe failed or was not evaluated."
                   f"{_budget(budget)}")
        plots.append(Plot(title, caption, _png(fig)))
    return plots


def pretrained_vs_scratch(rows: list[dict], budget: str = "") -> list[Plot]:
    pairs = {}
    for r in _ok(rows, "top1"):
        if r["recipe"] != "fp32":
            continue
        kind = "scratch" if r.get("pretrained") in (None, "", "none") else "pretrained"
        key = (r["model"], r["dataset"])
        pairs.setdefault(key, {})
        pairs[key][kind] = max(pairs[key].get(kind, r["top1"]), r["top1"])
    pairs = {k: v for k, v in pairs.items() if len(v) == 2}
    if not pairs:
        return []
    keys = sorted(pairs)
    fig = _figure(max(6.0, 0.9 * len(keys) + 3), 4.8)
    ax = fig.add_subplot()
    for j, kind in enumerate(("scratch", "pretrained")):
        bars = ax.bar([i + (j - 0.5) * 0.4 for i in range(len(keys))], [100 * pairs[k][kind] for k in keys], width=0.4,
               label=kind, color=("#bbbbbb", "#1f77b4")[j])
        ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1)
    ax.set_xticks(range(len(keys)), [f"{m}\n{d}" for m, d in keys], fontsize=7, rotation=20, ha="right")
    ax.set_ylabel("fp32 top-1 accuracy (%)")
    title = "Pretrained vs scratch (fp32)"
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    caption = ("Top-1 of each cell's fp32 .tflite on its dataset's whole test split, trained from scratch against "
               "from ImageNet weights (the better pretrained regime where there are several), per model and dataset "
               f"({', '.join(_datasets(rows))}).{_budget(budget)}")
    return [Plot(title, caption, _png(fig))]


def training_curves(rows: list[dict], histories: dict[str, dict], budget: str = "") -> list[Plot]:
    from matplotlib.ticker import MaxNLocator

    cells = {r["cell"]: r for r in rows}
    plots = []
    for ds in _datasets(rows):
        mine = {c: h for c, h in sorted(histories.items()) if c in cells and cells[c]["dataset"] == ds and h}
        accuracy = [m for m in ("top1", "val_top1", "accuracy", "val_accuracy")
                    if any(h.get(m) for h in mine.values())]
        losses = [m for m in ("loss", "val_loss") if any(h.get(m) for h in mine.values())]
        if not accuracy and not losses:
            continue
        panels = [p for p in (accuracy, losses) if p]
        fig = _figure(7.5 + 3.5 * (len(panels) - 1), 4.6)
        colors = _colors(list(mine))
        for k, metrics in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), k + 1)
            for cell, history in mine.items():
                for metric in metrics:
                    values = history.get(metric) or []
                    if not values:
                        continue
                    scale = 100 if metrics is accuracy else 1
                    ax.plot(range(1, len(values) + 1), [scale * v for v in values], marker=".",
                            linestyle="-" if metric.startswith("val_") else ":", color=colors[cell],
                            label=f"{cell} {metric}")
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("top-1 accuracy (%)" if metrics is accuracy else "loss (cross-entropy, nats)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=6, frameon=False)
        title = f"Training curves: {ds}"
        fig.suptitle(title)
        caption = (f"Per-epoch training (dotted) and validation (solid) figures of every cell trained on {ds} "
                   f"(Keras model during training, not the .tflite).{_budget(budget)}")
        plots.append(Plot(title, caption, _png(fig)))
    return plots


def _budget(budget: str) -> str:
    return f" Budget: {budget}." if budget else ""
