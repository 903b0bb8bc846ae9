"""`tflkit pick`: which (model, regime, recipe) of a finished study fits a device's budget, ranked by accuracy.

Every (cell, recipe) row of the study is a candidate. A candidate is feasible only when every figure the pick needs
was measured and meets its constraint: top-1 and the latency on the chosen target are always needed (the ranking
and the Pareto front are built on them), the size only when `max_size_mb` is set. A figure that was not measured is
a reason to exclude, never a pass; a row whose status is not `ok` is excluded with its status as the reason.
"""

from __future__ import annotations

from tflkit.core.errors import UsageError
from tflkit.core.uncertainty import difference_interval, top1_variance
from tflkit.pipeline.rows import latency_key

MB = 1e6  # sizes in MB (10^6 bytes), as file managers and the study's report show them
KB = 1024  # arena and flash in KB of 1,024 bytes, as microcontroller datasheets give SRAM and flash


def pick(rows: list[dict], *, target: str = "host", threads: int = 1, delegate: str | None = None,
         max_latency_ms: float | None = None, max_size_mb: float | None = None, min_top1: float | None = None,
         max_arena_kb: float | None = None, max_rss_mb: float | None = None, max_flash_kb: float | None = None,
         dataset: str | None = None, recipes=None, boards=None) -> dict:
    """The feasible candidates ranked by top-1 (best first; with `boards`, memory decides among equals: see
    _memory_first), their top-1-vs-latency Pareto front, and every excluded candidate with the constraints it broke.

    Memory: `max_arena_kb` bounds the interpreter's planned tensor arena (`arena_bytes`: the RAM its tensors need),
    `max_rss_mb` the resident memory a benchmark added on the target (the host's `rss_delta_mb`, a phone's
    `peak_memory_mb`), `max_flash_kb` the file (what flash must hold), in KB of 1,024 bytes.

    `boards`: names of microcontroller boards the file must fit (a study with `mcu:`): TFLite Micro's measured
    arena with the I/O and the file within the board's SRAM and flash, or the board's Ethos-U NPU by Vela's figures
    (tflkit.mcu.fit); planned-only figures never count.

    `target` is `host` or a phone prefix as in the row columns (`google_pixel_7`, with `delegate` `cpu`/`gpu`);
    `min_top1` is a fraction (0.7), or a percentage when above 1 (70). With several datasets and no `dataset`,
    the Pareto front is drawn within each dataset (accuracies on different datasets are not comparable).
    """
    if target == "host" and delegate == "xnnpack":
        delegate = None  # the host's default: its columns are bare `host_...`
    if min_top1 is not None and min_top1 > 1:
        min_top1 = min_top1 / 100
    _check_choices(rows, dataset, recipes)
    lat_key = latency_key(target, threads, delegate)
    where = _where(target, threads, delegate)
    mean_key = lat_key.replace("_median_ms_", "_mean_ms_")
    if not any(r.get(lat_key) is not None or r.get(mean_key) is not None for r in rows):
        raise UsageError(f"no latency measured on {where} in this study; measured: {measured_targets(rows) or 'none'}")
    memory_key = _memory_key(target, delegate)
    constraints = {"target": target, "threads": threads, "delegate": delegate, "latency_column": lat_key,
                   "max_latency_ms": max_latency_ms, "max_size_mb": max_size_mb, "min_top1": min_top1,
                   "max_arena_kb": max_arena_kb, "max_rss_mb": max_rss_mb, "memory_column": memory_key,
                   "max_flash_kb": max_flash_kb, "dataset": dataset, "recipes": list(recipes) if recipes else None,
                   "boards": list(boards) if boards else None}
    if boards and not any(k.startswith("fits_") for r in rows for k in r):
        raise UsageError("no microcontroller fit measured in this study: add `mcu: {boards: [...]}` to the study "
                         "file and run it again (only the new mcu stages run)")
    budgets = [(name, limit) for name, limit in (("size_mb", max_size_mb), ("arena_kb", max_arena_kb),
                                                 ("rss_mb", max_rss_mb), ("flash_kb", max_flash_kb))
               if limit is not None]
    feasible, excluded = [], []
    for row in rows:
        if dataset is not None and row["dataset"] != dataset:
            continue
        if recipes and row["recipe"] not in recipes:
            continue
        candidate = _candidate(row, lat_key, mean_key, memory_key)
        reasons = _reasons(candidate, row, where, max_latency_ms, min_top1, budgets)
        reasons += [] if reasons and candidate["status"] != "ok" else _board_reasons(row, boards or ())
        if reasons:
            excluded.append({**candidate, "reasons": reasons})
        else:
            feasible.append(candidate)
    feasible.sort(key=lambda c: (-c["top1"], c["latency_ms"], c["model"], c["regime"], c["recipe"]))
    if boards:
        _memory_first(feasible, rows)
    return {"constraints": constraints, "feasible": feasible, "pareto": pareto_front(feasible), "excluded": excluded}


