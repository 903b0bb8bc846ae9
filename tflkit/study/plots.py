"""The study report's plots (matplotlib, Agg canvas, no pyplot state), each a PNG with its caption.

Every axis carries its unit, every caption the conditions (target, threads, dataset, recipes); a plot with nothing
to draw is not made (the report says so) rather than drawn blank. One encoding in every plot: colour is the model
(model_colors, computed once from the sorted model names), marker the recipe, fill the regime (filled pretrained,
hollow scratch); each legend lists them in those three labelled groups, outside the axes, each entry once.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from tflkit.study.pick import pareto_front

RECIPE_MARKERS = {"fp32": "o", "fp16": "s", "dynamic_wi8_afp32": "^", "static_wi8_ai8": "D",
                  "static_wi8_ai8_fio": "d", "static_wi8_ai16": "v", "qat_wi8_ai8": "P", "prune50_static_wi8_ai8": "X"}
DPI = 96


@dataclass(frozen=True)
class Plot:
    title: str
    caption: str
    png: bytes
    colors: dict = field(default_factory=dict)  # model -> "#rrggbb" of every model drawn, from model_colors


def model_colors(rows: list[dict]) -> dict[str, str]:
    """model -> its colour ("#rrggbb") in every plot of the report: computed once from the sorted model names, so a
    model keeps its colour whichever plots it appears in (tab10, tab20 beyond ten models)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    models = sorted({r["model"] for r in rows})
    cmap = colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {m: to_hex(cmap(i % cmap.N)) for i, m in enumerate(models)}


def make_plots(rows: list[dict], histories: dict[str, dict], budget: str = "", colors: dict | None = None,
               learned: bool = True) -> tuple[list[Plot], list[str]]:
    """All the report's plots, and a note for each kind that had no data. `histories`: cell -> {metric: [..]};
    `colors`: model_colors of the study (computed here when not given); `learned` False (every file at chance): no
    plot of accuracy, only the training curves, since a Pareto front or a drop drawn through noise says nothing."""
    colors = colors or model_colors(rows)
    plots, notes = [], []
    accuracy = (("accuracy vs latency", lambda: accuracy_vs_latency(rows, budget, colors)),
                ("accuracy vs size", lambda: accuracy_vs_size(rows, budget, colors)),
                ("quantization drop", lambda: quantization_drop(rows, budget, colors)),
                ("pretrained vs scratch", lambda: pretrained_vs_scratch(rows, budget, colors)))
    if not learned:
        notes.append("No accuracy vs latency, accuracy vs size, quantization drop or pretrained vs scratch plot: "
                     "every file's top-1 is at chance, so its accuracy is noise (latency and size are in the table).")
        accuracy = ()
    for kind, plotter in (*accuracy, ("training curves", lambda: training_curves(rows, histories, budget, colors))):
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


def _scratch(row: dict) -> bool:
    return row.get("pretrained") in (None, "", "none")


def _recipe_order(recipes) -> list[str]:
    return sorted(set(recipes), key=lambda n: (list(RECIPE_MARKERS).index(n) if n in RECIPE_MARKERS else 99, n))


# --- the legend: model colour, recipe marker, regime fill, in labelled groups, each entry once ---------------------

def _model_handles(colors: dict, models) -> list:
    from matplotlib.lines import Line2D

    return [Line2D([], [], marker="s", linestyle="", markersize=7, color=colors[m], label=m)
            for m in sorted(set(models))]


def _recipe_handles(recipes) -> list:
    from matplotlib.lines import Line2D

    return [Line2D([], [], marker=RECIPE_MARKERS.get(r, "o"), linestyle="", color="#555555", label=r)
            for r in _recipe_order(recipes)]


def _regime_handles(rows: list[dict]) -> list:
    from matplotlib.lines import Line2D

    kinds = {_scratch(r) for r in rows}
    handles = []
    if False in kinds:
        handles.append(Line2D([], [], marker="o", linestyle="", color="#555555", label="pretrained: filled"))
    if True in kinds:
        handles.append(Line2D([], [], marker="o", linestyle="", color="#555555", markerfacecolor="white",
                              label="scratch: hollow"))
    return handles


