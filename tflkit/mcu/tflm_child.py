"""`python -m tflkit.mcu.tflm_child FILE --arena N [--invoke | --search LO | --inputs X.npy --outputs Y.npy]`.

The child side of tflkit.mcu.tflm (argv in, JSON lines out behind a marker, as tflkit.bench.memprobe): TFLM is native
code that can crash the process on a too-small arena or a malformed file, so the parent never loads it itself.
- plain: construct the interpreter with an N-byte arena (construction allocates every tensor: TFLM allocates
  nothing later); with --invoke, run it once on zeros.
- --search LO: the smallest arena that allocates, searched here between LO (known to fail) and N (known to
  work): doubling from 1 KiB, then bisection. Each size is announced before it is tried and its outcome printed
  after, so when a size crashes the process the parent knows which one it was and goes on from there.
- --inputs: run every image of X.npy (already in the input's dtype, one per invoke), save the outputs to Y.npy.
TFLM's own messages go to this process's stdout and stderr; the parent reads them for the reason of a failure.
"""

from __future__ import annotations

import argparse
import json
import sys

MARKER = "tflkit-tflm-result: "


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--arena", type=int, required=True)
    p.add_argument("--invoke", action="store_true")
    p.add_argument("--search", type=int, metavar="LO")
    p.add_argument("--inputs")
    p.add_argument("--outputs")
    p.add_argument("--allocations", action="store_true", help="print TFLM's own allocation report")
    args = p.parse_args(argv)
    from tflkit.core.process import die_with_parent

    die_with_parent()
    if args.search is not None:
        _search(args.model, args.search, args.arena)
        return 0
    try:
        interpreter = _load(args.model, args.arena)
        if args.allocations:
            interpreter.print_allocations()
        if args.inputs:
            _run_images(interpreter, args.inputs, args.outputs)
        elif args.invoke:
            import numpy as np

            detail = interpreter.get_input_details(0)
            interpreter.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
            interpreter.invoke()
    except (RuntimeError, ValueError) as exc:
        _result({"ok": False, "error": str(exc).strip()})
        return 0
    except Exception as exc:  # noqa: BLE001  (the Python side reading a damaged flatbuffer: struct.error, ...)
        _result({"ok": False, "error": f"not a model TFLite Micro can read ({type(exc).__name__}: "
                                       f"{str(exc).strip()[:160]})"})
        return 0
    _result({"ok": True})
    return 0


def _load(model: str, arena: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_file(model, arena_size=arena)


def _run_images(interpreter, inputs: str, outputs: str) -> None:
    import numpy as np

    results = []
    for image in np.load(inputs):
        interpreter.set_input(image[None], 0)
        interpreter.invoke()
        results.append(np.array(interpreter.get_output(0)).reshape(-1))
    np.save(outputs, np.stack(results))


def _search(model: str, lo: int, hi: int) -> None:
    def works(size: int) -> bool:
        _result({"trying": size})
        try:
            _load(model, size)
            ok = True
        except (RuntimeError, ValueError):
            ok = False
        _result({"arena": size, "ok": ok})
        return ok

    size = max(1024, 2 * lo)
    while size < hi:
        if works(size):
            hi = size
            break
        lo, size = size, size * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if works(mid):
            hi = mid
        else:
            lo = mid


def _result(record: dict) -> None:
    # TFLM prints through C stdio into the same pipe; the parent finds this line by its marker, wherever it lands.
    sys.stdout.write(f"\n{MARKER}{json.dumps(record)}\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
