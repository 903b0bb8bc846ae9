"""The paper's claims, checked against the study's own numbers: each is true, false or undetermined.

A claim is never assumed. It is `false` as soon as one measured figure contradicts it (a missing figure cannot
rescue it), `true` only when every figure it needs was measured and agrees, and `undetermined` otherwise, with the
missing model, dataset or figure named in the evidence.

Every comparison is between the float (`fp32`) files whose row is `ok`, so a model is judged by its architecture
and training, not by how well a recipe suits it; where a model has several regimes on a dataset, its best fp32 top-1
stands for it (latency and size depend on the architecture, not on the regime: their lowest value stands for it).
A claim that holds for the study's models while one of the paper's five architectures was not measured is
undetermined, naming the missing one. A model whose fp32 top-1 is at chance (tflkit.study.rows.at_chance) did not
learn at the study's budget: its accuracy is treated as not measured (its latency and size still count), so an
accuracy claim that needs it is undetermined, not decided by a training failure.

Accuracy is compared with its uncertainty (tflkit.core.uncertainty): one model is more accurate than another only when
the 95% interval of their top-1 difference (binomial on the test split, plus the seeds' spread where a cell has
several) excludes zero and the model it puts below had stopped improving (a model still climbing could overtake).
Anything less makes the comparison, and a claim that needs it, undetermined with the reason. Latency and size are
compared as measured (medians of many runs; sizes exact).
"""

from __future__ import annotations

from tflkit.core.uncertainty import Measured, compare, difference_interval

EFFICIENTNET = ("efficientnetv2_s",)
MOBILENET = ("mobilenetv3_small_100", "mobilenetv3_small_100_tf")
SQUEEZENET = ("squeezenet1_1", "squeezenet1_0")
BALANCE_FACTOR = 2.0  # "within 2x the fastest model's latency"


# the paper's five architectures (any build of each): a claim about "the" models needs all of them measured
PAPER_MODELS = {"EfficientNetV2-S": EFFICIENTNET, "MobileNetV3-Small": MOBILENET, "SqueezeNet": SQUEEZENET,
                "ResNet-18": ("resnet18",), "ShuffleNetV2": ("shufflenetv2_x1_0",)}


def check_claims(rows: list[dict]) -> list[dict]:
    claims = [most_accurate(rows), best_balance(rows), fastest_and_smallest(rows), pretraining_helps(rows)]
    models = {r["model"] for r in rows}
    absent = [name for name, builds in PAPER_MODELS.items() if not models & set(builds)]
    for claim in claims:
        if absent and claim["verdict"] == "true":  # true of the study's models, but the paper compared five
            claim["verdict"] = "undetermined"
            claim["evidence"] += f" Holds for the models measured, but the study lacks {', '.join(absent)}."
    return claims


# --- helpers ---------------------------------------------------------------------------------------------------

def _fp32(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["recipe"] == "fp32" and r["status"] == "ok"]


def _datasets(rows: list[dict]) -> list[str]:
    return sorted({r["dataset"] for r in rows})


def _models(rows: list[dict]) -> list[str]:
    return sorted({r["model"] for r in rows})


def _present(names: tuple[str, ...], rows: list[dict]) -> list[str]:
    models = {r["model"] for r in rows}
    return [n for n in names if n in models]


def _learned(row: dict) -> bool:
    return not row.get("at_chance")


def _unlearned(rows: list[dict], dataset: str) -> dict[str, dict]:
    """model -> its best fp32 row on `dataset`, for the models whose every fp32 file there is at chance."""
    fp32 = [r for r in _fp32(rows) if r["dataset"] == dataset]
    learned = {r["model"] for r in fp32 if _learned(r)}
    best: dict[str, dict] = {}
    for r in fp32:
        if r["model"] not in learned and (r["model"] not in best or (r["top1"] or 0) > (best[r["model"]]["top1"] or 0)):
            best[r["model"]] = r
    return best


def _named(models, unlearned: dict[str, dict]) -> str:
    """Missing models by name; one that did not learn says so with its figure."""
    return ", ".join(f"{m} (did not learn: {_pct(unlearned[m]['top1'])} with {unlearned[m]['classes']} classes)"
                     if m in unlearned else m for m in models)