def _legend(owner, groups: list[tuple[str | None, list]], anchor=(1.01, 1.0)) -> None:
    """One legend outside the axes (or the figure) on the right: a bold header per group, then its entries."""
    from matplotlib.lines import Line2D

    handles, headers = [], set()
    for header, entries in groups:
        if not entries:
            continue
        if header:
            headers.add(len(handles))
            handles.append(Line2D([], [], linestyle="", marker="", label=header))
        handles.extend(entries)
    legend = owner.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=anchor, frameon=False,
                          handletextpad=0.4, borderaxespad=0.0)
    for i, text in enumerate(legend.get_texts()):
        if i in headers:
            text.set_fontweight("bold")


def _scatter_tradeoff(rows: list[dict], x_key: str, x_label: str, title: str, caption: str, colors: dict,
                      scale: float = 1.0) -> Plot:
    """top-1 (%) against a cost, a point per file: colour by model, marker by recipe, fill by regime; the Pareto
    front (files at chance left out of it) dashed, each of its points labelled (model, recipe)."""
    fig = _figure()
    ax = fig.add_subplot()
    for r in rows:
        color = colors[r["model"]]
        ax.scatter(r[x_key] * scale, 100 * r["top1"], marker=RECIPE_MARKERS.get(r["recipe"], "o"), s=46,
                   c="white" if _scratch(r) else [color], edgecolors=[color], linewidths=1.5, zorder=3)
    points = [{"dataset": r["dataset"], "top1": r["top1"], "cost": r[x_key] * scale, "row": r} for r in rows
              if not r.get("at_chance")]
    best = pareto_front(points, cost="cost")
    ax.plot([p["cost"] for p in best], [100 * p["top1"] for p in best], "--", color="black", linewidth=1, zorder=2)
    costs = [r[x_key] * scale for r in rows]
    if min(costs) > 0 and max(costs) / min(costs) > 20:
        ax.set_xscale("log")
        # plain decimal ticks; matplotlib's minor labels (2x10^-1, 3x10^-1, ...) overlap on a short axis
        from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    _label_front(ax, best)
    ax.set_xlabel(x_label)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    from matplotlib.lines import Line2D

    models = {r["model"] for r in rows}
    _legend(ax, [("model (colour)", _model_handles(colors, models)),
                 ("recipe (marker)", _recipe_handles(r["recipe"] for r in rows)),
                 ("regime (fill)", _regime_handles(rows)),
                 (None, [Line2D([], [], linestyle="--", color="black", label="Pareto front")])])
    if any(r.get("at_chance") for r in rows):
        caption += " Files at chance are drawn but left out of the front."
    return Plot(title, caption, _png(fig), {m: colors[m] for m in sorted(models)})


LABEL_PX = (4.6, 9.0)  # a character's width and a line's height at fontsize 6 and DPI 96, in pixels


def _label_front(ax, front: list[dict]) -> None:
    """Label each front point (model, recipe) beside it, on its left in the axes' right half, each label moved down
    a line while it would overlap one already placed."""
    ax.autoscale_view()
    (left, _), (right, _) = ax.transAxes.transform([(0, 0), (1, 1)])
    placed: list[tuple[float, float, float]] = []
    char, line = LABEL_PX
    for p in front:
        text = f"{p['row']['model']}, {p['row']['recipe']}"
        x, y = ax.transData.transform((p["cost"], 100 * p["top1"]))
        width = char * len(text)
        flip = x > (left + right) / 2
        x0 = x - 5 - width if flip else x + 5
        dy = 4.0
        while any(abs(y + dy - py) < line and x0 < px1 and x0 + width > px0 for px0, px1, py in placed):
            dy -= line
        placed.append((x0, x0 + width, y + dy))
        ax.annotate(text, (p["cost"], 100 * p["top1"]), xytext=((-5 if flip else 5) * 72 / DPI, dy * 72 / DPI),
                    textcoords="offset points", fontsize=6, ha="right" if flip else "left", zorder=4)


