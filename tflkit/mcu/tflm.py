"""TensorFlow Lite Micro on the host: does a .tflite run under TFLM, the smallest tensor arena it runs in, and its
outputs as TFLM's reference kernels compute them (what an MCU without CMSIS-NN runs).

Every load happens in a child process (tflkit.mcu.tflm_child's functions, run through tflkit.core.isolate): TFLM can
crash its process on a too-small arena or a malformed file. The arena is found by search, not read from TFLM's
report: `print_allocations()` under-counts what allocation needs (alignment and the allocator's own records), so the
figure here is the smallest buffer with which the interpreter allocates every tensor and invokes, checked by a fresh
run at that size succeeding and one at a byte less failing. It includes the input and output tensors (TFLM places
them in the arena) and is measured through the Python interpreter's RecordingMicroAllocator, whose own bookkeeping
(a few hundred bytes) a plain MicroInterpreter on a board does not need: an upper bound by that much.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tflkit.core import isolate
from tflkit.core.errors import ModelFileError, UsageError
from tflkit.mcu import tflm_child
from tflkit.tflite.inspect import float_ops, op_counts
from tflkit.tflite.model import dequantize, quantize
from tflkit.tflite.runtime import load_interpreter

MAX_ARENA = 256 * 1024 * 1024  # the largest arena tried: far above any MCU's SRAM; untouched pages cost nothing
ARENA_ALIGNMENT = 16  # declare it `alignas(16) uint8_t tensor_arena[N]`: the alignment this search ran with
TRY_TIMEOUT_S = 300.0
CHUNK = 256  # images per child process when computing outputs
INSTALL_HINT = "pip install 'tflkit[mcu]'"


def require_tflm() -> None:
    if importlib.util.find_spec("tflite_micro") is None:
        raise UsageError(f"TensorFlow Lite Micro is not installed: {INSTALL_HINT}")


@dataclass
class Attempt:
    """One child run: did TFLM allocate (and invoke), and what it said when it did not."""

    ok: bool
    message: str = ""  # TFLM's lines that say why, or how the child died
    crashed: bool = False
    log: str = ""  # TFLM's own output (C stdio, stdout and stderr)
    outputs: np.ndarray | None = None  # with `images`: one row per image


def attempt(path, arena: int, invoke: bool = False, allocations: bool = False, images: np.ndarray | None = None,
            timeout_s: float = TRY_TIMEOUT_S) -> Attempt:
    """One fresh child: TFLM with an `arena`-byte arena, invoked once on zeros (`invoke`) or on every image of
    `images` (already in the input's dtype); `allocations`: TFLM's own allocation report in the log."""
    with tempfile.TemporaryFile() as output:
        try:
            outcome = isolate.call(tflm_child.run, str(path), int(arena), invoke=invoke, allocations=allocations,
                                   images=images, timeout=timeout_s, stdout=output, stderr=output)
            crash = None
        except isolate.Crashed as exc:
            outcome, crash = None, _crash(exc, timeout_s)
        output.seek(0)
        log = "\n".join(line for line in output.read().decode(errors="replace").splitlines() if line.strip())
    if crash:
        return Attempt(False, crash, crashed=True, log=log)
    if outcome.ok:
        return Attempt(True, log=log, outputs=outcome.outputs)
    return Attempt(False, reason(log, outcome.error), log=log)


def _crash(exc: isolate.Crashed, timeout_s: float) -> str:
    if exc.code is None:
        return f"TFLM did not finish within {timeout_s:.0f} s"
    return f"the TFLM interpreter crashed ({isolate.describe_exit(exc.code)})"


def reason(log: str, error: str) -> str:
    """TFLM's refusal in a few words: the line of its log that names the cause."""
    if "Hybrid models are not supported" in log:
        return ("uint8 or hybrid (float activations, int8 weights) model: TFLite Micro runs int8 and float32 "
                "models only; convert with an int8 recipe (e.g. static_wi8_ai8)")
    op = re.search(r"Didn't find op for builtin opcode '([^']+)'|Failed to get registration from op code (\S+)", log)
    if op:
        return f"operator {op.group(1) or op.group(2)} is not in TFLite Micro's kernels"
    custom = re.search(r"Didn't find op for custom opcode '([^']+)'", log)
    if custom:
        return f"custom operator {custom.group(1)} is not registered in TFLite Micro"
    lines = [line.strip() for line in log.splitlines() if line.strip() and "RecordingMicroAllocator" not in line]
    detail = next((line for line in lines if "failed to prepare" not in line.lower()), "")
    detail = re.sub(r"^\S+\.cc:\d+ ", "", detail)  # the kernel's source line: its check is the reason
    node = re.search(r"Node (\w+) \(number (\d+)\) failed to prepare", log)
    if node:
        if node.group(1) == "DEQUANTIZE" and "kTfLiteInt8" in detail:
            return ("float16 weights: TFLite Micro's DEQUANTIZE takes int8/int16/uint8 inputs only; convert with an "
                    "int8 recipe (e.g. static_wi8_ai8)")
        return f"operator {node.group(1)} (node {node.group(2)}) failed to prepare in TFLite Micro: {detail or error}"
    return f"{error}: {detail}" if detail else error


@dataclass
class TflmCheck:
    """Whether a file runs under TFLM and the arena it needs."""

    model: str
    runs: bool
    reason: str = ""  # why it does not run
    arena_bytes: int | None = None  # smallest arena that allocates and invokes (16-byte aligned buffer)
    arena_checked: bool = False  # fresh runs: at arena_bytes it works, at arena_bytes - 1 it fails
    reported_bytes: int | None = None  # TFLM's own print_allocations() total at arena_bytes
    # ... and its two parts: the head (activations, planned and reused) and the tail (persistent: per-tensor and
    # per-node records, kernels' op data such as per-channel requantization multipliers)
    head_bytes: int | None = None
    tail_bytes: int | None = None
    tries: int = 0
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def check(path) -> TflmCheck:
    """Run `path` under TFLM: refused (and why), or the exact arena. A file that is not there is a UsageError; one
    that is not a readable TFLite model (LiteRT cannot load it either) is a ModelFileError."""
    require_tflm()
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"model file not found: {path}")
    start = time.perf_counter()
    result = TflmCheck(model=path.name, runs=False)
    customs = custom_ops(path)
    if VELA_OP in customs:
        result.reason = ("compiled by Vela for an Ethos-U NPU (custom operator ethos-u): it runs with the Ethos-U "
                         "driver; measure the .tflite it was compiled from")
        return result
    load_interpreter(path, xnnpack=False)  # a damaged file: one line from LiteRT's loader, not a TFLM guess
    result.notes = io_notes(path)
    first = attempt(path, MAX_ARENA, invoke=True)
    result.tries = 1
    if not first.ok:
        result.reason = first.message
        if "op code CUSTOM" in first.message and customs:
            result.reason = f"custom operator {', '.join(customs)} is not registered in TFLite Micro"
        result.seconds = time.perf_counter() - start
        return result
    result.runs = True
    size, tries = smallest_arena(path)
    works, short = attempt(path, size, invoke=True, allocations=True), attempt(path, size - 1, invoke=True)
    result.tries += tries + 2
    result.arena_bytes, result.arena_checked = size, works.ok and not short.ok
    for attr, part in (("reported_bytes", "total"), ("head_bytes", "head"), ("tail_bytes", "tail")):
        found = re.search(rf"Arena allocation {part} (\d+) bytes", works.log)
        setattr(result, attr, int(found.group(1)) if found else None)
    result.seconds = time.perf_counter() - start
    return result


