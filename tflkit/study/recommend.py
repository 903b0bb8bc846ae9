"""What the study report answers first: which (model, regime, recipe) to deploy on each target the study measured.

One recommendation per target and dataset (accuracies on different datasets are not comparable): the host at each
thread count it was benchmarked at, each phone and delegate at each thread count, each microcontroller board of a
study with `mcu:`. Each is tflkit.study.pick.pick at the study's default constraints (none; for a board, that the
file fits it), so the report and `tflkit pick` never disagree: the most accurate feasible file, the fastest among
equals. Its reason is one sentence: how many files were feasible and how far below the next model is, inside or
outside the 95% interval of the difference (tflkit.core.uncertainty).

A study in which no file learned (every measured top-1 at chance, tflkit.study.rows.at_chance) recommends nothing:
`recommend` says so instead, and the report draws no Pareto front through noise.
"""

from __future__ import annotations

from tflkit.core.uncertainty import difference_interval
from tflkit.study.pick import pick, top1_variance_of

STATS = ("_median_ms_t", "_mean_ms_t")


def all_at_chance(rows: list[dict]) -> bool:
    """True when the study measured some top-1 and every one is at chance: no model learned."""
    measured = [r for r in rows if r.get("top1") is not None]
    return bool(measured) and all(r.get("at_chance") is True for r in measured)


def latency_targets(rows: list[dict]) -> list[tuple[str, int]]:
    """(column prefix, threads) of every latency measured: the host first, then phones, by prefix and threads."""
    found = set()
    for row in rows:
        for key, value in row.items():
            for stat in STATS:
                if stat in key and value is not None:
                    prefix, _, threads = key.partition(stat)
                    found.add((prefix, int(threads)))
    return sorted(found, key=lambda f: (not f[0].startswith("host"), f[0], f[1]))


def boards(rows: list[dict]) -> list[str]:
    """The microcontroller boards a study with `mcu:` checked each file against (from the fits_<board> columns)."""
    names = set()
    for row in rows:
        for key in row:
            if key.startswith("fits_") and key != "fits_on" and not key.endswith("_breaks"):
                names.add(key[len("fits_"):].removesuffix("_npu"))
    return sorted(names)


def _pick_args(prefix: str) -> tuple[str, str | None]:
    """(target, delegate) of pick for a latency column prefix: `host`, `host_cpu`, `<phone>_<delegate>`."""
    if prefix == "host":
        return "host", None
    if prefix.startswith("host_"):
        return "host", prefix[len("host_"):]
    target, _, delegate = prefix.rpartition("_")
    return (target, delegate) if target else (prefix, None)


def _target_name(prefix: str, threads: int) -> str:
    target, delegate = _pick_args(prefix)
    name = "host (LiteRT, XNNPACK)" if prefix == "host" else f"{target.replace('_', ' ')} ({delegate})"
    return f"{name}, {threads} thread{'s' if threads != 1 else ''}"


def recommend(rows: list[dict]) -> dict:
    """{"learned", "chance", "recommendations", "summary", "datasets"}: with `learned` False, `chance` is the
    sentence to show instead of any recommendation or front. Each recommendation: target (its name), kind (host,
    phone, board), dataset, best (pick's candidate, or None), feasible (how many), next (the next model's candidate,
    or None), why, latency_from (the target whose latency ranks equals). `summary`: front_summary."""
    datasets = sorted({r["dataset"] for r in rows})
    if all_at_chance(rows):
        return {"learned": False, "chance": _chance_sentence(rows), "recommendations": [],
                "summary": {"target": None, "candidates": []}, "datasets": datasets}
    targets = latency_targets(rows)
    found = []
    for prefix, threads in targets:
        target, delegate = _pick_args(prefix)
        kind = "host" if target == "host" else "phone"
        for dataset in datasets:
            if not _measured(rows, dataset, prefix, threads):
                continue  # e.g. a phone that ran one dataset's files only
            result = pick(rows, target=target, threads=threads, delegate=delegate, dataset=dataset)
            found.append(_recommendation(rows, result, _target_name(prefix, threads), kind, dataset))
    if targets:  # a board's files are ranked by top-1, then by the first measured latency (the host's, where any)
        prefix, threads = targets[0]
        target, delegate = _pick_args(prefix)
        for board in boards(rows):
            for dataset in datasets:
                if not any(r["dataset"] == dataset and (r.get(f"fits_{board}") is not None
                                                        or r.get(f"fits_{board}_npu") is not None) for r in rows):
                    continue  # no file of this dataset was checked against the board
                result = pick(rows, target=target, threads=threads, delegate=delegate, dataset=dataset,
                              boards=[board])
                found.append(_recommendation(rows, result, f"{board} (TFLite Micro or its Ethos-U)", "board",
                                             dataset, latency_from=_target_name(prefix, threads)))
    return {"learned": True, "chance": None, "recommendations": found, "summary": front_summary(rows),
            "datasets": datasets}


def front_summary(rows: list[dict]) -> dict:
    """{"target", "candidates"}: the feasible files on the top-1 vs latency Pareto front of the first measured
    target (the host at its fewest threads, where measured), each dataset apart, best top-1 first."""
    targets = latency_targets(rows)
    if not targets:
        return {"target": None, "candidates": []}
    prefix, threads = targets[0]
    target, delegate = _pick_args(prefix)
    front = pick(rows, target=target, threads=threads, delegate=delegate)["pareto"]
    return {"target": _target_name(prefix, threads),
            "candidates": sorted(front, key=lambda c: (c["dataset"], -c["top1"], c["latency_ms"]))}


def _measured(rows: list[dict], dataset: str, prefix: str, threads: int) -> bool:
    keys = [f"{prefix}{stat}{threads}" for stat in STATS]
    return any(r["dataset"] == dataset and any(r.get(k) is not None for k in keys) for r in rows)