def top1_variance_of(row: dict) -> float | None:
    """The variance of a row's top-1 (binomial on its test images, and the seeds' spread where it has seeds)."""
    if row.get("top1") is None or not row.get("eval_images"):
        return None
    return top1_variance(row["top1"], int(row["eval_images"]), list(row.get("top1_seeds") or []) or None)


def _memory_first(feasible: list[dict], rows: list[dict]) -> None:
    """On a board, memory decides among equals: the first candidate gives its place to the file of the same model
    with the smallest TFLite Micro arena (then file) whose top-1 is not told apart from it (inside the 95% interval
    of their difference), e.g. the int8 file over the fp32 one. Marked `chosen_over` for the report to say so."""
    if not feasible:
        return
    best = feasible[0]
    by_key = {(r["cell"], r["recipe"]): r for r in rows}
    var_best = top1_variance_of(by_key[(best["cell"], best["recipe"])])
    lighter = []
    for cand in feasible[1:]:
        if cand["model"] != best["model"] or cand["tflm_arena_kb"] is None:
            continue
        if best["tflm_arena_kb"] is not None and (cand["tflm_arena_kb"], cand["flash_kb"] or 0) >= (
                best["tflm_arena_kb"], best["flash_kb"] or 0):
            continue
        var = top1_variance_of(by_key[(cand["cell"], cand["recipe"])])
        if var_best is None or var is None:
            continue
        lo, hi = difference_interval(best["top1"], var_best, cand["top1"], var)
        if lo <= 0 <= hi:
            lighter.append(cand)
    if lighter:
        chosen = min(lighter, key=lambda c: (c["tflm_arena_kb"], c["flash_kb"] or 0))
        feasible.remove(chosen)
        feasible.insert(0, {**chosen, "chosen_over": best["recipe"]})


def _memory_key(target: str, delegate: str | None) -> str:
    """The row column of the resident memory a benchmark measured on `target`."""
    if target == "host":
        return "host_rss_delta_mb" if delegate is None else f"host_{delegate}_rss_delta_mb"
    return f"{target}_{delegate}_peak_memory_mb" if delegate else f"{target}_peak_memory_mb"


def _candidate(row: dict, lat_key: str, mean_key: str, memory_key: str) -> dict:
    latency, statistic = row.get(lat_key), "median"
    if latency is None and row.get(mean_key) is not None:  # a phone whose tool printed no median
        latency, statistic = row[mean_key], "mean"
    size = row.get("size_bytes")
    return {"model": row["model"], "dataset": row["dataset"], "regime": row["regime"], "recipe": row["recipe"],
            "cell": row["cell"], "status": row["status"], "top1": row.get("top1"), "latency_ms": latency,
            "latency_statistic": statistic if latency is not None else None,
            "size_mb": size / MB if size is not None else None,
            "flash_kb": size / KB if size is not None else None,
            "arena_kb": row["arena_bytes"] / KB if row.get("arena_bytes") is not None else None,
            "tflm_arena_kb": row["tflm_arena_bytes"] / KB if row.get("tflm_arena_bytes") is not None else None,
            "fits_on": row.get("fits_on"),
            "rss_mb": row.get(memory_key),
            # how sure the top-1 is: its 95% interval (of the mean, with seeds), the seeds' spread, the training's end
            "top1_lo": row.get("top1_lo"), "top1_hi": row.get("top1_hi"), "top1_sd": row.get("top1_sd"),
            "seeds": row.get("seeds"), "convergence": row.get("convergence")}


# budget -> (what it bounds, unit) as the reasons name them
BUDGETS = {"size_mb": ("size", "MB"), "arena_kb": ("arena", "KB"), "rss_mb": ("memory", "MB"),
           "flash_kb": ("flash", "KB")}