def _best(rows: list[dict], dataset: str, key: str, lowest: bool = False) -> dict[str, float]:
    """model -> its best measured `key` on `dataset` over its fp32 files (highest, or lowest); a top-1 at chance
    does not count as measured."""
    best: dict[str, float] = {}
    for r in _fp32(rows):
        if r["dataset"] != dataset or r.get(key) is None or (key == "top1" and not _learned(r)):
            continue
        value = r[key]
        if r["model"] not in best or (value < best[r["model"]] if lowest else value > best[r["model"]]):
            best[r["model"]] = value
    return best


def _best_rows(rows: list[dict], dataset: str) -> dict[str, dict]:
    """model -> its fp32 row with the best top-1 on `dataset` (a top-1 at chance does not count as measured)."""
    best: dict[str, dict] = {}
    for r in _fp32(rows):
        if r["dataset"] != dataset or r.get("top1") is None or not _learned(r):
            continue
        if r["model"] not in best or r["top1"] > best[r["model"]]["top1"]:
            best[r["model"]] = r
    return best


def _measured(row: dict, name: str | None = None) -> Measured:
    return Measured(name=name or row["model"], top1=row["top1"], images=row.get("eval_images"),
                    convergence=row.get("convergence"), last_gain=row.get("last_gain"), epochs=row.get("epochs"),
                    seeds=tuple(row.get("top1_seeds") or ()))


def _outcomes(subject: dict, others: dict[str, dict]) -> dict[str, tuple[str, str | None]]:
    """model -> compare(subject, that model's row): '>' subject decidedly higher, '<' lower, '~' not decided."""
    return {m: compare(_measured(subject), _measured(r)) for m, r in others.items()}


def _reasons(outcomes: dict[str, tuple[str, str | None]], models) -> str:
    return "; ".join(dict.fromkeys(outcomes[m][1] for m in sorted(models)))  # one line per reason


def _family(best: dict[str, float], names: tuple[str, ...], lowest: bool = False) -> tuple[str, float] | None:
    """The claimed family's representative: its best variant (e.g. either MobileNetV3-Small build)."""
    found = [(m, best[m]) for m in names if m in best]
    if not found:
        return None
    return (min if lowest else max)(found, key=lambda mv: mv[1])


def _others(best: dict[str, float], names: tuple[str, ...]) -> dict[str, float]:
    return {m: v for m, v in best.items() if m not in names}


def _host_threads(rows: list[dict]) -> list[int]:
    """Thread counts at which some fp32 file was timed on the host (the claims compare fp32 files)."""
    return sorted({int(k.rsplit("_t", 1)[1]) for r in _fp32(rows) for k, v in r.items()
                   if k.startswith("host_median_ms_t") and v is not None})


def _verdict(parts: list[str]) -> str:
    if "false" in parts:
        return "false"
    return "true" if parts and all(p == "true" for p in parts) else "undetermined"


def _pct(value: float) -> str:
    return f"{100 * value:.2f}%"


def _claim(claim, criterion, verdict, evidence, figures) -> dict:
    return {"claim": claim, "criterion": criterion, "verdict": verdict, "evidence": " ".join(evidence),
            "figures": figures}


# --- the claims ------------------------------------------------------------------------------------------------

