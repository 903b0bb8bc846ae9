"""android_bench.install: picking, downloading (never from the internet here), pushing and probing benchmark_model."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest
from doubles.fake_phone import EM_AARCH64, EM_ARM, fake_binary, fake_phone, write_fake_elf  # noqa: F401

from android_bench.adb import Adb
from android_bench.install import (
    REMOTE_BINARY,
    download_prebuilt,
    elf_machine,
    ensure_benchmark_model,
    prebuilt_suffix,
)
from tflkit.core.errors import DeviceError, UsageError


def test_prebuilt_suffix_follows_the_phones_preferred_abi():
    assert prebuilt_suffix(("arm64-v8a", "armeabi-v7a", "armeabi")) == "aarch64"
    assert prebuilt_suffix(("armeabi-v7a", "armeabi")) == "arm"
    assert prebuilt_suffix(("x86_64", "x86", "arm64-v8a")) == "x86-64"
    assert prebuilt_suffix(("x86",)) == "x86"
    with pytest.raises(DeviceError, match="no prebuilt benchmark_model for ABIs mips; pass --binary PATH"):
        prebuilt_suffix(("mips",))


def test_elf_machine(tmp_path):
    assert elf_machine(write_fake_elf(tmp_path / "a64")) == EM_AARCH64
    assert elf_machine(write_fake_elf(tmp_path / "a32", machine=EM_ARM, bits=32)) == EM_ARM
    (tmp_path / "script").write_text("#!/bin/sh\necho hi\n")
    assert elf_machine(tmp_path / "script") is None


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server standing in for the release storage: serves files from a folder."""
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/android_{{abi}}_benchmark_model"
    server.shutdown()
    server.server_close()


def test_download_once_then_cached(http_server, tmp_path):
    served, url = http_server
    write_fake_elf(served / "android_aarch64_benchmark_model")
    cache = tmp_path / "cache"
    path = download_prebuilt("aarch64", cache, url_template=url)
    assert path == cache / "android_aarch64_benchmark_model" and elf_machine(path) == EM_AARCH64
    (served / "android_aarch64_benchmark_model").unlink()
    assert download_prebuilt("aarch64", cache, url_template=url) == path  # no second download


def test_download_that_is_not_an_executable_leaves_nothing(http_server, tmp_path):
    served, url = http_server
    (served / "android_arm_benchmark_model").write_text("<html>quota exceeded</html>")
    with pytest.raises(DeviceError, match="did not return an executable .*pass --binary PATH"):
        download_prebuilt("arm", tmp_path / "cache", url_template=url)
    assert list((tmp_path / "cache").iterdir()) == []


def test_download_http_error(http_server, tmp_path):
    _, url = http_server
    with pytest.raises(DeviceError, match="HTTP 404 from .*android_x86_benchmark_model; pass --binary PATH"):
        download_prebuilt("x86", tmp_path / "cache", url_template=url)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_download_fails_fast_naming_binary(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/android_{{abi}}_benchmark_model"
    started = time.monotonic()
    with pytest.raises(DeviceError) as excinfo:
        download_prebuilt("aarch64", tmp_path / "cache", url_template=url, timeout_s=3)
    assert time.monotonic() - started < 5
    message = str(excinfo.value)
    assert message.startswith("could not download benchmark_model (") and "\n" not in message
    assert message.endswith("offline? pass --binary PATH to a benchmark_model built for android_aarch64")


def test_ensure_pushes_once_and_probes(fake_phone, fake_binary):
    root = fake_phone.add("FAKE01")
    adb = Adb()
    first = ensure_benchmark_model(adb, "FAKE01", fake_binary)
    assert first.pushed and first.remote_path == REMOTE_BINARY == "/data/local/tmp/tflkit/benchmark_model"
    assert (root / REMOTE_BINARY.lstrip("/")).stat().st_mode & 0o111
    assert not ensure_benchmark_model(adb, "FAKE01", fake_binary).pushed  # same sha256: not pushed again
    reused = ensure_benchmark_model(adb, "FAKE01", None, download=pytest.fail)  # installed and working: reused
    assert reused.source == "already on the device" and not reused.pushed


def test_ensure_downloads_for_the_phones_abi(fake_phone, tmp_path):
    fake_phone.add("FAKEX86", props={"ro.product.cpu.abilist": "x86_64,x86", "ro.product.model": "Emu"})
    asked = []

    def fake_download(suffix, cache_dir):
        asked.append(suffix)
        return write_fake_elf(tmp_path / f"android_{suffix}_benchmark_model", machine=62)

    installed = ensure_benchmark_model(Adb(), "FAKEX86", None, download=fake_download)
    assert asked == ["x86-64"] and installed.pushed


def test_ensure_without_sha256sum_still_works(fake_phone, fake_binary):
    fake_phone.add("FAKE01")
    fake_phone.fault("no_sha256")
    assert ensure_benchmark_model(Adb(), "FAKE01", fake_binary).pushed


def test_a_binary_that_cannot_run_is_one_line(fake_phone, fake_binary, tmp_path):
    fake_phone.add("FAKE01")
    fake_phone.fault("wrong_abi")
    with pytest.raises(DeviceError) as excinfo:
        ensure_benchmark_model(Adb(), "FAKE01", fake_binary)
    assert excinfo.value.status == "wrong_abi"
    assert str(excinfo.value) == (
        "FAKE01: benchmark_model is built for another CPU (wrong ABI): /system/bin/sh: "
        "/data/local/tmp/tflkit/benchmark_model: not executable: 64-bit ELF file"
    )
    script = tmp_path / "benchmark_model.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(UsageError, match="is not an ELF executable"):
        ensure_benchmark_model(Adb(), "FAKE01", script)