def accuracy_vs_latency(rows: list[dict], budget: str = "", colors: dict | None = None) -> list[Plot]:
    colors = colors or model_colors(rows)
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
                       f"on {target} at {threads} thread{'s' if threads != 1 else ''}; colour: model, marker: "
                       f"recipe, filled: pretrained, hollow: scratch; the dashed line joins the Pareto front (no file "
                       f"both more accurate and faster), each of its files labelled (model, recipe)."
                       f"{_budget(budget)}")
            plots.append(_scatter_tradeoff(chosen, key, f"{stat} latency per inference (ms)", title, caption, colors))
    return plots


def accuracy_vs_size(rows: list[dict], budget: str = "", colors: dict | None = None) -> list[Plot]:
    colors = colors or model_colors(rows)
    plots = []
    for ds in _datasets(rows):
        chosen = _ok([r for r in rows if r["dataset"] == ds], "size_bytes", "top1")
        if not chosen:
            continue
        title = f"Top-1 vs file size: {ds}"
        caption = (f"Top-1 on the whole {ds} test split against the .tflite file size (MB = 10^6 bytes), every "
                   f"recipe; colour: model, marker: recipe, filled: pretrained, hollow: scratch; the dashed line "
                   f"joins the Pareto front, each of its files labelled (model, recipe).{_budget(budget)}")
        plots.append(_scatter_tradeoff(chosen, "size_bytes", "file size (MB)", title, caption, colors, scale=1e-6))
    return plots


def _bar(ax, x: float, height: float, width: float, color: str, scratch: bool, recipe: str, label_fmt: str):
    """One bar in the model's colour (hollow for scratch), the recipe's marker on its end, its value beside."""
    bars = ax.bar([x], [height], width=width, color="white" if scratch else color, edgecolor=color, linewidth=1.5)
    ax.bar_label(bars, fmt=label_fmt, fontsize=6, padding=6)  # a zero is still a visible figure
    ax.scatter([x], [height], marker=RECIPE_MARKERS.get(recipe, "o"), s=22, c="#333333", zorder=4)


def quantization_drop(rows: list[dict], budget: str = "", colors: dict | None = None) -> list[Plot]:
    colors = colors or model_colors(rows)
    plots = []
    for ds in _datasets(rows):
        chosen = [r for r in _ok([r for r in rows if r["dataset"] == ds], "top1_drop") if r["recipe"] != "fp32"]
        if not chosen:
            continue
        cells = sorted({(r["model"], r["regime"]) for r in chosen})
        recipes = _recipe_order(r["recipe"] for r in chosen)
        fig = _figure(max(6.0, 1.1 * len(cells) + 3), 4.8)
        ax = fig.add_subplot()
        width = 0.8 / len(recipes)
        for j, recipe in enumerate(recipes):
            for i, cell in enumerate(cells):
                row = next((r for r in chosen if (r["model"], r["regime"]) == cell and r["recipe"] == recipe), None)
                if row is not None:
                    _bar(ax, i + (j - (len(recipes) - 1) / 2) * width, 100 * row["top1_drop"], width,
                         colors[row["model"]], _scratch(row), recipe, "%.2f")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(cells)), [f"{m}\n({g})" for m, g in cells], fontsize=7, rotation=20, ha="right")
        ax.set_ylabel("top-1 drop against the cell's fp32 (percentage points)")
        title = f"Quantization drop: {ds}"
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
        models = {r["model"] for r in chosen}
        _legend(ax, [("model (colour)", _model_handles(colors, models)), ("recipe (marker)", _recipe_handles(recipes)),
                     ("regime (fill)", _regime_handles(chosen))])
        caption = (f"The cell's fp32 top-1 minus each recipe's, on the whole {ds} test split, per model and regime "
                   f"(colour: model, marker: recipe, filled: pretrained, hollow: scratch); above zero the recipe "
                   f"lost accuracy. Missing bars: the recipe failed or was not evaluated.{_budget(budget)}")
        plots.append(Plot(title, caption, _png(fig), {m: colors[m] for m in sorted(models)}))
    return plots


