"""Run TFLite conversions in a child process, so a converter crash is a failed recipe, not a dead run.

The TFLite converter is C++ and can abort or segfault on models it cannot quantize (seen here: a Softplus layer
under full-integer int8 ends the process with SIGSEGV after "scale out of expressed type range"). One worker
process (converters/worker.py) imports TensorFlow once and converts every recipe in turn; when it dies, the recipe
it was converting becomes a ConversionError naming the signal, and a fresh worker takes the remaining recipes.
A plain subprocess rather than multiprocessing: nothing depends on the caller's __main__ being importable.
"""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from converters.convert import ConversionError


class IsolatedConverter:
    """`with IsolatedConverter(saved_model_dir, calibration_images) as convert: data = convert(recipe)`."""

    def __init__(self, saved_model_dir, calibration_images: np.ndarray | None = None):
        self.saved_model_dir = str(saved_model_dir)
        self._tmp = tempfile.TemporaryDirectory(prefix="tflkit-convert-")
        self.calib_path = None
        if calibration_images is not None:
            self.calib_path = str(Path(self._tmp.name) / "calibration.npy")
            np.save(self.calib_path, calibration_images)
        self._worker = None

    def __enter__(self):
        return self

    def start(self) -> IsolatedConverter:
        """Start the worker now, so its TensorFlow import overlaps the caller's work instead of the first call."""
        self._process()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._worker is not None:
            self._worker.stdin.close()
            self._worker.wait()
            self._worker = None
        self._tmp.cleanup()

    def _process(self) -> subprocess.Popen:
        if self._worker is None:
            self._worker = subprocess.Popen([sys.executable, "-m", "converters.worker"], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, text=True, bufsize=1)
        return self._worker

    def __call__(self, recipe, needs_calibration: bool | None = None) -> bytes:
        name = recipe if isinstance(recipe, str) else recipe.name
        if needs_calibration is None:
            needs_calibration = getattr(recipe, "needs_calibration", False)
        out_path = Path(self._tmp.name) / f"{name}.tflite"
        request = {"saved_model": self.saved_model_dir, "recipe": name, "out": str(out_path),
                   "calib": self.calib_path if needs_calibration else None}
        worker = self._process()
        try:
            worker.stdin.write(json.dumps(request) + "\n")
            worker.stdin.flush()
        except BrokenPipeError:
            pass  # the worker is already gone: reported below
        answer = worker.stdout.readline()
        if not answer:
            code = worker.wait()
            self._worker = None
            raise ConversionError(f"{name}: the TFLite converter crashed ({_describe_exit(code)})")
        reply = json.loads(answer)
        if "error" in reply:
            raise ConversionError(reply["error"])
        return out_path.read_bytes()


class ConverterPool:
    """Several IsolatedConverter workers over one SavedModel: `prefetch(recipes)` starts their conversions in the
    background, `pool(recipe)` returns one's bytes (waiting for a prefetched one, else converting it now).

    One conversion is mostly one core's work (the MLIR passes, then calibration in the interpreter), so on a
    multi-core machine two workers nearly halve the convert stage, and the caller validates one file while the
    next converts. A crash still costs only the recipe that crashed: each worker restarts on its own.
    """

    def __init__(self, saved_model_dir, calibration_images: np.ndarray | None = None, workers: int = 2):
        self._idle = queue.Queue()
        self._converters = [IsolatedConverter(saved_model_dir, calibration_images) for _ in range(max(1, workers))]
        for converter in self._converters:
            self._idle.put(converter)
        self._executor = ThreadPoolExecutor(max_workers=len(self._converters), thread_name_prefix="tflkit-convert")
        self._pending: dict[str, Future] = {}
        self.seconds: dict[str, float] = {}  # recipe -> its own conversion time (not the wait for it)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self) -> ConverterPool:
        for converter in self._converters:
            converter.start()
        return self

    def close(self):
        self._executor.shutdown(wait=True, cancel_futures=True)
        for converter in self._converters:
            converter.close()

    def prefetch(self, recipes) -> None:
        for recipe in recipes:
            name = recipe if isinstance(recipe, str) else recipe.name
            if name not in self._pending:
                self._pending[name] = self._executor.submit(self._convert, recipe)

    def __call__(self, recipe) -> bytes:
        name = recipe if isinstance(recipe, str) else recipe.name
        future = self._pending.pop(name, None)
        return future.result() if future is not None else self._convert(recipe)

    def _convert(self, recipe) -> bytes:
        converter = self._idle.get()
        start = time.perf_counter()
        try:
            return converter(recipe)
        finally:
            self.seconds[recipe if isinstance(recipe, str) else recipe.name] = time.perf_counter() - start
            self._idle.put(converter)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
