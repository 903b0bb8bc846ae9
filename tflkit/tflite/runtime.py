"""The host TFLite runtime, whichever is installed: LiteRT (ai_edge_litert), tflite_runtime, or tf.lite.

Imports no TensorFlow unless tf.lite is the only runtime or is asked for, so it runs on a board that has only a
runtime wheel.
"""

from __future__ import annotations

import importlib
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tflkit.core.errors import ModelFileError, UsageError
from tflkit.core.limits import TFLITE_BYTES

RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tf.lite")
_MODULES = {
    "ai_edge_litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
    "tf.lite": "tensorflow.lite.python.interpreter",
}

# LiteRT's words when the default delegate cannot take a model: "Node number N (TfLiteXNNPackDelegate) failed to
# prepare." Matched to tell XNNPACK's refusal (the built-in kernels may still run the file) from a broken file.
XNNPACK_REFUSED_MARKERS = ("XNNPack", "XNNPACK")


def available_runtimes() -> list[str]:
    found = []
    for name in RUNTIMES:
        try:
            spec = importlib.util.find_spec(_MODULES[name].split(".")[0])
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            found.append(name)
    return found


def resolve_runtime(name: str | None = None) -> str:
    present = available_runtimes()
    if name is None:
        if not present:
            raise UsageError("no TFLite runtime installed; pip install ai-edge-litert")
        return present[0]
    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {name!r}; choose from: {', '.join(RUNTIMES)}")
    if name not in present:
        raise UsageError(f"runtime {name!r} is not installed here (installed: {', '.join(present) or 'none'})")
    return name


def interpreter_module(runtime: str | None = None):
    runtime = resolve_runtime(runtime)
    if runtime == "tf.lite":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return importlib.import_module(_MODULES[runtime])


