"""Activation memory of a .tflite: its tensors' lifetimes planned the way TFLite's arena planner places them.

No TensorFlow import. `arena_bytes` is the figure a device needs beyond the weights (`size_bytes`, flash): the
high-water mark of the read-write arena holding the graph's inputs, outputs and intermediate tensors.

Lifetimes follow tensorflow/lite/arena_planner.cc (PlanAllocations): graph inputs live from the first node to the
end; a node's outputs are allocated at that node and freed at the node that last reads them (so an output never
shares memory with its own node's inputs); graph outputs, and outputs nobody reads, live to the end. Constants
(weights) are read from the model file and take no arena. Placement follows simple_memory_arena.cc
(CalculateAllocations / Allocate): tensors that live the whole inference first, then by size descending (ties by
allocation time); each goes into the smallest gap, among tensors whose lifetimes overlap its own, that holds it
at 64-byte alignment, else above all of them.

Two figures. `arena_bytes`: the model's own tensors, the activation memory any runtime needs for this file
(an MCU's tensor arena is planned the same way). `builtin_arena_bytes`: the same plus the im2col scratch buffer
LiteRT's built-in CONV_2D kernel allocates for the node it runs (every conv but a 1x1 at stride 1): with it, the plan
equals the span LiteRT itself lays out for the built-in kernels, byte for byte on every registry test model
(tests/test_arena.py). XNNPACK keeps a delegated partition's intermediates in its own workspace, outside this arena;
its footprint shows in `rss_delta_mb` (tflkit.bench.memprobe), not here. Other kernel scratch (MEAN's few bytes) and
TFLite's in-place sharing (an ADD writing over its dead input) are not modelled: neither moved a high-water mark
on the test models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tflkit.tflite.runtime import load_interpreter

ALIGNMENT = 64  # kDefaultTensorAlignment
FOREVER = 1 << 62  # a tensor never freed (kNodeNotAssigned as the last node)


@dataclass(frozen=True)
class Buffer:
    tensor: int  # the tensor's index in the model
    size: int  # bytes
    first: int  # node that allocates it (0 for graph inputs)
    last: int  # node after which it is free; FOREVER for graph outputs


@dataclass(frozen=True)
class ArenaPlan:
    arena_bytes: int  # high-water mark of the placed buffers
    offsets: dict  # tensor index -> byte offset in the arena
    buffers: tuple  # the Buffers placed
    lower_bound: int  # the most bytes live at any one node: no plan can do better than this

    @property
    def efficiency(self) -> float:
        return self.lower_bound / self.arena_bytes if self.arena_bytes else 1.0


def align(value: int, alignment: int = ALIGNMENT) -> int:
    return -(-value // alignment) * alignment


def lifetimes(nodes, graph_inputs, graph_outputs, sizes) -> list[Buffer]:
    """Buffers from nodes in execution order: `nodes` is a list of (input tensor ids, output tensor ids); `sizes`
    maps each tensor id to its bytes. Tensors that no node writes and that are not graph inputs are constants."""
    first, last = {}, {}
    readers = {}
    for i, (inputs, _) in enumerate(nodes):
        for t in inputs:
            if t >= 0:
                readers[t] = i  # the last node that reads it (execution order)
    for t in graph_inputs:
        first[t], last[t] = 0, FOREVER
    for i, (_, outputs) in enumerate(nodes):
        for t in outputs:
            if t in first:
                continue
            first[t] = i
            last[t] = FOREVER if t in graph_outputs or t not in readers else readers[t]
    return [Buffer(t, int(sizes[t]), first[t], last[t]) for t in sorted(first)]


def _overlaps(a: Buffer, b: Buffer) -> bool:
    return a.first <= b.last and b.first <= a.last


def _placement_order(buffers: list[Buffer]) -> list[Buffer]:
    def key(b: Buffer):
        whole = b.first == 0 and b.last == FOREVER
        return (0, b.tensor, 0) if whole else (1, -b.size, b.first)

    return sorted(buffers, key=key)


def place(buffers, order=None, alignment: int = ALIGNMENT) -> dict:
    """Offsets for `buffers` placed in `order` (default: TFLite's), each in the best-fitting gap among the placed
    buffers whose lifetimes overlap it (simple_memory_arena.cc's Allocate)."""
    placed: list[tuple[int, Buffer]] = []  # (offset, buffer), kept sorted by offset
    offsets = {}
    for buf in order if order is not None else _placement_order(list(buffers)):
        current, best, best_gap = 0, None, None
        for offset, other in placed:
            if not _overlaps(buf, other):
                continue
            candidate = align(current, alignment)
            if candidate + buf.size <= offset and (best_gap is None or offset - current < best_gap):
                best, best_gap = candidate, offset - current
            current = max(current, offset + other.size)
        if best is None:
            best = align(current, alignment)
        offsets[buf.tensor] = best
        placed.append((best, buf))
        placed.sort(key=lambda item: item[0])
    return offsets


def high_water(buffers, offsets) -> int:
    return max((offsets[b.tensor] + b.size for b in buffers), default=0)


def lower_bound(buffers) -> int:
    """The most bytes live at once, at any node: every plan needs at least this much."""
    points = sorted({b.first for b in buffers})
    return max((sum(b.size for b in buffers if b.first <= p <= b.last) for p in points), default=0)


def plan(buffers, alignment: int = ALIGNMENT) -> ArenaPlan:
    buffers = tuple(buffers)
    offsets = place(buffers, alignment=alignment)
    return ArenaPlan(high_water(buffers, offsets), offsets, buffers, lower_bound(buffers))


def check_plan(plan_: ArenaPlan, alignment: int = ALIGNMENT) -> None:
    """Raise AssertionError if two buffers alive at the same node share bytes, or an offset is misaligned."""
    bufs = plan_.buffers
    for i, a in enumerate(bufs):
        oa = plan_.offsets[a.tensor]
        assert oa % alignment == 0, f"tensor {a.tensor} at unaligned offset {oa}"
        for b in bufs[i + 1:]:
            ob = plan_.offsets[b.tensor]
            if _overlaps(a, b) and oa < ob + b.size and ob < oa + a.size and a.size and b.size:
                raise AssertionError(f"tensors {a.tensor} and {b.tensor} overlap in time and in memory")


def model_buffers(interpreter) -> list[Buffer]:
    """The arena buffers of an allocated interpreter without a delegate (its node list is the execution order)."""
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]
    nodes = [([int(t) for t in op["inputs"]], [int(t) for t in op["outputs"]]) for op in ops]
    sizes = {}
    for d in interpreter.get_tensor_details():
        shape = d["shape"]
        sizes[d["index"]] = int(np.prod(shape)) * np.dtype(d["dtype"]).itemsize if len(shape) else \
            np.dtype(d["dtype"]).itemsize
    inputs = [int(d["index"]) for d in interpreter.get_input_details()]
    outputs = {int(d["index"]) for d in interpreter.get_output_details()}
    return lifetimes(nodes, inputs, outputs, sizes)


def im2col_buffers(interpreter) -> list[Buffer]:
    """The scratch LiteRT's built-in CONV_2D kernel allocates at its node: one row of kh*kw*in_channels input values
    per output pixel, for every conv except a 1x1 that keeps the spatial size (which reads its input directly).
    Numbered after the model's tensors; alive only at their node."""
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    first_free = max(details, default=-1) + 1
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]
    buffers = []
    for node, op in enumerate(ops):
        if op["op_name"] != "CONV_2D":
            continue
        x, w, y = (details[int(op["inputs"][0])], details[int(op["inputs"][1])], details[int(op["outputs"][0])])
        _, kh, kw, cin = (int(d) for d in w["shape"])
        if kh == 1 and kw == 1 and tuple(x["shape"][1:3]) == tuple(y["shape"][1:3]):
            continue
        size = int(np.prod(y["shape"][:3])) * kh * kw * cin * np.dtype(x["dtype"]).itemsize
        buffers.append(Buffer(first_free + len(buffers), size, node, node))
    return buffers


