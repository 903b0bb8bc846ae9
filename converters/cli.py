"""`tflkit inspect MODEL.tflite`: what is inside a .tflite (ops by type and dtype, I/O quantization, size, MACs).

Registered into the `tflkit` parser by `register(subparsers)`; a thin shell over converters.inspect.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def describe(path) -> dict:
    from converters.inspect import float_ops, gzip_size, io_details, op_table
    from tflkit.runtime import check_tflite_file

    path = check_tflite_file(path)
    table = op_table(path)
    ops = Counter((row["op"], ",".join(sorted(set(row["outputs"]))) or "-") for row in table)
    try:
        from converters.macs import count_macs

        macs = count_macs(path).macs
    except ImportError:  # the MAC counter is another module's; inspection still works without it
        macs = None
    io = io_details(path)
    integer = any(d["dtype"] in ("int8", "uint8", "int16") for d in io["inputs"] + io["outputs"]) or not any(
        "float" in row["outputs"][0] for row in table if row["op"] in ("CONV_2D", "FULLY_CONNECTED") and row["outputs"])
    return {
        "file": path.name, "size_bytes": path.stat().st_size, "gzip_bytes": gzip_size(path), "macs": macs,
        "ops": [{"op": op, "dtype": dtype, "count": n} for (op, dtype), n in sorted(ops.items())],
        "tensor_dtypes": dict(Counter(t for row in table for t in row["outputs"])),
        "float_ops_in_integer_model": float_ops(path) if integer else [],
        **io,
    }


def cmd_inspect(args) -> int:
    info = describe(args.model)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    macs = f"{info['macs'] / 1e6:.2f} M" if info["macs"] else "-"
    print(f"{info['file']}: {info['size_bytes'] / 1e6:.3f} MB ({info['gzip_bytes'] / 1e6:.3f} MB gzipped), MACs {macs}")
    for kind in ("inputs", "outputs"):
        for d in info[kind]:
            quant = f"scale {d['scale']:.6g} zero_point {d['zero_point']}" if d["scale"] else "not quantized"
            print(f"  {kind[:-1]:<6} {d['name']:<32} {str(d['shape']):<18} {d['dtype']:<8} {quant}")
    print(f"  {'op':<24} {'output dtype':<14} count")
    for row in info["ops"]:
        print(f"  {row['op']:<24} {row['dtype']:<14} {row['count']}")
    print("  tensor dtypes: " + ", ".join(f"{k} {v}" for k, v in sorted(info["tensor_dtypes"].items())))
    if info["float_ops_in_integer_model"]:
        print("  WARNING float/Flex ops left in an integer model: " + ", ".join(info["float_ops_in_integer_model"]))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("inspect", help="ops, tensor dtypes, I/O quantization, size and MACs of a .tflite")
    p.add_argument("model", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_inspect)