def smallest_arena(path) -> tuple[int, int]:
    """(smallest arena that allocates, sizes tried): the search runs in a child process (doubling from 1 KiB, then
    bisection to the byte); a size that crashes the child counts as too small, and a new child goes on above it."""
    lo, hi, tries = 0, MAX_ARENA, 0  # lo fails, hi works

    def tried(message) -> None:
        nonlocal lo, hi, tries
        if isinstance(message, tflm_child.Tried):
            tries += 1
            if message.ok:
                hi = min(hi, message.arena)
            else:
                lo = max(lo, message.arena)

    while hi - lo > 1:
        try:
            isolate.call(tflm_child.search, str(path), lo, hi, on_message=tried, timeout=TRY_TIMEOUT_S,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except isolate.Crashed as exc:
            if not isinstance(exc.last_message, tflm_child.Trying):  # died outside a try: nothing learned, and
                raise ModelFileError(f"TFLM's arena search on {Path(path).name} failed: "  # trying again would loop
                                     f"{_crash(exc, TRY_TIMEOUT_S)}") from None
            lo, tries = max(lo, exc.last_message.arena), tries + 1
        else:
            if hi - lo > 1:
                raise ModelFileError(f"TFLM's arena search on {Path(path).name} stopped early")
    return hi, tries


VELA_OP = "ethos-u"  # the custom operator Vela puts in place of the graph it compiled for the NPU


def custom_ops(path) -> list[str]:
    """Names of the file's custom operators, read from its flatbuffer with TFLM's own schema."""
    from tflite_micro.python.tflite_micro import runtime

    try:
        model = runtime.convert_bytearray_to_object(bytearray(Path(path).read_bytes()))
    except Exception:  # noqa: BLE001  (a damaged flatbuffer: TFLM's own load names the problem)
        return []
    names = []
    for code in model.operatorCodes or []:
        if code.customCode:
            name = code.customCode.decode(errors="replace") if isinstance(code.customCode, bytes) else \
                str(code.customCode)
            names.append(name)
    return names


def io_notes(path) -> list[str]:
    """What a user deploying this file to an MCU should know about its tensors' types."""
    try:
        ops, computing_in_float = op_counts(path), float_ops(path)
    except (ValueError, RuntimeError, ModelFileError):
        return []
    if not computing_in_float and ("QUANTIZE" in ops or "DEQUANTIZE" in ops):
        return ["float input/output: QUANTIZE/DEQUANTIZE run on the MCU, and the float I/O buffers take 4x the "
                "int8 ones in the arena"]
    if computing_in_float and not any(op in ops for op in ("QUANTIZE", "DEQUANTIZE")):
        return ["float32 compute: TFLM's float reference kernels, no CMSIS-NN or NPU acceleration"]
    return []


class TFLMClassifier:
    """A .tflite run by TFLM (in child processes, CHUNK images each) behind predict(float pixels) -> float logits,
    as tflkit.tflite.model.TFLiteClassifier is for LiteRT."""

    def __init__(self, path, arena_bytes: int | None = None):
        require_tflm()
        self.path = Path(path)
        interpreter = load_interpreter(path, xnnpack=False)
        self.input, self.output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        self.arena = arena_bytes or MAX_ARENA
        self.seconds, self.images = 0.0, 0

    @property
    def image_size(self) -> int:
        return int(self.input["shape"][1])

    def predict(self, images: np.ndarray) -> np.ndarray:
        outputs = []
        for start in range(0, len(images), CHUNK):
            chunk = quantize(images[start:start + CHUNK], self.input)
            began = time.perf_counter()
            result = attempt(self.path, self.arena, images=chunk, timeout_s=TRY_TIMEOUT_S + 10.0 * len(chunk))
            if not result.ok:
                raise ModelFileError(f"TFLM could not run {self.path.name}: {result.message}")
            self.seconds += time.perf_counter() - began
            self.images += len(chunk)
            outputs.append(dequantize(result.outputs, self.output))
        return np.concatenate(outputs) if outputs else np.zeros((0, int(self.output["shape"][-1])), np.float32)