def _reasons(c: dict, row: dict, where: str, max_latency_ms, min_top1, budgets) -> list[str]:
    if c["status"] != "ok":
        message = row.get("message") or ""
        return [f"status {c['status']}" + (f": {message}" if message else "")]
    reasons = []
    if c["top1"] is None:
        reasons.append("top-1 not measured")
    elif row.get("at_chance"):  # a file that guesses is no candidate, whatever the constraints
        reasons.append(f"top-1 {100 * c['top1']:.2f}% is at chance ({row['classes']} classes)")
    elif min_top1 is not None and c["top1"] < min_top1:
        reasons.append(f"top-1 {100 * c['top1']:.2f}% < {100 * min_top1:.2f}%")
    if c["latency_ms"] is None:
        reasons.append(f"latency not measured on {where}")
    elif max_latency_ms is not None and c["latency_ms"] > max_latency_ms:
        reasons.append(f"latency {c['latency_ms']:.3g} ms > {max_latency_ms:g} ms")
    for key, limit in budgets:  # a figure not measured excludes: it never passes
        what, unit = BUDGETS[key]
        if c[key] is None:
            reasons.append(f"{what} not measured" + (f" on {where.split(' at ')[0]}" if key == "rss_mb" else ""))
        elif c[key] > limit:
            reasons.append(f"{what} {c[key]:.3g} {unit} > {limit:g} {unit}")
    return reasons


def _board_reasons(row: dict, boards) -> list[str]:
    """Why a file does not fit each board (on its CPU under TFLM, nor on its Ethos-U): nothing when it fits one."""
    reasons = []
    for board in boards:
        cpu, npu = row.get(f"fits_{board}"), row.get(f"fits_{board}_npu")
        if cpu or npu:
            continue
        if cpu is None and npu is None:
            reasons.append(f"fit on {board} not measured")
        else:
            why = row.get(f"fits_{board}_breaks") or row.get(f"fits_{board}_npu_breaks") or "?"
            reasons.append(f"does not fit {board}: {why}")
    return reasons


def pareto_front(candidates: list[dict], accuracy: str = "top1", cost: str = "latency_ms") -> list[dict]:
    """The candidates no other beats on both accuracy (higher) and cost (lower), cheapest first; within each
    dataset (accuracies on different datasets are not comparable). Candidates lacking either figure are left out."""
    front = []
    usable = [c for c in candidates if c.get(accuracy) is not None and c.get(cost) is not None]
    for c in usable:
        dominated = any(o is not c and o["dataset"] == c["dataset"] and o[accuracy] >= c[accuracy]
                        and o[cost] <= c[cost] and (o[accuracy] > c[accuracy] or o[cost] < c[cost]) for o in usable)
        if not dominated:
            front.append(c)
    return sorted(front, key=lambda c: (c["dataset"], c[cost], -c[accuracy]))


def measured_targets(rows: list[dict]) -> str:
    """`host at 1, 2 threads; pixel_7_cpu at 1, 4 threads`: the latency columns present, for error messages."""
    found: dict[str, set[int]] = {}
    for row in rows:
        for key, value in row.items():
            for stat in ("_median_ms_t", "_mean_ms_t"):
                if stat in key and value is not None:
                    prefix, _, t = key.partition(stat)
                    found.setdefault(prefix, set()).add(int(t))
    return "; ".join(f"{p} at {', '.join(map(str, sorted(ts)))} thread{'s' if ts != {1} else ''}"
                     for p, ts in sorted(found.items()))


def _where(target: str, threads: int, delegate: str | None) -> str:
    name = target if delegate is None else f"{target} ({delegate})"
    return f"{name} at {threads} thread{'s' if threads != 1 else ''}"


def _check_choices(rows: list[dict], dataset, recipes) -> None:
    datasets = sorted({r["dataset"] for r in rows})
    if dataset is not None and dataset not in datasets:
        raise UsageError(f"dataset {dataset!r} is not in this study; choose from: {', '.join(datasets) or 'none'}")
    known = sorted({r["recipe"] for r in rows})
    for recipe in recipes or ():
        if recipe not in known:
            raise UsageError(f"recipe {recipe!r} is not in this study; choose from: {', '.join(known) or 'none'}")


