"""Every registered model at its reference size: parameters and MACs against the reference, fp32 and int8 file
sizes, and LiteRT latency at 1 thread, measured side by side in one run.

    python benchmarks/models_reference.py [--models resnet18,squeezenet1_1] [--skip-int8] [--runs 30] [--rounds 3]
                                          [--out PREFIX]

Writes benchmarks/results/models_reference.md and .json (benchmarks/harness.py's writer: the CPU, its features, the
versions). int8 is `static_wi8_ai8` (int8 weights and activations, int8 input/output) calibrated on random pixels:
enough for size and speed, meaningless for accuracy. Latency: tflkit's own host bench on random inputs in one fresh
process that imports only LiteRT (benchmarks/harness.py host_latency), fp32 and int8 taking turns round after round
so that both see the same machine load, each round --warmup then --runs timed invokes; the median of the per-round
medians and their range over rounds. (Results before issue 22 invoked the two files alternately in a loop of this
script's own and gave the 10th-90th percentile of all invokes.) EfficientNetV2-S int8 at 384 needs ~45 s and ~5.5 GB
to convert.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import harness
import numpy as np

NAME = "models_reference"


def main(argv=None) -> int:
    parser = harness.arguments(__doc__, NAME)
    parser.add_argument("--models", help="comma-separated names (default: every non-test model)")
    parser.add_argument("--skip-int8", action="store_true", help="fp32 only (int8 conversion is the slow part)")
    parser.add_argument("--runs", type=int, default=30, help="timed invocations per file per round (default 30)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, fp32 and int8 taking turns (default 3)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed invocations per file per round")
    parser.add_argument("--calib-samples", type=int, default=8)
    args, results = parser.start(argv)

    harness.tensorflow()
    from tflkit.models import get_spec, list_models

    names = args.models.split(",") if args.models else list_models()
    for name in names:
        get_spec(name)  # an unknown name fails before an hour of work
    rows = []
    for name in names:
        start = time.perf_counter()
        row = measure(name, args)
        rows.append(row)
        print(f"{name:<22} {time.perf_counter() - start:6.1f}s  {_line(row)}", flush=True)
    settings = {"threads": 1, "runtime": "ai_edge_litert (XNNPACK on)", "runs per round": args.runs,
                "rounds": args.rounds, "warmup per round": args.warmup, "calib_samples": args.calib_samples}
    raw = {f"{r['model']}/{recipe}": r.pop(f"{recipe}_per_round_median_ms")
           for r in rows for recipe in ("fp32", "static_wi8_ai8") if f"{recipe}_per_round_median_ms" in r}
    results.write(markdown(rows, settings), summary={"rows": rows}, raw=raw, settings=settings)
    print(f"wrote {results.md_path} and .json")
    return 0


def measure(name, args) -> dict:
    from converters.convert import ConversionError, convert_saved_model, export_saved_model
    from tflkit.models import count_params, create_model, get_spec
    from tflkit.tflite.macs import count_macs

    spec = get_spec(name)
    size = spec.default_image_size
    model = create_model(name)
    row = {"model": name, "image_size": size, "params": count_params(model), "reference": spec.reference,
           "reference_params": spec.reference_params, "reference_macs": spec.reference_macs}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="tflkit-bench-") as tmp:
        saved = export_saved_model(model, Path(tmp) / "saved_model")
        files = {}
        recipes = ["fp32"] + ([] if args.skip_int8 else ["static_wi8_ai8"])
        for recipe in recipes:
            images = rng.uniform(0, 255, (args.calib_samples, size, size, 3)).astype("float32")
            start = time.perf_counter()
            try:
                data = convert_saved_model(saved, recipe, images if recipe != "fp32" else None)
            except ConversionError as exc:
                row[f"{recipe}_status"] = f"convert_failed: {exc}"
                continue
            path = Path(tmp) / f"{name}.{recipe}.tflite"
            path.write_bytes(data)
            files[recipe] = path
            row[f"{recipe}_status"] = "ok"
            row[f"{recipe}_size_bytes"] = len(data)
            row[f"{recipe}_convert_s"] = round(time.perf_counter() - start, 1)
        if "fp32" in files:
            row["macs"] = count_macs(files["fp32"]).macs
            if spec.reference_macs:
                row["macs_diff_pct"] = round(100 * (row["macs"] - spec.reference_macs) / spec.reference_macs, 2)
        if files:
            timings = harness.host_latency(list(files.values()), rounds=args.rounds, runs=args.runs,
                                           warmup=args.warmup)
            for recipe, path in files.items():
                row.update(_latency_columns(recipe, timings[path.name][1]))
    return row


def _latency_columns(recipe: str, t: dict) -> dict:
    if "median_ms" not in t:
        return {f"{recipe}_status": f"{t['status']}: {t['message']}"}
    return {f"{recipe}_median_ms": round(t["median_ms"], 2), f"{recipe}_round_min_ms": round(t["round_min_ms"], 2),
            f"{recipe}_round_max_ms": round(t["round_max_ms"], 2),
            f"{recipe}_per_round_median_ms": t["per_round_median_ms"]}


def _fmt_int(v):
    return "-" if v is None else f"{v:,}"


def _mb(v):
    return "-" if v is None else f"{v / 1e6:.2f}"


def _lat(row, recipe):
    if f"{recipe}_median_ms" not in row:
        return row.get(f"{recipe}_status", "skipped")
    return (f"{row[f'{recipe}_median_ms']:.2f} ({row[f'{recipe}_round_min_ms']:.2f}-"
            f"{row[f'{recipe}_round_max_ms']:.2f})")


def _line(row):
    return (f"params {row['params']:,}  MACs {_fmt_int(row.get('macs'))} ({row.get('macs_diff_pct', '-')}%)  "
            f"fp32 {_lat(row, 'fp32')} ms  int8 {_lat(row, 'static_wi8_ai8')} ms")


def markdown(rows, conditions) -> str:
    lines = [
        "# Reference models: parameters, MACs, size and latency",
        "",
        "Settings: " + ", ".join(f"{k}: {v}" for k, v in conditions.items()),
        "",
        "MACs counted by `tflkit/tflite/macs.py` on the fp32 .tflite (conv, depthwise, fully connected). int8 is "
        "`static_wi8_ai8` (full integer, int8 input/output) calibrated on random pixels: for size and speed only. "
        "Latency in ms at 1 thread: the median of per-round medians (range over rounds), fp32 and int8 taking turns.",
        "",
        "| model | input | params | ref params | MACs | ref MACs | MACs diff | fp32 MB | int8 MB | fp32 ms | int8 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        exact = "" if r["reference_params"] is None else (" (exact)" if r["params"] == r["reference_params"]
                                                          else " (DIFFERS)")
        lines.append(
            f"| {r['model']} | {r['image_size']} | {r['params']:,}{exact} | {_fmt_int(r['reference_params'])} "
            f"| {_fmt_int(r.get('macs'))} | {_fmt_int(r['reference_macs'])} | "
            f"{'-' if 'macs_diff_pct' not in r else format(r['macs_diff_pct'], '+.2f') + '%'} "
            f"| {_mb(r.get('fp32_size_bytes'))} | {_mb(r.get('static_wi8_ai8_size_bytes'))} "
            f"| {_lat(r, 'fp32')} | {_lat(r, 'static_wi8_ai8')} |"
        )
    lines.append("")
    lines.append("References: " + "; ".join(f"{r['model']}: {r['reference']}" for r in rows))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