def most_accurate(rows: list[dict]) -> dict:
    claim = "EfficientNetV2-S is the most accurate model on every dataset."
    criterion = ("On each dataset of the study, efficientnetv2_s has the highest fp32 top-1 of all the study's "
                 "models (each model's best regime), beyond the 95% interval of each difference and with the models "
                 "below it no longer improving.")
    models, datasets = _models(rows), _datasets(rows)
    if not _present(EFFICIENTNET, rows):
        return _claim(claim, criterion, "undetermined", ["efficientnetv2_s is not in the study."],
                      {"models": models})
    parts, evidence, figures = [], [], {}
    for ds in datasets:
        best = _best_rows(rows, ds)
        figures[ds] = {m: best[m]["top1"] if m in best else None for m in models}
        unlearned = _unlearned(rows, ds)
        eff = best.get("efficientnetv2_s")
        if eff is None:
            _note(parts, evidence, "undetermined",
                  f"{ds}: " + (f"{_named(['efficientnetv2_s'], unlearned)}." if "efficientnetv2_s"
                               in unlearned else "efficientnetv2_s has no fp32 top-1."))
            continue
        outcomes = _outcomes(eff, {m: r for m, r in best.items() if m != "efficientnetv2_s"})
        better = sorted(m for m, (order, _) in outcomes.items() if order == "<")
        unsettled = [m for m, (order, _) in outcomes.items() if order == "~"]
        missing = [m for m in models if m not in best]
        if better:
            _note(parts, evidence, "false",
                  f"{ds}: efficientnetv2_s {_pct(eff['top1'])} is beaten by "
                  + ", ".join(f"{m} {_pct(best[m]['top1'])}" for m in better) + ".")
        elif why := _undecided(outcomes, unsettled, missing, unlearned,
                               f"efficientnetv2_s {_pct(eff['top1'])} is the best measured, but no fp32 top-1"):
            _note(parts, evidence, "undetermined", f"{ds}: {why}")
        else:
            parts.append("true")
            runner_up = max(outcomes, key=lambda m: best[m]["top1"])
            evidence.append(f"{ds}: efficientnetv2_s {_pct(eff['top1'])}, next {runner_up} "
                            f"{_pct(best[runner_up]['top1'])} (beyond the interval).")
    return _claim(claim, criterion, _verdict(parts), evidence or ["no dataset in the study."], figures)


def best_balance(rows: list[dict]) -> dict:
    claim = "MobileNetV3-Small has the best accuracy-efficiency balance."
    threads = _host_threads(rows)
    t = threads[0] if threads else 1
    key = f"host_median_ms_t{t}"
    criterion = (f"On each dataset, comparing fp32 files on the host at {t} thread{'s' if t != 1 else ''} (median "
                 f"latency): MobileNetV3-Small (mobilenetv3_small_100 or _tf, its better build) is on the top-1 vs "
                 f"latency Pareto front of the models, and is the most accurate of the models whose latency is "
                 f"within {BALANCE_FACTOR:g}x the fastest model's (accuracy compared beyond the 95% interval of "
                 f"each difference, with the model below no longer improving).")
    models, datasets = _models(rows), _datasets(rows)
    if not _present(MOBILENET, rows):
        return _claim(claim, criterion, "undetermined", ["MobileNetV3-Small is not in the study."],
                      {"models": models})
    if not threads:
        return _claim(claim, criterion, "undetermined", ["no host latency in the study."], {})
    parts, evidence, figures = [], [], {}
    for ds in datasets:
        acc_rows, lat = _best_rows(rows, ds), _best(rows, ds, key, lowest=True)
        acc = {m: r["top1"] for m, r in acc_rows.items()}
        figures[ds] = {m: {"top1": acc.get(m), "latency_ms": lat.get(m)} for m in models}
        unlearned = _unlearned(rows, ds)
        mob_acc, mob_lat = _family(acc, MOBILENET), _family(lat, MOBILENET, lowest=True)
        if mob_acc is None or mob_lat is None:
            parts.append("undetermined")
            gone = [m for m in MOBILENET if m in unlearned]
            evidence.append(f"{ds}: MobileNetV3-Small has no fp32 top-1 or host latency"
                            + (f": {_named(gone, unlearned)}." if gone else "."))
            continue
        # the family's best-accuracy build, with that build's own latency
        name = mob_acc[0]
        a, ms = acc[name], lat.get(name)
        if ms is None:
            _note(parts, evidence, "undetermined", f"{ds}: {name} has no host latency at {t} thread(s).")
            continue
        others = {m: (acc[m], lat[m]) for m in models if m not in MOBILENET and m in acc and m in lat}
        missing = [m for m in models if m not in MOBILENET and (m not in acc or m not in lat)]
        # '<': the other model is decidedly more accurate; '~': not decided (interval, convergence)
        outcomes = _outcomes(acc_rows[name], {m: acc_rows[m] for m in others})
        fastest = min([ms, *(ol for _, ol in others.values())])
        budget = BALANCE_FACTOR * fastest
        more_accurate = [m for m in others if outcomes[m][0] == "<"]
        dominators = [m for m in more_accurate if others[m][1] <= ms]
        rivals = [m for m in more_accurate if others[m][1] <= budget]
        # an undecided model that is within the budget could be a rival (and, if faster, could dominate)
        unsettled = [m for m in others if outcomes[m][0] == "~" and others[m][1] <= budget]
        figures[ds]["fastest_ms"] = fastest
        text = f"{ds}: {name} {_pct(a)} at {ms:.3f} ms; fastest {fastest:.3f} ms (budget {budget:.3f} ms)"
        if dominators:
            _note(parts, evidence, "false", f"{text}: dominated by {', '.join(sorted(dominators))}.")
        elif ms > budget:
            _note(parts, evidence, "false", f"{text}: itself outside {BALANCE_FACTOR:g}x the fastest.")
        elif rivals:
            _note(parts, evidence, "false",
                  f"{text}: more accurate within the budget: "
                  + ", ".join(f"{m} {_pct(others[m][0])} at {others[m][1]:.3f} ms" for m in sorted(rivals))
                  + ".")
        elif why := _undecided(outcomes, unsettled, missing, unlearned,
                               "holds among measured models, but no fp32 top-1 or latency"):
            _note(parts, evidence, "undetermined", f"{text}: {why}")
        else:
            _note(parts, evidence, "true", f"{text}: on the Pareto front and the most accurate within the budget.")
    return _claim(claim, criterion, _verdict(parts), evidence or ["no dataset in the study."], figures)


