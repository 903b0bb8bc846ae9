"""Run TFLite conversions in a child process, so a converter crash is a failed recipe, not a dead run.

The TFLite converter is C++ and can abort or segfault on models it cannot quantize (seen here: a Softplus layer
under full-integer int8 ends the process with SIGSEGV after "scale out of expressed type range"). One worker
process (converters/worker.py) imports TensorFlow once and converts every recipe in turn; when it dies, the recipe
it was converting becomes a ConversionError naming the signal, and a fresh worker takes the remaining recipes.
A plain subprocess rather than multiprocessing: nothing depends on the caller's __main__ being importable.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
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

    def start(self) -> "IsolatedConverter":
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


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
