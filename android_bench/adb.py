"""A thin wrapper over the `adb` executable: devices, device facts, push, pull and shell, each with a time-out.

Failures of adb itself (no adb, no such device, unauthorized, a hung transfer) raise `DeviceError` with one line;
a remote command that runs and fails is not an error here: its exit code and output come back to the caller.
Remote exit codes need adb's shell protocol (Android 7 and later); older phones always report 0, so callers read
the output too.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tflkit.core.errors import DeviceError

ADB_MISSING = "adb not found on PATH; install Debian's `adb` package or the Android platform-tools"
DEFAULT_TIMEOUT_S = 30.0
PUSH_TIMEOUT_S = 300.0
# Printed first by a command run with kill_on_timeout, so a hung remote process can be killed by its id.
PID_MARKER = "__TFLKIT_PID="

# adb's own complaints on stderr, as opposed to the remote command's output.
_TRANSPORT_ERROR = re.compile(
    r"^(?:adb: )?(?:error: )?("
    r"device (?:'[^']*' )?(?:not found|offline|unauthorized|still authorizing|still connecting)"
    r"|device unauthorized\.?"
    r"|no devices/emulators found|more than one device/emulator|closed|protocol fault.*"
    r"|cannot connect to daemon.*|failed to (?:start|check|connect).*|insufficient permissions for device.*"
    r"|no permissions.*"
    r")",
    re.IGNORECASE,
)
_GETPROP_LINE = re.compile(r"^\[([^\]]+)\]: \[(.*)\]$")

# First non-empty property wins.
ABI_PROPS = ("ro.product.cpu.abilist", "ro.product.cpu.abi")
SOC_PROPS = ("ro.soc.model", "ro.board.platform", "ro.hardware")
CPU_MAX_FREQ_GLOB = "/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq"


@dataclass(frozen=True)
class DeviceEntry:
    """One line of `adb devices -l`."""

    serial: str
    state: str  # device, unauthorized, offline, recovery, sideload, bootloader, no permissions, ...
    details: dict[str, str] = field(default_factory=dict)  # usb, product, model, device, transport_id

    @property
    def ready(self) -> bool:
        return self.state == "device"


@dataclass
class ShellResult:
    exit_code: int | None  # None when the command timed out
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def output(self) -> str:
        """stdout then stderr, as a person at a terminal would have seen them (near enough)."""
        if self.stdout and self.stderr and not self.stdout.endswith("\n"):
            return self.stdout + "\n" + self.stderr
        return self.stdout + self.stderr


@dataclass(frozen=True)
class DeviceFacts:
    serial: str
    manufacturer: str = ""
    model: str = ""
    soc: str = ""
    abis: tuple[str, ...] = ()
    sdk: int | None = None
    cpu_max_khz: tuple[int, ...] = ()

    def describe(self) -> str:
        """"Google Pixel 7 (gs201)": the `device` column of a BenchResult."""
        name = " ".join(part for part in (self.manufacturer, self.model) if part) or self.serial
        return f"{name} ({self.soc})" if self.soc else name

    def cpu_summary(self) -> str:
        """Cores grouped by max frequency, fastest first: "2x2.85+2x2.35+4x1.80 GHz"."""
        if not self.cpu_max_khz:
            return ""
        groups = sorted(Counter(self.cpu_max_khz).items(), reverse=True)
        return "+".join(f"{n}x{khz / 1e6:.2f}" for khz, n in groups) + " GHz"

    def to_dict(self) -> dict:
        data = asdict(self)
        data["abis"] = list(self.abis)
        data["cpu_max_khz"] = list(self.cpu_max_khz)
        return data


def find_adb() -> str:
    path = shutil.which("adb")
    if path is None:
        raise DeviceError(ADB_MISSING)
    return path


def parse_devices(text: str) -> list[DeviceEntry]:
    """Parse `adb devices -l`. Skips the header and the "* daemon started" chatter."""
    entries = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("*", "List of devices")):
            continue
        serial, _, rest = line.replace("\t", " ", 1).partition(" ")
        rest = rest.strip()
        # "no permissions (user in plugdev group; are your udev rules wrong?); see [...] usb:1-3" has spaces.
        state = "no permissions" if rest.startswith("no permissions") else rest.split(" ", 1)[0]
        details = dict(re.findall(r"\b(usb|product|model|device|transport_id):(\S+)", rest))
        entries.append(DeviceEntry(serial, state or "unknown", details))
    return entries


def parse_getprop(text: str) -> dict[str, str]:
    props = {}
    for line in text.splitlines():
        match = _GETPROP_LINE.match(line.strip())
        if match:
            props[match.group(1)] = match.group(2)
    return props


def facts_from_props(serial: str, props: dict[str, str], cpu_max_khz=()) -> DeviceFacts:
    abilist = next((props[key] for key in ABI_PROPS if props.get(key)), "")
    soc = next((props[key] for key in SOC_PROPS if props.get(key)), "")
    sdk = props.get("ro.build.version.sdk", "")
    return DeviceFacts(
        serial=serial,
        manufacturer=props.get("ro.product.manufacturer", ""),
        model=props.get("ro.product.model", ""),
        soc=soc,
        abis=tuple(abi for abi in abilist.split(",") if abi),
        sdk=int(sdk) if sdk.isdigit() else None,
        cpu_max_khz=tuple(cpu_max_khz),
    )


def _transport_error(stderr: str) -> str | None:
    for line in stderr.splitlines():
        if _TRANSPORT_ERROR.match(line.strip()):
            return line.strip()
    return None


def _device_error(serial: str | None, adb_line: str) -> DeviceError:
    lower = adb_line.lower()
    who = f"device {serial!r}" if serial else "adb"
    if "unauthorized" in lower:
        return DeviceError(f"{who} is unauthorized: unlock the phone and accept the USB debugging prompt")
    if "not found" in lower:
        return DeviceError(f"{who} not found; `tflkit android devices` lists the attached ones")
    if "offline" in lower:
        return DeviceError(f"{who} is offline; reconnect the cable or run `adb reconnect`")
    if "no devices" in lower:
        return DeviceError("no Android device attached (adb devices lists none)")
    return DeviceError(f"{who}: {adb_line}")


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")


class Adb:
    """One adb executable. Every call has a time-out; `DeviceError` for adb failures."""

    def __init__(self, executable: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.executable = executable or find_adb()
        self.timeout_s = timeout_s

    def _command(self, serial: str | None, args: list[str]) -> list[str]:
        return [self.executable, *(["-s", serial] if serial else []), *args]

    def run(self, args: list[str], *, serial: str | None = None, timeout_s: float | None = None):
        """Run an adb command that must succeed at adb's level; returns the CompletedProcess."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        command = self._command(serial, args)
        try:
            proc = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"`adb {' '.join(args)}` gave no answer within {timeout_s:g} s") from None
        except FileNotFoundError:
            raise DeviceError(ADB_MISSING) from None
        stderr = _text(proc.stderr)
        if proc.returncode != 0:
            adb_line = _transport_error(stderr) or (stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
            raise _device_error(serial, adb_line)
        return proc

    def devices(self) -> list[DeviceEntry]:
        return parse_devices(_text(self.run(["devices", "-l"]).stdout))

    def shell(
        self, serial: str, command: str, *, timeout_s: float | None = None, kill_on_timeout: bool = False
    ) -> ShellResult:
        """Run `command` with the phone's sh. A remote failure is returned, not raised; adb failures raise.

        With kill_on_timeout the remote process is killed by its id when the time-out expires (killing the local
        adb client alone would leave it running on the phone) and the output so far is returned.
        """
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        remote = f"echo {PID_MARKER}$$; exec {command}" if kill_on_timeout else command
        proc = subprocess.Popen(
            self._command(serial, ["shell", remote]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        timed_out = False
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()
            out, err = proc.communicate()
        stdout, stderr = _text(out), _text(err)
        remote_pid = None
        if kill_on_timeout:
            match = re.match(rf"{PID_MARKER}(\d+)\n?", stdout)
            if match:
                remote_pid, stdout = match.group(1), stdout[match.end() :]
        if timed_out:
            if remote_pid:
                self._kill_remote(serial, remote_pid)
            return ShellResult(None, stdout, stderr, timed_out=True)
        adb_line = _transport_error(stderr) if proc.returncode != 0 else None
        if adb_line:
            raise _device_error(serial, adb_line)
        return ShellResult(proc.returncode, stdout, stderr)

    def _kill_remote(self, serial: str, pid: str) -> None:
        try:
            self.shell(serial, f"kill -9 {pid}", timeout_s=10)
        except DeviceError:
            pass  # the phone went away with its process; nothing left to kill

    def push(self, serial: str, local: str | Path, remote: str, *, timeout_s: float = PUSH_TIMEOUT_S) -> None:
        """Copy a file to the phone; adb creates missing remote folders and keeps the local permission bits."""
        self.run(["push", str(local), remote], serial=serial, timeout_s=timeout_s)

    def pull(self, serial: str, remote: str, local: str | Path, *, timeout_s: float = PUSH_TIMEOUT_S) -> None:
        self.run(["pull", remote, str(local)], serial=serial, timeout_s=timeout_s)

    def facts(self, serial: str) -> DeviceFacts:
        """getprop and every core's max frequency, in one round trip."""
        result = self.shell(serial, f"getprop; cat {CPU_MAX_FREQ_GLOB}")
        # Glob order (cpu0, cpu1, cpu10, ...) does not matter: the summary groups cores by frequency.
        freqs = [int(line) for line in result.stdout.splitlines() if line.strip().isdigit()]
        return facts_from_props(serial, parse_getprop(result.stdout), freqs)

    def sha256(self, serial: str, remote: str) -> str | None:
        """The remote file's sha256, or None when it is missing or the phone has no sha256sum (old toybox)."""
        result = self.shell(serial, f"sha256sum {shlex.quote(remote)}")
        digest = result.stdout.split()[0] if result.exit_code == 0 and result.stdout.split() else ""
        return digest.lower() if re.fullmatch(r"[0-9a-fA-F]{64}", digest) else None