def _undecided(outcomes: dict, unsettled: list, missing: list, unlearned, held: str) -> str | None:
    """Why a comparison the claim needs is not decided, in order: a difference within its interval (or a model
    below still climbing), a model with no figure, no other model at all; None when it can be decided."""
    if unsettled:
        return f"not decided: {_reasons(outcomes, unsettled)}."
    if missing:
        return f"{held} for {_named(missing, unlearned)}."
    if not outcomes:
        return "no other model to compare with."
    return None


def _note(parts: list, evidence: list, verdict: str, text: str) -> None:
    """One finding: its verdict (true, false, undetermined) and the sentence that says why."""
    parts.append(verdict)
    evidence.append(text)


def fastest_and_smallest(rows: list[dict]) -> dict:
    claim = "SqueezeNet is the fastest and the smallest model."
    threads = _host_threads(rows)
    criterion = ("On each dataset, SqueezeNet (squeezenet1_1 or squeezenet1_0, its better build) has the lowest "
                 "fp32 host median latency at every measured thread count ("
                 + (", ".join(map(str, threads)) or "none") + ") and the smallest fp32 file of all the study's "
                 "models.")
    models, datasets = _models(rows), _datasets(rows)
    if not _present(SQUEEZENET, rows):
        return _claim(claim, criterion, "undetermined", ["SqueezeNet is not in the study."], {"models": models})
    parts, evidence, figures = [], [], {}
    for ds in datasets:
        figures[ds] = {}
        if not any(r["model"] in SQUEEZENET and r["dataset"] == ds for r in _fp32(rows)):
            _note(parts, evidence, "undetermined", f"{ds}: no SqueezeNet fp32 file.")
            continue
        checks = [(f"host_median_ms_t{t}", f"latency at {t} thread(s)", "ms") for t in threads]
        checks.append(("size_bytes", "fp32 file size", "bytes"))
        if not threads:
            _note(parts, evidence, "undetermined", f"{ds}: no host latency in the study.")
        for key, what, unit in checks:
            best = _best(rows, ds, key, lowest=True)
            figures[ds][key] = {m: best.get(m) for m in models}
            squeeze = _family(best, SQUEEZENET, lowest=True)
            if squeeze is None:
                _note(parts, evidence, "undetermined", f"{ds}: SqueezeNet has no {what}.")
                continue
            others = _others(best, SQUEEZENET)
            beaten = {m: v for m, v in others.items() if v <= squeeze[1]}
            missing = [m for m in models if m not in SQUEEZENET and m not in best]
            shown = f"{squeeze[1]:.3f} ms" if unit == "ms" else f"{squeeze[1] / 1e6:.3f} MB"
            if beaten:
                _note(parts, evidence, "false",
                      f"{ds}: {what}: {squeeze[0]} {shown}, matched or beaten by "
                      + ", ".join(sorted(beaten)) + ".")
            elif missing:
                _note(parts, evidence, "undetermined",
                      f"{ds}: {what}: {squeeze[0]} {shown} is the lowest measured; none for "
                      f"{', '.join(missing)}.")
            elif not others:
                _note(parts, evidence, "undetermined", f"{ds}: {what}: no other model to compare with.")
            else:
                _note(parts, evidence, "true", f"{ds}: {what}: {squeeze[0]} {shown} is the lowest.")
    return _claim(claim, criterion, _verdict(parts), evidence or ["no dataset in the study."], figures)


