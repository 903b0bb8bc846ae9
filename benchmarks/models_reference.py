"""Every registered model at its reference size: parameters and MACs against the reference, fp32 and int8 file
sizes, and LiteRT latency at 1 thread, measured side by side in one run.

    python benchmarks/models_reference.py [--models resnet18,squeezenet1_1] [--skip-int8] [--runs 30]

Writes benchmarks/results/models_reference.md and .json. int8 is `static_wi8_ai8` (int8 weights and activations,
int8 input/output) calibrated on random pixels: enough for size and speed, meaningless for accuracy. Latency: one
interpreter per file, warm-up, then fp32 and int8 invoked alternately so that both see the same machine load;
median and the 10th-90th percentile spread. EfficientNetV2-S int8 at 384 needs ~45 s and ~5.5 GB to convert.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "benchmarks" / "results"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every non-test model)")
    parser.add_argument("--skip-int8", action="store_true", help="fp32 only (int8 conversion is the slow part)")
    parser.add_argument("--runs", type=int, default=30, help="timed invocations per file (default 30)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--calib-samples", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS / "models_reference")
    args = parser.parse_args(argv)

    from tflkit.core.tfenv import quiet_tensorflow

    tf = quiet_tensorflow()
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
    conditions = {
        "threads": 1, "runtime": "ai_edge_litert (XNNPACK on)", "runs": args.runs, "warmup": args.warmup,
        "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
        "tensorflow": tf.__version__, "date": time.strftime("%Y-%m-%d %H:%M"), "calib_samples": args.calib_samples,
    }
    from tflkit.core.fileio import atomic_write_text

    atomic_write_text(args.out.with_suffix(".json"), json.dumps({"conditions": conditions, "rows": rows},
                                                                indent=2) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), markdown(rows, conditions))
    print(f"wrote {args.out.with_suffix('.md')} and .json")
    return 0


def measure(name, args) -> dict:
    from converters.convert import ConversionError, convert_saved_model, export_saved_model
    from tflkit.models import count_params, create_model, get_spec
    from tflkit.tflite.macs import count_macs

    spec = get_spec(name)
    size = spec.default_input_size
    model = create_model(name)
    row = {"model": name, "input_size": size, "params": count_params(model), "reference": spec.reference,
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
        row.update(_latencies(files, args.runs, args.warmup))
    return row


def _latencies(files, runs, warmup) -> dict:
    from tflkit.tflite.runtime import load_interpreter

    runners = {}
    for recipe, path in files.items():
        interpreter = load_interpreter(path, threads=1)
        inp = interpreter.get_input_details()[0]
        x = np.random.default_rng(1).uniform(0, 255, inp["shape"])
        interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]) if inp["dtype"] != np.int8
                               else (x - 128).astype(np.int8))
        for _ in range(warmup):
            interpreter.invoke()
        runners[recipe] = interpreter
    times = {recipe: [] for recipe in runners}
    for _ in range(runs):  # alternate the files so that both see the same machine load
        for recipe, interpreter in runners.items():
            start = time.perf_counter()
            interpreter.invoke()
            times[recipe].append((time.perf_counter() - start) * 1e3)
    out = {}
    for recipe, t in times.items():
        p10, p50, p90 = np.percentile(t, [10, 50, 90])
        out.update({f"{recipe}_median_ms": round(p50, 2), f"{recipe}_p10_ms": round(p10, 2),
                    f"{recipe}_p90_ms": round(p90, 2)})
    return out


def _fmt_int(v):
    return "-" if v is None else f"{v:,}"


def _mb(v):
    return "-" if v is None else f"{v / 1e6:.2f}"


def _lat(row, recipe):
    if f"{recipe}_median_ms" not in row:
        return row.get(f"{recipe}_status", "skipped")
    return f"{row[f'{recipe}_median_ms']:.2f} ({row[f'{recipe}_p10_ms']:.2f}-{row[f'{recipe}_p90_ms']:.2f})"


def _line(row):
    return (f"params {row['params']:,}  MACs {_fmt_int(row.get('macs'))} ({row.get('macs_diff_pct', '-')}%)  "
            f"fp32 {_lat(row, 'fp32')} ms  int8 {_lat(row, 'static_wi8_ai8')} ms")


def markdown(rows, conditions) -> str:
    lines = [
        "# Reference models: parameters, MACs, size and latency",
        "",
        "Generated by `benchmarks/models_reference.py`. " + ", ".join(f"{k}: {v}" for k, v in conditions.items()),
        "",
        "MACs counted by `tflkit/tflite/macs.py` on the fp32 .tflite (conv, depthwise, fully connected). int8 is "
        "`static_wi8_ai8` (full integer, int8 input/output) calibrated on random pixels: for size and speed only. "
        "Latency in ms at 1 thread: median (10th-90th percentile), fp32 and int8 invoked alternately.",
        "",
        "| model | input | params | ref params | MACs | ref MACs | MACs diff | fp32 MB | int8 MB | fp32 ms | int8 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        exact = "" if r["reference_params"] is None else (" (exact)" if r["params"] == r["reference_params"]
                                                          else " (DIFFERS)")
        lines.append(
            f"| {r['model']} | {r['input_size']} | {r['params']:,}{exact} | {_fmt_int(r['reference_params'])} "
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
