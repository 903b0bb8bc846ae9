"""Pytest fixtures around the fake adb TEST DOUBLE (`tests/doubles/fake_adb`): a fake phone on PATH, a tiny model.

Import the fixtures into a test module: `from doubles.fake_phone import fake_phone, tiny_model, fake_binary`.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

FAKE_ADB = Path(__file__).with_name("fake_adb")

PIXEL_PROPS = {
    "ro.product.manufacturer": "Google",
    "ro.product.model": "Pixel 7",
    "ro.soc.model": "GS201",
    "ro.board.platform": "gs201",
    "ro.hardware": "panther",
    "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
    "ro.build.version.sdk": "34",
}
PIXEL_CPU_KHZ = [1803000] * 4 + [2348000] * 2 + [2850000] * 2

# ELF e_machine values (the ABI a binary is built for).
EM_ARM, EM_X86, EM_X86_64, EM_AARCH64 = 40, 3, 62, 183


@dataclass
class FakePhones:
    """Handle on the fake adb's state. Add devices, inject faults, read what adb was asked to do."""

    home: Path
    monkeypatch: pytest.MonkeyPatch

    def add(self, serial: str, state: str = "device", props: dict | None = None, cpu_khz=None) -> Path:
        devices = self._devices()
        devices[serial] = {"state": state, "props": dict(PIXEL_PROPS if props is None else props)}
        self._write(devices)
        root = self.home / serial / "root"
        freqs = PIXEL_CPU_KHZ if cpu_khz is None else cpu_khz
        for core, khz in enumerate(freqs):
            path = root / f"sys/devices/system/cpu/cpu{core}/cpufreq/cpuinfo_max_freq"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{khz}\n")
        (root / "data/local/tmp").mkdir(parents=True, exist_ok=True)
        return root

    def fault(self, *faults: str, serial: str | None = None, delegate: str | None = None) -> None:
        self.monkeypatch.setenv("FAKE_ADB_FAULT", ",".join(faults))
        if serial:
            self.monkeypatch.setenv("FAKE_ADB_FAULT_SERIAL", serial)
        if delegate:
            self.monkeypatch.setenv("FAKE_ADB_FAULT_DELEGATE", delegate)

    def root(self, serial: str) -> Path:
        return self.home / serial / "root"

    def calls(self) -> list[list[str]]:
        log = self.home / "calls.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def running_device_processes(self) -> list[int]:
        return [int(p.name) for p in self.home.glob("*/proc/*") if _is_fake_device_process(int(p.name))]

    def _devices(self) -> dict:
        path = self.home / "devices.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def _write(self, devices: dict) -> None:
        (self.home / "devices.json").write_text(json.dumps(devices, indent=1))


def _is_fake_device_process(pid: int) -> bool:
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return b"--device-process" in cmdline.read_bytes() and str(FAKE_ADB).encode() in cmdline.read_bytes()
    except OSError:
        return False


@pytest.fixture
def fake_phone(tmp_path, monkeypatch):
    """A fake `adb` first on PATH, run by this interpreter (so it has the venv's LiteRT). No devices yet."""
    home = tmp_path / "fake_adb_home"
    home.mkdir()
    bin_dir = tmp_path / "fake_adb_bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "adb"
    # exec, so killing the "adb client" kills this very process, as with the real adb.
    wrapper.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{FAKE_ADB}' \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_ADB_HOME", str(home))
    monkeypatch.delenv("FAKE_ADB_FAULT", raising=False)
    monkeypatch.delenv("FAKE_ADB_FAULT_SERIAL", raising=False)
    monkeypatch.delenv("FAKE_ADB_FAULT_DELEGATE", raising=False)
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    monkeypatch.delenv("TFLKIT_BENCHMARK_MODEL", raising=False)  # the CLI's --binary default
    phones = FakePhones(home, monkeypatch)
    yield phones
    for pid in phones.running_device_processes():  # never leave a "phone process" behind, even on failure
        os.kill(pid, signal.SIGKILL)


def write_fake_elf(path: Path, machine: int = EM_AARCH64, bits: int = 64) -> Path:
    """A file with a valid ELF header for `machine`, standing in for a benchmark_model binary."""
    header = b"\x7fELF" + bytes([2 if bits == 64 else 1, 1, 1]) + bytes(9)
    header += struct.pack("<HHI", 2, machine, 1)
    path.write_bytes(header + bytes(64))
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_binary(tmp_path) -> Path:
    return write_fake_elf(tmp_path / "benchmark_model")


_BUILT_MODELS: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer keras model at 16x16, converted with TensorFlow (tests may import TF; android_bench may not).

    Built once per test session: each test module that imports this fixture gets its own fixture definition, so
    the model is memoized here rather than by pytest's scope.
    """
    if "tiny" not in _BUILT_MODELS:
        _BUILT_MODELS["tiny"] = _build_tiny_model(tmp_path_factory.mktemp("tiny_model") / "tflite")
    return _BUILT_MODELS["tiny"]


def _build_tiny_model(folder: Path) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3),
        ]
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tiny_cnn16.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path