def pretraining_helps(rows: list[dict]) -> dict:
    claim = "ImageNet pretraining beats training from scratch for every model, by most on the hardest dataset."
    criterion = ("For every model and dataset with both regimes, the pretrained cell's fp32 top-1 is higher than the "
                 "scratch cell's beyond the 95% interval of the difference, with the scratch cell no longer "
                 "improving; and for every model measured on two or more datasets, the gain is largest on the "
                 "hardest dataset (the one with the lowest mean scratch fp32 top-1 over the models measured from "
                 "scratch on every dataset), beyond the interval of the difference of gains, every cell involved "
                 "no longer improving.")
    fp32 = _fp32(rows)
    models, datasets = _models(rows), _datasets(rows)
    scratch: dict[tuple[str, str], dict] = {}
    pretrained: dict[tuple[str, str], dict] = {}
    for r in fp32:
        if r.get("top1") is None:
            continue
        key = (r["model"], r["dataset"])
        if r.get("pretrained") in (None, "", "none"):
            # a scratch cell at chance still counts: pretraining made the model learn where scratch did not
            if key not in scratch or r["top1"] > scratch[key]["top1"]:
                scratch[key] = r
        elif _learned(r) and (key not in pretrained or r["top1"] > pretrained[key]["top1"]):
            pretrained[key] = r
    pairs = sorted(k for k in scratch if k in pretrained)
    gains = {k: pretrained[k]["top1"] - scratch[k]["top1"] for k in pairs}
    outcomes = {k: compare(_measured(pretrained[k], f"{k[0]}/{k[1]} pretrained"),
                           _measured(scratch[k], f"{k[0]}/{k[1]} scratch")) for k in pairs}
    scratch_at_chance = {k for k, r in scratch.items() if not _learned(r)}

    def noted(k):
        return " (scratch at chance)" if k in scratch_at_chance else ""
    figures = {"gain": {f"{m}/{d}": g for (m, d), g in sorted(gains.items())},
               "scratch_top1": {f"{m}/{d}": r["top1"] for (m, d), r in sorted(scratch.items())},
               "pretrained_top1": {f"{m}/{d}": r["top1"] for (m, d), r in sorted(pretrained.items())}}
    parts, evidence = [], []
    # part 1: pretrained beats scratch for every model
    losses = [k for k in pairs if outcomes[k][0] == "<"]
    unsettled = [k for k in pairs if outcomes[k][0] == "~"]
    unpaired = sorted(m for m in models if not any(k[0] == m for k in gains))
    if losses:
        _note(parts, evidence, "false",
              "Pretraining does not beat scratch for "
              + ", ".join(f"{m} on {d} ({100 * gains[(m, d)]:+.2f} pts)" for m, d in losses) + ".")
    elif unsettled:
        _note(parts, evidence, "undetermined",
              "Not decided: " + "; ".join(dict.fromkeys(outcomes[k][1] for k in unsettled)) + ".")
    elif unpaired or not gains:
        _note(parts, evidence, "undetermined",
              "No scratch and pretrained fp32 top-1 pair for " + (", ".join(unpaired) or "any model") + ".")
    else:
        _note(parts, evidence, "true",
              "Pretraining beats scratch in every pair: "
              + ", ".join(f"{m}/{d} {100 * g:+.2f} pts{noted((m, d))}" for (m, d), g in sorted(gains.items()))
              + ".")
    # a pretrained cell at chance (beside a scratch one) is a pair with its pretrained side not measured
    tried = {(r["model"], r["dataset"]) for r in fp32
             if r.get("pretrained") not in (None, "", "none") and r.get("top1") is not None}
    failed_pretrained = sorted((tried & set(scratch)) - set(gains))
    if failed_pretrained and not losses:
        parts[-1] = "undetermined"
        evidence.append("The pretrained cell did not learn (fp32 top-1 at chance) for "
                        + ", ".join(f"{m}/{d}" for m, d in failed_pretrained) + ".")
    # part 2: by most on the hardest dataset
    common = [m for m in models if all((m, d) in scratch for d in datasets)]
    if len(datasets) < 2:
        _note(parts, evidence, "undetermined",
              "The hardest dataset needs two or more datasets; the study has "
              + (", ".join(datasets) or "none") + ".")
    elif not common:
        _note(parts, evidence, "undetermined",
              "No model was trained from scratch on every dataset, so the hardest one is not known.")
    else:
        hardness = {d: sum(scratch[(m, d)]["top1"] for m in common) / len(common) for d in datasets}
        hardest = min(hardness, key=hardness.get)
        figures["mean_scratch_top1"] = hardness
        figures["hardest"] = hardest
        evidence.append(f"Hardest dataset: {hardest} (mean scratch top-1 {_pct(hardness[hardest])}).")
        per_model = []
        for m in models:
            mine = {d: g for (mm, d), g in gains.items() if mm == m}
            if len(mine) < 2:
                continue
            if hardest not in mine:
                per_model.append("undetermined")
                evidence.append(f"{m}: no gain measured on {hardest}.")
                continue
            verdict, note = _largest_on(m, hardest, mine, pretrained, scratch)
            per_model.append(verdict)
            if note:
                evidence.append(note)
        without = [m for m in models if sum(1 for k in gains if k[0] == m) < 2]
        if without and "false" not in per_model:
            per_model.append("undetermined")
            evidence.append("Fewer than two datasets with both regimes for " + ", ".join(without) + ".")
        parts.append(_verdict(per_model))
    return _claim(claim, criterion, _verdict(parts), evidence, figures)