def pretrained_vs_scratch(rows: list[dict], budget: str = "", colors: dict | None = None) -> list[Plot]:
    colors = colors or model_colors(rows)
    pairs = {}
    for r in _ok(rows, "top1"):
        if r["recipe"] != "fp32":
            continue
        kind = "scratch" if _scratch(r) else "pretrained"
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
        for i, (model, dataset) in enumerate(keys):
            _bar(ax, i + (j - 0.5) * 0.4, 100 * pairs[(model, dataset)][kind], 0.4, colors[model], kind == "scratch",
                 "fp32", "%.1f")
    ax.set_xticks(range(len(keys)), [f"{m}\n{d}" for m, d in keys], fontsize=7, rotation=20, ha="right")
    ax.set_ylabel("fp32 top-1 accuracy (%)")
    title = "Pretrained vs scratch (fp32)"
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    models = {m for m, _ in keys}
    _legend(ax, [("model (colour)", _model_handles(colors, models)), ("recipe (marker)", _recipe_handles(["fp32"])),
                 ("regime (fill)", _regime_handles([{"pretrained": "none"}, {"pretrained": "imagenet"}]))])
    caption = ("Top-1 of each cell's fp32 .tflite on its dataset's whole test split, trained from scratch (hollow, "
               "left) against from ImageNet weights (filled, right; the better pretrained regime where there are "
               f"several), per model and dataset ({', '.join(_datasets(rows))}).{_budget(budget)}")
    return [Plot(title, caption, _png(fig), {m: colors[m] for m in sorted(models)})]


def training_curves(rows: list[dict], histories: dict[str, dict], budget: str = "",
                    colors: dict | None = None) -> list[Plot]:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    colors = colors or model_colors(rows)
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
        fig = _figure(6.5 + 4.0 * (len(panels) - 1), 4.6)
        for k, metrics in enumerate(panels):
            ax = fig.add_subplot(1, len(panels), k + 1)
            for cell, history in mine.items():
                row = cells[cell]
                color = colors[row["model"]]
                for metric in metrics:
                    values = history.get(metric) or []
                    if not values:
                        continue
                    scale = 100 if metrics is accuracy else 1
                    ax.plot(range(1, len(values) + 1), [scale * v for v in values], marker="o", markersize=3.5,
                            linestyle="-" if metric.startswith("val_") else ":", color=color,
                            markerfacecolor="white" if _scratch(row) else color)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("top-1 accuracy (%)" if metrics is accuracy else "loss (cross-entropy, nats)")
            ax.grid(True, alpha=0.3)
        drawn = [cells[c] for c in mine]
        models = {r["model"] for r in drawn}
        curves = [Line2D([], [], linestyle=":", color="#555555", label="training"),
                  Line2D([], [], linestyle="-", color="#555555", label="validation")]
        title = f"Training curves: {ds}"
        fig.suptitle(title)
        fig.tight_layout()
        # outside the axes, right of the last panel: a legend inside would cover the curves
        _legend(fig, [("model (colour)", _model_handles(colors, models)), ("regime (fill)", _regime_handles(drawn)),
                      ("curve (line)", curves)], anchor=(1.0, 0.9))
        caption = (f"Per-epoch training (dotted) and validation (solid) figures of every cell trained on {ds} "
                   f"(Keras model during training, not the .tflite); colour: model, filled markers: pretrained, "
                   f"hollow: scratch.{_budget(budget)}")
        plots.append(Plot(title, caption, _png(fig), {m: colors[m] for m in sorted(models)}))
    return plots


def _budget(budget: str) -> str:
    return f" Budget: {budget}." if budget else ""