def format_pick(result: dict, show_excluded: bool = True) -> str:
    """The pick as a terminal table: feasible candidates (Pareto ones starred), then the excluded with reasons
    (or, without `show_excluded`, how many each reason excluded)."""
    c = result["constraints"]
    limits = [f"target {_where(c['target'], c['threads'], c['delegate'])}"]
    if c["max_latency_ms"] is not None:
        limits.append(f"latency <= {c['max_latency_ms']:g} ms")
    if c["max_size_mb"] is not None:
        limits.append(f"size <= {c['max_size_mb']:g} MB")
    for key, what, unit in (("max_arena_kb", "arena", "KB"), ("max_rss_mb", "memory", "MB"),
                            ("max_flash_kb", "flash", "KB")):
        if c.get(key) is not None:
            limits.append(f"{what} <= {c[key]:g} {unit}")
    if c["min_top1"] is not None:
        limits.append(f"top-1 >= {100 * c['min_top1']:.2f}%")
    if c.get("boards"):
        limits.append(f"fits {', '.join(c['boards'])} (TFLite Micro's measured arena, or the board's Ethos-U)")
    if c["dataset"]:
        limits.append(f"dataset {c['dataset']}")
    if c["recipes"]:
        limits.append(f"recipes {', '.join(c['recipes'])}")
    lines = ["Constraints: " + "; ".join(limits), ""]
    front = {id(p) for p in result["pareto"]}
    mcu = bool(c.get("boards"))
    header = ("", "model", "dataset", "regime", "recipe", "top1 % (95% interval)", "latency ms", "size MB",
              *(("TFLM arena KB", "fits on") if mcu else ()), "training")
    table = [header]
    for cand in result["feasible"]:
        table.append(("*" if id(cand) in front else "", cand["model"], cand["dataset"], cand["regime"],
                      cand["recipe"], _top1_text(cand),
                      f"{cand['latency_ms']:.3f}" + (" (mean)" if cand["latency_statistic"] == "mean" else ""),
                      _num(cand["size_mb"], ".3f"),
                      *((_num(cand["tflm_arena_kb"], ".1f"), cand.get("fits_on") or "") if mcu else ()),
                      cand.get("convergence") or ""))
    if result["feasible"]:
        lines.append(f"Feasible ({len(result['feasible'])}, best top-1 first; * on the top-1 vs latency Pareto front):")
        lines.extend(_aligned(table))
    else:
        lines.append("No candidate meets every constraint.")
    if result["excluded"] and not show_excluded:
        counts: dict[str, int] = {}
        for cand in result["excluded"]:
            for reason in {_reason_kind(r) for r in cand["reasons"]}:
                counts[reason] = counts.get(reason, 0) + 1
        lines += ["", f"Excluded {len(result['excluded'])}: "
                  + ", ".join(f"{n} by {reason}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1]))
                  + " (--show-excluded lists them)"]
    elif result["excluded"]:
        lines += ["", f"Excluded ({len(result['excluded'])}):"]
        table = [("model", "dataset", "regime", "recipe", "reasons")]
        for cand in result["excluded"]:
            table.append((cand["model"], cand["dataset"], cand["regime"], cand["recipe"], "; ".join(cand["reasons"])))
        lines.extend(_aligned(table))
    return "\n".join(lines) + "\n"


def _top1_text(cand: dict) -> str:
    text = f"{100 * cand['top1']:.2f}"
    if cand.get("top1_lo") is not None and cand.get("top1_hi") is not None:
        text += f" ({100 * cand['top1_lo']:.2f}-{100 * cand['top1_hi']:.2f})"
    if cand.get("seeds") and cand["seeds"] > 1 and cand.get("top1_sd") is not None:
        text += f" mean of {cand['seeds']} seeds, sd {100 * cand['top1_sd']:.2f}"
    return text


def _reason_kind(reason: str) -> str:
    """"latency 3 ms > 2 ms" -> "latency"; "status convert_failed: ..." -> "status convert_failed"."""
    head = reason.split(":")[0].split()
    if head[:3] == ["does", "not", "fit"]:
        return " ".join(head[:4])
    return " ".join(head[:2]) if head[0] == "status" else head[0]


def _num(value, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _aligned(table: list[tuple]) -> list[str]:
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    return ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in table]
