"""How much of each registry model XNNPACK runs in int8, and what that does to latency: fp32 against static_wi8_ai8
at 1 and 2 threads side by side, with the hard-swish spelling before and after issue 14's change.

    python benchmarks/int8_delegation.py [--models mobilenetv3_small_100,resnet18] [--size N] [--rounds 40]
                                         [--per-round 3] [--warmup 5] [--out PREFIX] [--render]

Every registry model at its reference input size (or --size N for all), and the demo's model as the demo builds
it (mobilenetv3_small_050 at 32x32 with the CIFAR stem, 5 classes). Per model: the Keras model with today's
activations ("after") and, where the model has hard-swish, the same
model rebuilt with the old single `Activation("hard_swish")` ("before", the converter turns it into HARD_SWISH)
carrying the same weights; the float outputs of the two are compared (max abs logit difference). Both are
converted (fp32, static_wi8_ai8 calibrated on random pixels: enough for structure and speed, meaningless for
accuracy; BatchNorm statistics are first set from a batch of those pixels, see `set_batchnorm_statistics`), their
XNNPACK partitions counted (tflkit.tflite.runtime.delegation_of), and every file is timed by tflkit's own host
bench in one fresh process that imports only the runtime (benchmarks/harness.py host_latency): round after round,
each (file, threads) gets a fresh interpreter, --warmup invokes and --per-round timed ones, the files taking turns in
a rotating order so that all of them see the same machine load; the median of the per-round medians and their range
over rounds. (Results before issue 22 interleaved one interpreter per file invoke by invoke in a loop of this
script's own and gave the 10th-90th percentile of all invokes; their JSON still renders.) static_wi8_ai16 of
mobilenetv3_small_100 is converted and run once. Float files carry HARD_SWISH again after conversion
(converters.convert.float_graph), so fp32 "after" is the fused graph and fp32 after/before is 1.0 within noise.

Writes benchmarks/results/int8_delegation.md and .json (benchmarks/harness.py's writer: the CPU, its features, the
versions). `--render` rewrites the .md from the .json, measuring nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

from tflkit.core.fileio import atomic_write_text

NAME = "int8_delegation"
THREADS = (1, 2)
DEMO = "demo"  # the demo's model, as tflkit.pipeline.demo.DemoSettings builds it on the shapes dataset
DEMO_BUILD = {"name": "mobilenetv3_small_050", "num_classes": 5, "image_size": 32, "small_input": True}


def build_pair(name: str, size: int, num_classes: int, small_input: bool = False):
    """(after, before-or-None): the registry model, and the same weights under the old hard-swish."""
    import tflkit.models.layers as layers
    from tflkit.models import create_model

    after = create_model(name, num_classes=num_classes, image_size=size, small_input=small_input)
    if not any(layer.name.endswith("_plus3") for layer in after.layers):  # no hard-swish
        return after, None
    current = layers.hard_swish
    layers.hard_swish = layers.hard_swish_op
    try:
        before = create_model(name, num_classes=num_classes, image_size=size, small_input=small_input)
    finally:
        layers.hard_swish = current
    return after, before


def _copy_weights(source, target) -> None:
    weights = {layer.name: layer.get_weights() for layer in source.layers}
    for layer in target.layers:
        if weights.get(layer.name):
            layer.set_weights(weights[layer.name])


def set_batchnorm_statistics(model, images) -> None:
    """BatchNorm moving statistics from one batch (momentum 0 for one training-mode call), so that every layer's
    activations have trained-like ranges. A freshly initialised model's activations vanish layer after layer
    (MobileNetV3 logits ~1e-10): its int8 scales become extreme and XNNPACK refuses int8 ADDs whose input and
    output scales are too far apart, which says nothing about a trained model."""
    norms = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum


def convert(model, recipe, rep, workdir: Path, stem: str):
    from converters.convert import convert_saved_model, export_saved_model

    saved = workdir / f"{stem}.saved"
    if not saved.exists():
        export_saved_model(model, saved)
    path = workdir / f"{stem}.{recipe}.tflite"
    try:
        path.write_bytes(convert_saved_model(saved, recipe, rep))
    except Exception as exc:  # a recipe that fails is a row with its reason, the rest go on
        return None, str(exc).splitlines()[0][:200]
    return path, None


def structure(path: Path) -> dict:
    from tflkit.tflite.inspect import op_counts
    from tflkit.tflite.runtime import delegation_of, load_interpreter

    d = delegation_of(load_interpreter(path, threads=1))
    return {"partitions": d.partitions, "delegated_nodes": d.delegated_nodes, "total_nodes": d.total_nodes,
            "reference_ops": d.reference_summary, "size_bytes": path.stat().st_size,
            "hard_swish_ops": op_counts(path).get("HARD_SWISH", 0)}


def measure(name: str, args, workdir: Path) -> dict:
    from tflkit.models import get_spec

    rng = np.random.default_rng(0)
    if name == DEMO:
        model, size, classes, small = (DEMO_BUILD[k] for k in ("name", "image_size", "num_classes", "small_input"))
    else:
        model, size, classes, small = name, args.size or get_spec(name).default_image_size, args.num_classes, False
    rep = rng.uniform(0, 255, (args.calib_samples, size, size, 3)).astype(np.float32)
    after, before = build_pair(model, size, classes, small)
    set_batchnorm_statistics(after, rep)
    if before is not None:
        _copy_weights(after, before)
    row = {"model": name, "size": size, "has_hard_swish": before is not None}
    if before is not None:
        probe = rng.uniform(0, 255, (4, size, size, 3)).astype(np.float32)
        a, b = after.predict_on_batch(probe), before.predict_on_batch(probe)
        row["float_max_abs_diff"] = float(np.max(np.abs(a - b)))
        row["float_logit_range"] = float(np.max(np.abs(b)))
    files = {}
    for variant, model in (("after", after), ("before", before)):
        if model is None:
            continue
        for recipe in ("fp32", "static_wi8_ai8"):
            path, error = convert(model, recipe, rep, workdir, f"{name}.{variant}")
            if error:
                row[f"{variant}_{recipe}_error"] = error
                continue
            files[(variant, recipe)] = path
            row[f"{variant}_{recipe}"] = structure(path)
    if name == "mobilenetv3_small_100":
        path, error = convert(after, "static_wi8_ai16", rep, workdir, f"{name}.after")
        row["after_static_wi8_ai16"] = {"error": error} if error else {**structure(path), "runs": _runs_once(path)}
    row["loadavg_1m_before_timing"] = round(os.getloadavg()[0], 2)  # what else ran on the cores (2 here)
    timings = harness.host_latency(list(files.values()), threads=THREADS, rounds=args.rounds, runs=args.per_round,
                                   warmup=args.warmup)
    for (variant, recipe), path in files.items():
        for threads in THREADS:
            row[f"{variant}_{recipe}"][f"t{threads}"] = timings[path.name][threads]
    return row


def _runs_once(path) -> bool:
    from tflkit.tflite.runtime import load_interpreter, random_inputs

    interpreter = load_interpreter(path, threads=1)
    for detail, array in zip(interpreter.get_input_details(), random_inputs(interpreter)):
        interpreter.set_tensor(detail["index"], array)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return bool(np.all(np.isfinite(out)))


def _fmt_t(entry, threads):
    t = entry.get(f"t{threads}") if entry else None
    if not t or "median_ms" not in t:
        return t.get("status", "-") if t else "-"
    low, high = (t["p10_ms"], t["p90_ms"]) if "p10_ms" in t else (t["round_min_ms"], t["round_max_ms"])
    return f"{t['median_ms']:.2f} ({low:.2f}-{high:.2f})"


def _median(entry, threads):
    t = (entry or {}).get(f"t{threads}") or {}
    return t.get("median_ms")


def _thread_ratio(row, variant, recipe="static_wi8_ai8"):
    q = row.get(f"{variant}_{recipe}") or {}
    if _median(q, 1) is None or _median(q, 2) is None:
        return None
    return _median(q, 2) / _median(q, 1)


def verdict(rows) -> list[str]:
    """The issue's targets, checked on this run's numbers."""
    lines = []
    after = [r for r in rows if r.get("after_static_wi8_ai8")]
    one = [r["model"] for r in after if r["after_static_wi8_ai8"].get("partitions") != 1]
    lines.append(f"- static_wi8_ai8 in one XNNPACK partition: {len(after) - len(one)} of {len(after)} models"
                 + (f" (not: {', '.join(one)})" if one else ""))
    slow = [(r["model"], _ratio(r, "after", 1)) for r in after if _ratio(r, "after", 1) != "-"
            and float(_ratio(r, "after", 1)) > 1.1]
    lines.append(f"- int8 median at 1 thread at most 1.1x fp32's: {len(after) - len(slow)} of {len(after)}"
                 + (f" (above: {', '.join(f'{m} {v}x' for m, v in slow)})" if slow else ""))
    ratios = [(r["model"], _thread_ratio(r, "after")) for r in after if _thread_ratio(r, "after") is not None]
    slower = [(m, v) for m, v in ratios if v > 1.0]
    lines.append(f"- int8 at 2 threads not slower than at 1: {len(ratios) - len(slower)} of {len(ratios)}"
                 + (f" (slower: {', '.join(f'{m} t2/t1 {v:.2f}' for m, v in slower)})" if slower else ""))
    return lines


def _ratio(row, variant, threads):
    f, q = _median(row.get(f"{variant}_fp32"), threads), _median(row.get(f"{variant}_static_wi8_ai8"), threads)
    return "-" if f is None or q is None else f"{q / f:.2f}"


NOTES = """Notes on reading this table:

- Partition counts are structural: they come from the graph and this LiteRT's XNNPACK, not from the machine's
  load. "before" keeps one HARD_SWISH op per hard-swish, which XNNPACK does not take in int8, so the
  graph is cut into 20 partitions with the reference kernel between them; "after" is one partition everywhere.
- The models are untrained; their BatchNorm statistics are set from one batch of random pixels so that every
  layer's int8 scales are those of a working network (a freshly initialised MobileNetV3's activations shrink to
  ~1e-10 by the logits, and XNNPACK then refuses int8 ADDs whose input and output scales are too far apart: 18
  partitions for a reason that has nothing to do with the activation).
- fp32 and int8 of one model, at 1 and 2 threads, {how}, so their ratios are the
  comparable figures. The 1-minute load average before each model's timing is listed below the table (on two
  busy cores two threads are slower than one, which says nothing about an idle device).
"""


def markdown(rows, conditions, command=None) -> str:
    per_invoke = any("p10_ms" in (row.get(f"{v}_{r}") or {}).get("t1", {})
                     for row in rows for v in ("before", "after") for r in ("fp32", "static_wi8_ai8"))
    how = ("median ms (10th-90th percentile), every (file, threads) interpreter invoked in turn in one fresh process "
           "that imports only LiteRT" if per_invoke else
           "median of the per-round medians in ms (their range over rounds), tflkit's host bench in one fresh "
           "process that imports only LiteRT, the files taking turns round after round")
    lines = ["# int8 delegation: XNNPACK partitions and fp32 vs static_wi8_ai8 latency", "",
             *([f"Command: `{command}`", ""] if command else []),
             ("Conditions: " if command else "Settings: ") + ", ".join(f"{k} {v}" for k, v in conditions.items()), "",
             f"Latency: {how}. `int8/fp32` is the ratio of medians. `before`: the same "
             "weights with the old single hard-swish layer (HARD_SWISH op).", "",
             "| model | size | variant | int8 partitions | int8 nodes delegated | left on reference kernels | "
             "fp32 HARD_SWISH ops | fp32 t1 | int8 t1 | int8/fp32 t1 | fp32 t2 | int8 t2 | int8/fp32 t2 | "
             "int8 t2/t1 |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        for variant in ("before", "after"):
            q, f = row.get(f"{variant}_static_wi8_ai8"), row.get(f"{variant}_fp32")
            if q is None and f is None:
                continue
            q = q or {}
            t21 = _thread_ratio(row, variant)
            lines.append(
                f"| {row['model']} | {row['size']} | {variant} | {q.get('partitions', '-')} | "
                f"{q.get('delegated_nodes', '-')}/{q.get('total_nodes', '-')} | {q.get('reference_ops', '-')} | "
                f"{(f or {}).get('hard_swish_ops', '-')} | "
                f"{_fmt_t(f, 1)} | {_fmt_t(q, 1)} | {_ratio(row, variant, 1)} | {_fmt_t(f, 2)} | {_fmt_t(q, 2)} | "
                f"{_ratio(row, variant, 2)} | {'-' if t21 is None else f'{t21:.2f}'} |")
    lines += ["", "1-minute load average before each model's timing: " + ", ".join(
        f"{r['model']} {r['loadavg_1m_before_timing']}" for r in rows if "loadavg_1m_before_timing" in r)]
    lines += ["", "Targets (issue 14), on this run:", ""] + verdict(rows)
    lines += ["", "Float outputs, old against new hard-swish spelling (same weights, 4 random images):", ""]
    for row in rows:
        if "float_max_abs_diff" in row:
            lines.append(f"- {row['model']}: max abs logit difference {row['float_max_abs_diff']:.2e} "
                         f"(logits up to {row['float_logit_range']:.2f})")
    for row in rows:
        if "after_static_wi8_ai16" in row:
            a16 = row["after_static_wi8_ai16"]
            text = (f"converts ({a16['size_bytes']} bytes, {a16['partitions']} XNNPACK partitions, runs in LiteRT: "
                    f"{a16['runs']})" if "error" not in a16 or not a16.get("error") else f"fails: {a16['error']}")
            lines += ["", f"static_wi8_ai16 of {row['model']} at {row['size']}x{row['size']}: {text}."]
    pairs = [(row["model"], row["before_fp32"], row["after_fp32"]) for row in rows
             if all(_median(row.get(k), t) for k in ("before_fp32", "after_fp32") for t in THREADS)]
    if pairs:
        lines += ["", "fp32 files, after/before median (after: the split hard-swish fused back into HARD_SWISH by "
                  "converters.convert.float_graph; 1.0 is the target):", ""]
        lines += [f"- {m}: t1 {_median(a, 1) / _median(b, 1):.2f}x, "
                  f"t2 {_median(a, 2) / _median(b, 2):.2f}x" for m, b, a in pairs]
    lines += ["", NOTES.format(how="were interleaved invoke by invoke" if per_invoke else
                               "took turns round after round in one process")]
    errors = [(row["model"], k, v) for row in rows for k, v in row.items() if k.endswith("_error")]
    if errors:
        lines += ["", "Conversion failures:", ""] + [f"- {m} {k}: {v}" for m, k, v in errors]
    return "\n".join(lines) + "\n"


def per_round(rows) -> dict:
    """The per-round medians out of the rows (the JSON's raw numbers), keyed model/variant_recipe/tN."""
    raw = {}
    for row in rows:
        for key, entry in row.items():
            for threads in THREADS:
                timing = entry.get(f"t{threads}") if isinstance(entry, dict) else None
                if timing and "per_round_median_ms" in timing:
                    raw[f"{row['model']}/{key}/t{threads}"] = timing.pop("per_round_median_ms")
    return raw


def render(prefix: Path) -> None:
    """PREFIX.md again from PREFIX.json (after a change to this file's layout), measuring nothing."""
    saved = json.loads(Path(f"{prefix}.json").read_text())
    if "summary" in saved:  # written by benchmarks/harness.py
        text = markdown(saved["summary"]["rows"], saved["settings"]) + "\n" + harness.conditions(saved)
    else:  # before issue 22
        text = markdown(saved["rows"], saved["conditions"], saved["command"].strip())
    atomic_write_text(Path(f"{prefix}.md"), text.rstrip() + "\n")


def main(argv=None) -> int:
    parser = harness.arguments(__doc__, NAME)
    parser.add_argument("--models", help="comma-separated names (default: every non-test registry model)")
    parser.add_argument("--size", type=int, default=0, help="input size for every model (default: each one's "
                        "reference size; the demo row keeps the demo's 32)")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=40, help="rounds over all files (default 40)")
    parser.add_argument("--per-round", type=int, default=3, help="timed invokes per file per round")
    parser.add_argument("--warmup", type=int, default=5, help="untimed invokes per file per round")
    parser.add_argument("--calib-samples", type=int, default=8)
    parser.add_argument("--render", action="store_true", help="rewrite the .md from the .json, measure nothing")
    args, results = parser.start(argv)
    if args.render:
        render(args.results)
        return 0

    harness.tensorflow()
    from tflkit.models import get_spec, list_models

    names = args.models.split(",") if args.models else [DEMO, *list_models()]
    for name in names:
        if name != DEMO:
            get_spec(name)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            start = time.perf_counter()
            rows.append(measure(name, args, Path(tmp)))
            q = rows[-1].get("after_static_wi8_ai8") or {}
            print(f"{name:<24} {time.perf_counter() - start:6.1f}s  partitions {q.get('partitions')}  "
                  f"int8/fp32 t1 {_ratio(rows[-1], 'after', 1)}", flush=True)
    size = f"{args.size}x{args.size}" if args.size else "each model's reference size"
    settings = {"input": size, "classes": args.num_classes, "threads": "1 and 2", "rounds": args.rounds,
                "invokes per round": args.per_round, "warm-up per round": args.warmup}
    raw = per_round(rows)
    results.write(markdown(rows, settings), summary={"targets": verdict(rows), "rows": rows}, raw=raw,
                  settings=settings)
    print(f"wrote {results.md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