def _largest_on(model: str, hardest: str, gains: dict[str, float], pretrained: dict, scratch: dict
                ) -> tuple[str, str | None]:
    """Whether `model`'s gain from pretraining on `hardest` exceeds its gain on each other dataset, beyond the
    interval of the difference of gains (four top-1s, their variances added), every cell involved settled."""
    cells = [(kind[(model, d)], f"{model}/{d} {name}") for d in gains
             for kind, name in ((pretrained, "pretrained"), (scratch, "scratch"))]
    measured = [_measured(row, name) for row, name in cells]
    if any(m.variance is None for m in measured):
        return "undetermined", f"{model}: a cell has no test-image count, so the gains have no interval."
    variance = {m.name: m.variance for m in measured}
    verdicts, notes = [], []
    for d, g in gains.items():
        if d == hardest:
            continue
        spread = sum(variance[f"{model}/{x} {kind}"] for x in (hardest, d) for kind in ("pretrained", "scratch"))
        lo, hi = difference_interval(gains[hardest], spread, g, 0.0)
        if lo > 0:
            verdicts.append("true")
        elif hi < 0:
            verdicts.append("false")
            notes.append(f"{model}: gain {100 * gains[hardest]:+.2f} pts on {hardest} is below "
                         f"{100 * g:+.2f} pts on {d}.")
        else:
            verdicts.append("undetermined")
            notes.append(f"{model}: gains {100 * gains[hardest]:+.2f} pts on {hardest} and {100 * g:+.2f} pts on {d} "
                         f"differ by less than the 95% interval ({100 * lo:+.2f} to {100 * hi:+.2f} points).")
    climbing = [why for m in measured if (why := m.why_unsettled())]
    verdict = _verdict(verdicts)
    if climbing and verdict != "undetermined":
        return "undetermined", f"{model}: not decided: " + "; ".join(climbing) + "."
    return verdict, " ".join(notes) or None
