"""What `tflkit inspect` and `tflkit.inspect(path)` show of a .tflite, as one dict: ops by type and dtype, I/O
quantization, size, MACs, parameters and their stored dtypes, XNNPACK partitions, the planned activation arena
(`layers`: MACs per node)."""

from __future__ import annotations

from collections import Counter

from tflkit.tflite.arena import arena_bytes, builtin_arena_bytes
from tflkit.tflite.inspect import delegation, float_ops, gzip_size, io_details, op_table, parameters
from tflkit.tflite.macs import count_macs, layer_macs
from tflkit.tflite.runtime import check_tflite_file


def describe(path, layers: bool = False) -> dict:

    path = check_tflite_file(path)
    table = op_table(path)
    ops = Counter((row["op"], ",".join(sorted(set(row["outputs"]))) or "-") for row in table)
    macs = count_macs(path).macs
    io = io_details(path)
    integer = any(d["dtype"] in ("int8", "uint8", "int16") for d in io["inputs"] + io["outputs"]) or not any(
        "float" in row["outputs"][0] for row in table if row["op"] in ("CONV_2D", "FULLY_CONNECTED") and row["outputs"])
    info = {
        "file": path.name, "size_bytes": path.stat().st_size, "gzip_bytes": gzip_size(path), "macs": macs,
        **parameters(path), "arena_bytes": arena_bytes(path), "builtin_arena_bytes": builtin_arena_bytes(path),
        "delegation": delegation(path),
        "ops": [{"op": op, "dtype": dtype, "count": n} for (op, dtype), n in sorted(ops.items())],
        "tensor_dtypes": dict(Counter(t for row in table for t in row["outputs"])),
        "float_ops_in_integer_model": float_ops(path) if integer else [],
        **io,
    }
    if layers:
        info["layers"] = layer_macs(path)
    return info