def _recommendation(rows: list[dict], result: dict, name: str, kind: str, dataset: str,
                    latency_from: str | None = None) -> dict:
    feasible = result["feasible"]
    best = feasible[0] if feasible else None
    others = [c for c in feasible if best is not None and c["model"] != best["model"]]
    following = others[0] if others else None
    if best is None:
        why = _why_none(rows, result, dataset)
    else:
        if best.get("chosen_over"):  # a board: the lighter file of the same model, not told apart from the best
            top = next(c for c in feasible if c["cell"] == best["cell"] and c["recipe"] == best["chosen_over"])
            why = (f"Chosen over {best['model']}'s {best['chosen_over']} file, whose top-1 is not told apart from it "
                   f"(inside the 95% interval of their difference): on a board memory decides among equals, and "
                   f"this file needs a {best['tflm_arena_kb']:.1f} KB arena and {best['flash_kb']:.1f} KB of flash. "
                   + _why(rows, top, following, feasible).replace(
                       "Highest top-1", f"{best['model']}'s {best['chosen_over']} file has the highest top-1", 1))
        else:
            why = _why(rows, best, following, feasible)
    return {"target": name, "kind": kind, "dataset": dataset, "best": best, "feasible": len(feasible),
            "next": following, "why": why, "latency_from": latency_from or name}


def _row_of(rows: list[dict], cand: dict) -> dict:
    return next(r for r in rows if r["cell"] == cand["cell"] and r["recipe"] == cand["recipe"])


def _label(cand: dict) -> str:
    return f"{cand['model']} ({cand['regime']}, {cand['recipe']})"


def _why(rows: list[dict], best: dict, following: dict | None, feasible_of: list[dict]) -> str:
    feasible = len(feasible_of)
    if following is None:
        if feasible == 1:
            return "The only feasible file."
        return (f"Highest top-1 among {feasible} feasible files, every one of them {best['model']}'s"
                + _cheaper_twin(rows, best, feasible_of) + ".")
    gap = 100 * (best["top1"] - following["top1"])
    text = (f"Highest top-1 among {feasible} feasible files; the next model, {_label(following)}, is {gap:.2f} points "
            f"lower")
    var_a, var_b = top1_variance_of(_row_of(rows, best)), top1_variance_of(_row_of(rows, following))
    if var_a is None or var_b is None:
        return text + " (no interval: the test-image count was not recorded)."
    lo, hi = difference_interval(best["top1"], var_a, following["top1"], var_b)
    interval = f"the 95% interval of the difference ({100 * lo:+.2f} to {100 * hi:+.2f} points)"
    if lo <= 0:
        return text + f", inside {interval}: the two are not told apart on this test split" + \
            _cheaper_twin(rows, best, feasible_of) + "."
    if following.get("convergence") == "still improving":  # it could overtake with more training
        text += (f", outside {interval}, but it was still improving at its last epoch, so longer training could "
                 f"close the gap")
    else:
        text += f", outside {interval}"
    return text + _cheaper_twin(rows, best, feasible_of) + "."


def _cheaper_twin(rows: list[dict], best: dict, feasible: list[dict]) -> str:
    """"; <model>'s <recipe> file is not told apart ...": the fastest file of the same model that is no slower and
    smaller than `best`, with a top-1 inside the 95% interval of their difference (a cheaper equal), or nothing."""
    var_best = top1_variance_of(_row_of(rows, best))
    twins = []
    for cand in feasible:
        if cand is best or cand["model"] != best["model"] or cand["latency_ms"] > best["latency_ms"]:
            continue
        if cand["size_mb"] is None or best["size_mb"] is None or cand["size_mb"] >= best["size_mb"]:
            continue
        var = top1_variance_of(_row_of(rows, cand))
        if var_best is None or var is None:
            continue
        lo, hi = difference_interval(best["top1"], var_best, cand["top1"], var)
        if lo <= 0 <= hi:
            twins.append(cand)
    if not twins:
        return ""
    twin = min(twins, key=lambda c: (c["latency_ms"], c["size_mb"]))
    name = twin["recipe"] if twin["regime"] == best["regime"] else f"{twin['regime']} {twin['recipe']}"
    return (f"; {best['model']}'s {name} file is not told apart ({100 * (twin['top1'] - best['top1']):+.2f} points, "
            f"inside the interval) at {twin['latency_ms']:.3f} ms and {twin['size_mb']:.3f} MB")


def _why_none(rows: list[dict], result: dict, dataset: str) -> str:
    mine = [r for r in rows if r["dataset"] == dataset and r.get("top1") is not None]
    if mine and all(r.get("at_chance") is True for r in mine):
        return f"No model learned on {dataset}: every file's top-1 is at chance."
    excluded = result["excluded"]
    if not excluded:
        return "No file to rank."
    example = excluded[0]["reasons"][0]
    return (f"No feasible file: {len(excluded)} excluded (e.g. {_label(excluded[0])}: {example}).")


def _chance_sentence(rows: list[dict]) -> str:
    measured = [r for r in rows if r.get("top1") is not None]
    best = max(measured, key=lambda r: r["top1"])
    classes = best.get("classes")
    chance = f" (chance: {100 / classes:.2f}% with {classes} classes)" if classes else ""
    return (f"No model learned: every one of the {len(measured)} files measured has a top-1 at chance, within 3 "
            f"standard errors of 1/classes on its test split; the best is {best['model']} ({best['regime']}, "
            f"{best['recipe']}) at {100 * best['top1']:.2f}%{chance}. Nothing is recommended and no Pareto front is "
            f"drawn: their accuracies are noise. The training curves and the budget below are where to look.")
