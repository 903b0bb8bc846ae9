"""android_bench.adb: parsing adb's answers, the fake phone end to end, and the real adb where no phone is needed."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess

import pytest
from doubles.fake_phone import fake_binary, fake_phone  # noqa: F401  (pytest fixtures)

from android_bench.adb import (
    ADB_MISSING,
    Adb,
    DeviceFacts,
    facts_from_props,
    find_adb,
    parse_devices,
    parse_getprop,
)
from tflkit.core.errors import DeviceError

DEVICES_L = """\
* daemon not running; starting now at tcp:5037
* daemon started successfully
List of devices attached
0123456789ABCDEF       device usb:1-1 product:panther model:Pixel_7 device:panther transport_id:1
emulator-5554          offline transport_id:2
R58M12345              unauthorized usb:1-2 transport_id:3
????????????           no permissions (user in plugdev group; are your udev rules wrong?); see [http://developer.android.com/tools/device.html] usb:1-3 transport_id:4
ZY22ABC                recovery usb:1-4 product:x model:moto device:x transport_id:5
ZY22DEF                sideload usb:1-5 transport_id:6

"""


def test_parse_devices_every_state():
    entries = parse_devices(DEVICES_L)
    assert [(e.serial, e.state) for e in entries] == [
        ("0123456789ABCDEF", "device"),
        ("emulator-5554", "offline"),
        ("R58M12345", "unauthorized"),
        ("????????????", "no permissions"),
        ("ZY22ABC", "recovery"),
        ("ZY22DEF", "sideload"),
    ]
    assert entries[0].ready and not entries[2].ready
    assert entries[0].details == {"usb": "1-1", "product": "panther", "model": "Pixel_7", "device": "panther",
                                  "transport_id": "1"}
    assert entries[3].details == {"usb": "1-3", "transport_id": "4"}


def test_parse_devices_plain_tab_format_and_empty():
    assert [(e.serial, e.state) for e in parse_devices("List of devices attached\nabc\tdevice\n\n")] == [
        ("abc", "device")
    ]
    assert parse_devices("List of devices attached\n\n") == []


def test_getprop_to_facts():
    props = parse_getprop(
        "[ro.product.manufacturer]: [samsung]\n[ro.product.model]: [SM-S911B]\n[ro.soc.model]: []\n"
        "[ro.board.platform]: [kalama]\n[ro.product.cpu.abilist]: [arm64-v8a,armeabi-v7a,armeabi]\n"
        "[ro.build.version.sdk]: [34]\n[persist.multi]: [a\n"
    )
    facts = facts_from_props("S1", props, [1900000] * 3 + [2800000] * 4 + [3360000])
    assert facts.describe() == "samsung SM-S911B (kalama)"  # an empty ro.soc.model falls back to the board
    assert facts.abis == ("arm64-v8a", "armeabi-v7a", "armeabi") and facts.sdk == 34
    assert facts.cpu_summary() == "1x3.36+4x2.80+3x1.90 GHz"
    assert DeviceFacts("S2").describe() == "S2" and DeviceFacts("S2").cpu_summary() == ""


def test_missing_adb_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeviceError) as excinfo:
        find_adb()
    assert str(excinfo.value) == ADB_MISSING
    assert "install Debian's `adb` package or the Android platform-tools" in ADB_MISSING


# ---- the fake phone (TEST DOUBLE) ----


def test_fake_phone_devices_and_facts(fake_phone):
    fake_phone.add("FAKE01")
    fake_phone.add("FAKE02", state="unauthorized")
    adb = Adb()
    assert [(e.serial, e.state) for e in adb.devices()] == [("FAKE01", "device"), ("FAKE02", "unauthorized")]
    facts = adb.facts("FAKE01")
    assert facts.describe() == "Google Pixel 7 (GS201)"
    assert facts.abis[0] == "arm64-v8a" and facts.sdk == 34
    assert facts.cpu_summary() == "2x2.85+2x2.35+4x1.80 GHz"


def test_push_sha256_pull_and_exit_codes(fake_phone, tmp_path):
    fake_phone.add("FAKE01")
    adb = Adb()
    local = tmp_path / "blob.bin"
    local.write_bytes(b"tflkit" * 100)
    adb.push("FAKE01", local, "/data/local/tmp/tflkit/blob.bin")
    assert adb.sha256("FAKE01", "/data/local/tmp/tflkit/blob.bin") == hashlib.sha256(local.read_bytes()).hexdigest()
    assert adb.sha256("FAKE01", "/data/local/tmp/tflkit/missing.bin") is None
    adb.pull("FAKE01", "/data/local/tmp/tflkit/blob.bin", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == local.read_bytes()
    assert adb.shell("FAKE01", "true").exit_code == 0
    assert adb.shell("FAKE01", "false").exit_code == 1
    missing = adb.shell("FAKE01", "/data/local/tmp/nope --x")
    assert missing.exit_code == 127 and "not found" in missing.stderr


def test_sha256_falls_back_to_none_without_sha256sum(fake_phone, tmp_path):
    fake_phone.add("FAKE01")
    fake_phone.fault("no_sha256")
    local = tmp_path / "m.tflite"
    local.write_bytes(b"x")
    Adb().push("FAKE01", local, "/data/local/tmp/m.tflite")
    assert Adb().sha256("FAKE01", "/data/local/tmp/m.tflite") is None


@pytest.mark.parametrize(
    "fault, serial, fragment",
    [
        (None, "NOSUCH", "device 'NOSUCH' not found"),
        ("unauthorized", "FAKE01", "device 'FAKE01' is unauthorized: unlock the phone and accept"),
        ("disconnect", "FAKE01", "device 'FAKE01' not found"),
    ],
)
def test_adb_failures_raise_one_line(fake_phone, fault, serial, fragment):
    fake_phone.add("FAKE01")
    if fault:
        fake_phone.fault(fault)
    with pytest.raises(DeviceError) as excinfo:
        Adb().shell(serial, "getprop")
    assert fragment in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_a_hung_remote_process_is_killed_on_the_phone(fake_phone, fake_binary):
    fake_phone.add("FAKE01")
    fake_phone.fault("hang")
    adb = Adb()
    adb.push("FAKE01", fake_binary, "/data/local/tmp/tflkit/benchmark_model")
    result = adb.shell("FAKE01", "/data/local/tmp/tflkit/benchmark_model --graph=/x.tflite", timeout_s=2.5,
                       kill_on_timeout=True)
    assert result.timed_out and result.exit_code is None
    assert "STARTING!" in result.stdout and "__TFLKIT_PID" not in result.stdout
    assert fake_phone.running_device_processes() == []
    assert any(call[-1].startswith("kill -9 ") for call in fake_phone.calls())


# ---- the real adb, where no phone is needed ----


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def real_adb(tmp_path, monkeypatch):
    """Debian's adb on a private server port and HOME; its server daemon is killed afterwards."""
    if shutil.which("adb") is None:
        pytest.skip("adb is not installed (apt-get install adb)")
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(_free_port()))
    monkeypatch.setenv("HOME", str(tmp_path))  # adb writes ~/.android/adbkey
    monkeypatch.delenv("ANDROID_SERIAL", raising=False)
    yield Adb(timeout_s=20)
    subprocess.run(["adb", "kill-server"], capture_output=True, timeout=20)


def test_real_adb_bad_serial_is_a_clear_error(real_adb):
    with pytest.raises(DeviceError) as excinfo:
        real_adb.shell("tflkit-no-such-serial", "true")
    message = str(excinfo.value)
    assert "'tflkit-no-such-serial'" in message and "not found" in message and "\n" not in message


def test_real_adb_lists_no_devices(real_adb):
    devices = real_adb.devices()
    if devices:
        pytest.skip("a device is attached; the no-device path cannot be checked here")
    assert devices == []
