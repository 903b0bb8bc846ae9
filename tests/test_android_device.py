"""The bench path against a REAL phone. Skipped unless one is attached and named:

    TFLKIT_DEVICE_SERIAL=<serial> TFLKIT_BENCHMARK_MODEL=<benchmark_model for its ABI> pytest -m device
"""

from __future__ import annotations

import os
import shutil

import pytest
from doubles.fake_phone import tiny_model  # noqa: F401  (built with TensorFlow on the host)

from android_bench.adb import Adb
from android_bench.install import ensure_benchmark_model
from android_bench.runner import bench

pytestmark = pytest.mark.device


@pytest.fixture
def phone():
    serial = os.environ.get("TFLKIT_DEVICE_SERIAL")
    binary = os.environ.get("TFLKIT_BENCHMARK_MODEL")
    if not serial or not binary:
        pytest.skip("set TFLKIT_DEVICE_SERIAL and TFLKIT_BENCHMARK_MODEL to run against a real phone")
    if shutil.which("adb") is None:
        pytest.skip("adb is not installed")
    adb = Adb()
    ready = {entry.serial for entry in adb.devices() if entry.ready}
    if serial not in ready:
        pytest.skip(f"phone {serial} is not attached and authorized")
    return adb, serial, binary


def test_setup_on_the_phone(phone):
    adb, serial, binary = phone
    installed = ensure_benchmark_model(adb, serial, binary)
    assert installed.remote_path == "/data/local/tmp/tflkit/benchmark_model"


def test_bench_on_the_phone(phone, request, tmp_path):
    adb, serial, binary = phone
    tiny_model = request.getfixturevalue("tiny_model")  # only once the phone is known to be there
    results = bench([tiny_model], [serial], threads=[1, 2], delegates=["cpu", "xnnpack"], runs=10, warmup=2,
                    cooldown_s=0.5, timeout_s=120, logs_dir=tmp_path, binary=binary, adb=adb)
    assert [(r.threads, r.delegate) for r in results] == [(1, "cpu"), (1, "xnnpack"), (2, "cpu"), (2, "xnnpack")]
    for r in results:
        assert r.status == "ok", r.message
        assert r.target == f"android:{serial}" and r.count == 10  # --min_secs=0 makes the count what was asked
        assert 0 < r.min_ms <= r.mean_ms <= r.max_ms
        assert r.device
    assert not adb.shell(serial, "ls /data/local/tmp/tflkit/tiny_cnn16.tflite").exit_code == 0  # cleaned up