def arena_plan(path, builtin_scratch: bool = False) -> ArenaPlan:
    """The planned arena of a .tflite file (first subgraph, batch as stored in the file); `builtin_scratch`: with
    the built-in CONV_2D kernels' im2col buffers, as LiteRT lays out its arena without a delegate."""
    interpreter = load_interpreter(path, xnnpack=False)
    buffers = model_buffers(interpreter)
    if builtin_scratch:
        buffers += im2col_buffers(interpreter)
    return plan(buffers)


def arena_bytes(path) -> int:
    return arena_plan(path).arena_bytes


def builtin_arena_bytes(path) -> int:
    return arena_plan(path, builtin_scratch=True).arena_bytes


def runtime_arena_span(interpreter, tensors=None) -> int | None:
    """Bytes LiteRT itself spans with `tensors` after allocation (built-in kernels): the distance from the lowest
    to the highest byte of their buffers, read from the addresses of the arrays it hands out. Default: every
    tensor that is not a constant (the model's activations and the kernels' scratch), i.e. its whole arena.
    None when the runtime does not expose them."""
    if tensors is None:
        ops = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]
        written = {int(t) for op in ops for t in op["outputs"]} | {int(d["index"]) for d in
                                                                   interpreter.get_input_details()}
        read = {int(t) for op in ops for t in op["inputs"] if t >= 0}
        tensors = [d["index"] for d in interpreter.get_tensor_details() if d["index"] in written or
                   d["index"] not in read]  # not read-only constants: activations and unnamed kernel scratch
    low, high = None, 0
    for t in tensors:
        try:
            array = interpreter.tensor(t)()
        except ValueError:
            return None
        start = array.ctypes.data
        low = start if low is None else min(low, start)
        high = max(high, start + array.nbytes)
    return None if low is None else high - low
