"""Run TFLite conversions in a child process, so a converter crash is a failed recipe, not a dead run.

The TFLite converter is C++ and can abort or segfault on models it cannot quantize (seen here: a Softplus layer
under full-integer int8 ends the process with SIGSEGV after "scale out of expressed type range"). One worker
process (tflkit.core.isolate.Worker running `convert_file`) imports TensorFlow once and converts every recipe in
turn; when it dies, the recipe it was converting becomes a ConversionError naming the signal, and a fresh worker
takes the remaining recipes. The C++ converter prints to stdout as well: the worker's stdout is this process's
stderr, so a command's own output (`--json`) stays clean.
"""

from __future__ import annotations

import queue
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from converters.convert import ConversionError
from tflkit.core import isolate
from tflkit.core.tfenv import quiet_tensorflow


def convert_file(saved_model_dir: str, recipe: str, calibration_path: str | None = None) -> bytes:
    """In the worker: one recipe's .tflite bytes (calibration images from an .npy file written once per model, not
    sent again with every recipe). A failure the converter does not document is this recipe's failure too, as a
    crash is: one line, and the other recipes go on."""
    quiet_tensorflow()  # TensorFlow's C++ start-up lines, once per worker, would interleave with the demo's log
    from converters.convert import convert_saved_model  # in the child only: the parent never loads the converter

    images = np.load(calibration_path) if calibration_path else None
    try:
        return convert_saved_model(saved_model_dir, recipe, images)
    except ConversionError:
        raise
    except Exception as exc:  # noqa: BLE001 - a row with the reason, as for a crash, not a traceback
        line = (str(exc).strip().splitlines() or [""])[0][:300]
        raise ConversionError(f"{recipe}: the TFLite converter failed ({type(exc).__name__}: {line})") from None


class IsolatedConverter:
    """`with IsolatedConverter(saved_model_dir, calibration_images) as convert: data = convert(recipe)`."""

    def __init__(self, saved_model_dir, calibration_images: np.ndarray | None = None):
        self.saved_model_dir = str(saved_model_dir)
        self._tmp = tempfile.TemporaryDirectory(prefix="tflkit-convert-")
        self.calib_path = None
        if calibration_images is not None:
            self.calib_path = str(Path(self._tmp.name) / "calibration.npy")
            np.save(self.calib_path, calibration_images)
        self._worker = isolate.Worker(stdout=2)  # the converter's C++ prints go to stderr, as its logging does

    def __enter__(self):
        return self

    def start(self) -> IsolatedConverter:
        """Start the worker now, so its TensorFlow import overlaps the caller's work instead of the first call."""
        self._worker.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._worker.close()
        self._tmp.cleanup()

    def __call__(self, recipe, needs_calibration: bool | None = None) -> bytes:
        name = recipe if isinstance(recipe, str) else recipe.name
        if needs_calibration is None:
            needs_calibration = getattr(recipe, "needs_calibration", False)
        try:
            return self._worker.call(convert_file, self.saved_model_dir, name,
                                     self.calib_path if needs_calibration else None)
        except isolate.Crashed as exc:
            raise ConversionError(f"{name}: the TFLite converter crashed ({isolate.describe_exit(exc.code)})") \
                from None


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