def check_tflite_file(path) -> Path:
    """A clear error for a missing, empty, oversized or non-TFLite file before the runtime prints a C++ traceback.
    Reads 8 bytes and the file's size (tflkit.core.limits.TFLITE_BYTES), nothing more."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    TFLITE_BYTES.check(path.stat().st_size, path, ModelFileError)
    with open(path, "rb") as f:
        head = f.read(8)
    if len(head) < 8 or head[4:8] != b"TFL3":
        raise ModelFileError(f"not a TFLite flatbuffer (no TFL3 identifier): {path}")
    return path


def load_interpreter(path, threads: int | None = None, xnnpack: bool = True, runtime: str | None = None,
                     preserve_all_tensors: bool = False, isolate: bool | None = None):
    """An allocated interpreter for the .tflite at `path`, or ModelFileError (XnnpackRefusedError) in one line.

    `isolate` (default: on unless TFLKIT_TFLITE_CHILD_CHECK=0): load the file in a child process first
    (tflkit.tflite.check, once per file per process), so a file that crashes LiteRT's C++ is a ModelFileError here,
    not a dead process. Every tensor's, input's, output's and node's details are read once after allocation:
    LiteRT decodes tensor names as it hands them out, and a name that is not UTF-8 raised UnicodeDecodeError in the
    middle of whatever reader asked first.
    """
    path = check_tflite_file(path)
    if isolate is not False:
        preflight(path, xnnpack=xnnpack, runtime=runtime)
    module = interpreter_module(runtime)
    kwargs = {"model_path": str(path), "num_threads": threads}
    if not xnnpack:
        kwargs["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if preserve_all_tensors:
        kwargs["experimental_preserve_all_tensors"] = True
    try:
        interpreter = module.Interpreter(**kwargs)
        interpreter.allocate_tensors()
        read_details(interpreter, path)
    except UnicodeDecodeError as exc:  # a name (model description, op or tensor name) that is not UTF-8
        raise ModelFileError(f"cannot load {path}: a name in the file is not UTF-8 "
                             f"(byte {exc.object[exc.start:exc.start + 1].hex()} at position {exc.start})") from None
    except (ValueError, RuntimeError) as exc:
        text = str(exc).strip() or type(exc).__name__
        if xnnpack and any(marker in text for marker in XNNPACK_REFUSED_MARKERS):
            raise XnnpackRefusedError(f"XNNPACK refused {path.name}: {_delegate_reason(text)}") from None
        raise ModelFileError(f"cannot load {path}: {text.splitlines()[0]}") from None
    return interpreter


def preflight(path, xnnpack: bool = True, runtime: str | None = None) -> None:
    """The child-process load of tflkit.tflite.check (unless TFLKIT_TFLITE_CHILD_CHECK=0), once per file: raises
    what loading `path` here would, without risking this process. A benchmark calls it before its clock starts."""
    from tflkit.tflite import check as tflite_check  # a cycle: the check's child loads through this module

    if tflite_check.enabled():
        tflite_check.require_loadable(check_tflite_file(path), xnnpack=xnnpack, runtime=runtime)


def read_details(interpreter, path) -> None:
    """Every detail the readers ask LiteRT for, once, so that a file LiteRT cannot describe fails at load time with
    one line, not in the middle of a reader: each tensor's name decoded (get_tensor_details skips a tensor whose
    name is not UTF-8, since UnicodeDecodeError is a ValueError, while get_input_details and the readers that ask
    for one tensor raise it), input, output and node tensor indices checked in range."""
    native = getattr(interpreter, "_interpreter", None)
    count = native.NumTensors(0) if native is not None else len(interpreter.get_tensor_details())
    for index in range(count if native is not None else 0):
        try:
            interpreter._get_tensor_details(index, 0)
        except UnicodeDecodeError as exc:
            raise ModelFileError(f"cannot load {path}: the name of tensor {index} is not UTF-8 (byte "
                                 f"{exc.object[exc.start:exc.start + 1].hex()} at position {exc.start})") from None
        except ValueError:  # a scratch tensor without a name: LiteRT's own readers skip it too
            continue
    for detail in (*interpreter.get_input_details(), *interpreter.get_output_details()):
        if not 0 <= int(detail["index"]) < count:
            raise ModelFileError(f"cannot load {path}: input/output tensor {detail['index']} out of range")
    for op in interpreter._get_ops_details():
        for t in (*op["inputs"], *op["outputs"]):
            if not -1 <= int(t) < count:
                raise ModelFileError(f"cannot load {path}: node {op['index']} ({op['op_name']}) names tensor {t} "
                                     f"of {count}")


class XnnpackRefusedError(ModelFileError):
    """The default delegate failed to prepare the model; the built-in kernels may still run it."""


def _delegate_reason(text: str) -> str:
    # LiteRT's message is several lines ending "Node number N (TfLiteXNNPackDelegate) failed to prepare."
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    named = [line for line in lines if any(marker in line for marker in XNNPACK_REFUSED_MARKERS)]
    return (named or lines)[-1][:300]


@dataclass(frozen=True)
class Delegation:
    """What the default delegate (XNNPACK) took of a model, read from the interpreter's node list.

    benchmark_model prints the same as "Replacing N out of M node(s) with delegate ..., yielding K partitions".
    """

    partitions: int  # DELEGATE nodes: each is one contiguous run of nodes XNNPACK executes
    delegated_nodes: int  # model nodes inside those partitions
    total_nodes: int  # model nodes (the first subgraph's operators)
    reference_ops: dict  # op type -> count of nodes left on the built-in (reference/optimized) kernels

    @property
    def reference_summary(self) -> str:
        return ",".join(f"{op}x{n}" if n > 1 else op for op, n in sorted(self.reference_ops.items())) or "-"


def delegation_of(interpreter) -> Delegation:
    """Partitions, delegated nodes and leftover op types of an allocated interpreter.

    With a delegate applied, `_get_ops_details()` lists the model's nodes followed by one DELEGATE node per
    partition, whose inputs are everything the partition reads and whose outputs are what it writes. Walking back
    from those outputs through the producing nodes, stopping at the partition's inputs, finds the nodes it holds.
    """
    ops = interpreter._get_ops_details()
    model_nodes = [op for op in ops if op["op_name"] != "DELEGATE"]
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    producer = {int(t): op["index"] for op in model_nodes for t in op["outputs"]}
    by_index = {op["index"]: op for op in model_nodes}
    taken = set()
    for partition in delegates:
        boundary = {int(t) for t in partition["inputs"]}
        stack = [int(t) for t in partition["outputs"]]
        while stack:
            tensor = stack.pop()
            node = producer.get(tensor)
            if node is None or node in taken:
                continue
            taken.add(node)
            stack.extend(int(t) for t in by_index[node]["inputs"] if t >= 0 and int(t) not in boundary)
    left = Counter(op["op_name"] for op in model_nodes if op["index"] not in taken)
    return Delegation(len(delegates), len(taken), len(model_nodes), dict(left))


def load_interpreter_or_builtin(path, threads: int | None = None, runtime: str | None = None, log=None):
    """(interpreter, reason): XNNPACK if it prepares the model, else the built-in kernels and XNNPACK's reason.

    A model XNNPACK refuses ("failed to prepare") still runs on the built-in kernels; inspect and eval use this so
    that such a file is measured, not lost. A file the built-in kernels cannot load either raises ModelFileError.
    """
    try:
        return load_interpreter(path, threads=threads, runtime=runtime), None
    except XnnpackRefusedError as exc:
        reason = str(exc)
    interpreter = load_interpreter(path, threads=threads, xnnpack=False, runtime=runtime)
    if log:
        log(f"{reason}; running it on the built-in kernels")
    return interpreter, reason


def random_inputs(interpreter, seed: int = 0) -> list:
    """Seeded random arrays for every input of `interpreter` (its dtype's full range; 0..255 for float inputs), as
    benchmark_model feeds by default."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = []
    for detail in interpreter.get_input_details():
        shape, dtype = detail["shape"], detail["dtype"]
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            arrays.append(rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype))
        else:
            arrays.append(rng.uniform(0, 255, size=shape).astype(dtype))
    return arrays
