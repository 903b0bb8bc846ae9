"""`tflkit inspect MODEL.tflite`: what is inside a .tflite (ops by type and dtype, I/O quantization, size, MACs,
parameters and their stored dtypes, XNNPACK partitions, planned activation arena; `--layers`: MACs per node).

A thin shell over tflkit.api.inspect (tflkit.tflite.describe).
"""

from __future__ import annotations

from pathlib import Path

from tflkit import api
from tflkit.cli.common import JSON_HELP, Reply


def cmd_inspect(args) -> Reply:
    info = api.inspect(args.model, layers=args.layers)
    if args.json:
        return Reply("inspect", [info])
    macs = f"{info['macs'] / 1e6:.2f} M" if info["macs"] else "-"
    print(f"{info['file']}: {info['size_bytes'] / 1e6:.3f} MB ({info['gzip_bytes'] / 1e6:.3f} MB gzipped), MACs {macs}")
    weights = ", ".join(f"{dtype} {n:,}" for dtype, n in info["weight_dtypes"].items()) or "none"
    print(f"  parameters {info['params']:,} ({weights}); activation arena {info['arena_bytes'] / 1024:.1f} KiB "
          f"planned ({info['builtin_arena_bytes'] / 1024:.1f} KiB with the built-in kernels' im2col scratch)")
    d = info["delegation"]
    if d["xnnpack_failed"]:
        print(f"  XNNPACK refused it ({d['xnnpack_failed']}): runs on the built-in kernels")
    else:
        left = ", ".join(f"{op} {n}" for op, n in sorted(d["reference_ops"].items())) or "none"
        print(f"  XNNPACK: {d['delegated_nodes']}/{d['total_nodes']} nodes in {d['partitions']} partition"
              f"{'s' if d['partitions'] != 1 else ''}; left on the built-in kernels: {left}")
    for kind in ("inputs", "outputs"):
        for d in info[kind]:
            quant = f"scale {d['scale']:.6g} zero_point {d['zero_point']}" if d["scale"] else "not quantized"
            print(f"  {kind[:-1]:<6} {d['name']:<32} {str(d['shape']):<18} {d['dtype']:<8} {quant}")
    print(f"  {'op':<24} {'output dtype':<14} count")
    for row in info["ops"]:
        print(f"  {row['op']:<24} {row['dtype']:<14} {row['count']}")
    print("  op output dtypes: " + ", ".join(f"{k} {v}" for k, v in sorted(info["tensor_dtypes"].items())))
    if info["float_ops_in_integer_model"]:
        print("  WARNING float/Flex ops left in an integer model: " + ", ".join(info["float_ops_in_integer_model"]))
    if args.layers:
        print(f"  {'node':>4} {'op':<22} {'output shape':<20} {'MACs':>12}  output")
        for row in info["layers"]:
            macs = f"{row['macs']:,}" if row["dense"] else f"({row['macs']:,})"
            print(f"  {row['index']:>4} {row['op']:<22} {str(row['shape']):<20} {macs:>12}  {row['output']}")
        print("  (MACs in parentheses: element operations, not counted in the model's MACs)")
    return Reply("inspect", [info])


def register(subparsers) -> None:
    p = subparsers.add_parser("inspect", help="ops, dtypes, I/O quantization, size, MACs, parameters, "
                                                    "XNNPACK partitions and activation arena of a .tflite")
    p.add_argument("model", type=Path, help="a .tflite file")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.add_argument("--layers", action="store_true", help="MACs and output shape of every node")
    p.set_defaults(func=cmd_inspect)
