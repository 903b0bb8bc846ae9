"""Benchmark .tflite models on Android phones with TensorFlow Lite's `benchmark_model`, over adb.

One module per job: `parser` reads the tool's output (every version), `adb` wraps the adb executable, `install`
puts the right benchmark_model binary on a phone, `runner` drives the push-run-parse loop, `cli` is the
`tflkit android ...` shell over them. Nothing here imports TensorFlow, LiteRT or NumPy, so it runs on a laptop that
has only adb and Python.
"""

from android_bench.parser import ParsedLog, parse_log

__all__ = ["ParsedLog", "parse_log"]
