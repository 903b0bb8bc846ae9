"""What `tflkit inspect` and `tflkit.inspect(path)` show of a .tflite, as one dict: ops by type and dtype, I/O
quantization, size, MACs, parameters and their stored dtypes, XNNPACK partitions, the planned activation arena
(`layers`: MACs per node); and the figures a run's export records for every file it converts (file_figures)."""

from __future__ import annotations

from collections import Counter

from tflkit.core.errors import TflkitError
from tflkit.tflite.arena import arena_bytes, builtin_arena_bytes
from tflkit.tflite.inspect import delegation, float_ops, gzip_size, io_details, op_table, parameters
from tflkit.tflite.macs import count_macs, layer_macs
from tflkit.tflite.runtime import check_tflite_file


def _integer(io: dict, table: list[dict]) -> bool:
    """An integer model: integer I/O, or no float CONV_2D / FULLY_CONNECTED output (float I/O around int8 ops)."""
    return any(d["dtype"] in ("int8", "uint8", "int16") for d in io["inputs"] + io["outputs"]) or not any(
        "float" in row["outputs"][0] for row in table if row["op"] in ("CONV_2D", "FULLY_CONNECTED") and row["outputs"])


def file_figures(path, wanted=("macs", "arena_bytes", "float_ops")) -> dict:
    """MACs, the planned activation arena and the float ops left in an integer file (comma-separated; "" for none or a
    float file), as the export records them beside each .tflite. A figure that cannot be read is left out."""
    figures = {}
    readers = {"macs": lambda: int(count_macs(path).macs), "arena_bytes": lambda: int(arena_bytes(path)),
               "float_ops": lambda: ",".join(float_ops(path)) if _integer(io_details(path), op_table(path)) else ""}
    for key in wanted:
        try:
            figures[key] = readers[key]()
        except (TflkitError, ValueError, RuntimeError):  # unknown stays unknown, never 0
            pass
    return figures


def describe(path, layers: bool = False) -> dict:
    path = check_tflite_file(path)
    table = op_table(path)
    ops = Counter((row["op"], ",".join(sorted(set(row["outputs"]))) or "-") for row in table)
    macs = count_macs(path).macs
    io = io_details(path)
    integer = _integer(io, table)
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
