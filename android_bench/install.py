"""Put a working benchmark_model for the phone's ABI on the phone.

The binary comes from `--binary PATH`, from one already installed by an earlier run, or from the official prebuilt
nightly (downloaded once into ~/.cache/tflkit/benchmark_model/). It is pushed to /data/local/tmp/tflkit/, made
executable, and run once with --help to prove it starts: a wrong ABI, a missing execute bit or a missing library is
reported here, in one line, before any model is benchmarked.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from android_bench.adb import Adb, DeviceFacts
from android_bench.parser import parse_log
from tflkit.core.errors import DeviceError, UsageError
from tflkit.core.fileio import atomic_path, sha256_file

REMOTE_DIR = "/data/local/tmp/tflkit"
REMOTE_BINARY = f"{REMOTE_DIR}/benchmark_model"
NIGHTLY_URL = (
    "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/latest/"
    "android_{abi}_benchmark_model"
)
DOWNLOAD_TIMEOUT_S = 10.0  # short: with no network the user should hear about --binary at once

# Android ABI -> (suffix of the official prebuilt, ELF e_machine), in the order a phone prefers them.
ANDROID_ABIS = {
    "arm64-v8a": ("aarch64", 183),
    "armeabi-v7a": ("arm", 40),
    "x86_64": ("x86-64", 62),
    "x86": ("x86", 3),
}
_MACHINE_NAMES = {machine: abi for abi, (_, machine) in ANDROID_ABIS.items()}
# Statuses of a --help probe that mean the binary cannot run on this phone.
_CANNOT_RUN = {"wrong_abi", "not_found", "not_executable", "permission_denied", "link_failed", "crashed"}


class BinaryUnusable(DeviceError):
    """benchmark_model cannot run on this phone; `status` says why (wrong_abi, not_executable, ...)."""

    def __init__(self, message: str, status: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class InstalledBinary:
    serial: str
    remote_path: str
    source: str  # the local file pushed, or "already on the device"
    sha256: str | None
    pushed: bool  # True when this call pushed it (so whoever cleans up knows it may remove it)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tflkit" / "benchmark_model"


def prebuilt_suffix(abis: tuple[str, ...] | list[str]) -> str:
    """The prebuilt's ABI suffix (aarch64, arm, x86-64, x86) for the phone's preferred supported ABI."""
    for abi in abis:
        if abi in ANDROID_ABIS:
            return ANDROID_ABIS[abi][0]
    raise DeviceError(f"no prebuilt benchmark_model for ABIs {', '.join(abis) or 'unknown'}; pass --binary PATH")


def elf_machine(path: str | Path) -> int | None:
    """The ELF e_machine of a file, or None when it is not an ELF file."""
    with open(path, "rb") as f:
        header = f.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    byteorder = "little" if header[5] == 1 else "big"
    return int.from_bytes(header[18:20], byteorder)


def check_local_binary(path: str | Path) -> Path:
    """A --binary argument that exists and is an ELF executable."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"benchmark_model binary not found: {path}")
    if elf_machine(path) is None:
        raise UsageError(f"{path} is not an ELF executable; pass a benchmark_model built for Android")
    return path


def check_binary_for_device(path: Path, facts: DeviceFacts) -> None:
    """A clear error before pushing a file that cannot run on this phone."""
    machine = elf_machine(path)
    runnable = {ANDROID_ABIS[abi][1] for abi in facts.abis if abi in ANDROID_ABIS}
    if runnable and machine not in runnable:
        built_for = _MACHINE_NAMES.get(machine, f"ELF machine {machine}")
        raise BinaryUnusable(
            f"{path} is built for {built_for} but {facts.serial} runs {', '.join(facts.abis)} (wrong ABI)",
            "wrong_abi",
        )


def _resolve_within(host: str, timeout_s: float) -> None:
    """getaddrinfo has no time-out of its own and can hang for a minute on a machine without network."""
    outcome: dict = {}

    def resolve():
        try:
            socket.getaddrinfo(host, 443)
        except OSError as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TimeoutError(f"resolving {host} took more than {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]


def download_prebuilt(
    suffix: str,
    cache_dir: Path | None = None,
    *,
    timeout_s: float = DOWNLOAD_TIMEOUT_S,
    url_template: str | None = None,
) -> Path:
    """The cached official prebuilt for `suffix`, downloading it once."""
    cache_dir = cache_dir or default_cache_dir()
    target = cache_dir / f"android_{suffix}_benchmark_model"
    if target.is_file() and elf_machine(target) is not None:
        return target
    url = (url_template or NIGHTLY_URL).format(abi=suffix)
    hint = f"pass --binary PATH to a benchmark_model built for android_{suffix}"
    try:
        _resolve_within(urllib.parse.urlparse(url).hostname or "", timeout_s)
        with urllib.request.urlopen(url, timeout=timeout_s) as response, atomic_path(target) as part:
            with open(part, "wb") as f:
                for block in iter(lambda: response.read(1 << 20), b""):
                    f.write(block)
            if elf_machine(part) is None:
                raise DeviceError(f"{url} did not return an executable (got {part.stat().st_size} bytes); {hint}")
    except urllib.error.HTTPError as exc:
        raise DeviceError(f"could not download benchmark_model: HTTP {exc.code} from {url}; {hint}") from None
    except (urllib.error.URLError, OSError) as exc:  # OSError covers time-outs and refused connections
        reason = getattr(exc, "reason", exc)
        raise DeviceError(f"could not download benchmark_model ({reason}); offline? {hint}") from None
    target.chmod(0o755)
    return target


def probe_binary(adb: Adb, serial: str, remote: str = REMOTE_BINARY, *, chmod: bool = False) -> tuple[str, str]:
    """Run `remote --help` once (after `chmod 755` if asked): ("ok", "") when it starts, else (status, reason)."""
    quoted = shlex.quote(remote)
    command = f"chmod 755 {quoted} && {quoted} --help" if chmod else f"{quoted} --help"
    result = adb.shell(serial, command, timeout_s=60)
    if result.timed_out:
        return "timeout", f"{remote} --help did not return within 60 s"
    text = result.output
    parsed = parse_log(text).result
    if parsed.status in _CANNOT_RUN:
        return parsed.status, parsed.message
    if re.search(r"usage|--graph|STARTING", text, re.IGNORECASE):
        return "ok", ""
    last = next((line for line in reversed(text.splitlines()) if line.strip()), "no output")
    return "no_usage", f"{remote} --help printed no usage (exit code {result.exit_code}): {last.strip()[:160]}"


def ensure_benchmark_model(
    adb: Adb,
    serial: str,
    binary: str | Path | None = None,
    *,
    facts: DeviceFacts | None = None,
    cache_dir: Path | None = None,
    download=download_prebuilt,
) -> InstalledBinary:
    """Make REMOTE_BINARY a benchmark_model that runs on this phone; raise one clear line when it cannot be."""
    facts = facts or adb.facts(serial)
    if binary is None:
        status, _ = probe_binary(adb, serial)
        if status == "ok":
            return InstalledBinary(serial, REMOTE_BINARY, "already on the device", None, pushed=False)
        local = download(prebuilt_suffix(facts.abis), cache_dir)
    else:
        local = check_local_binary(binary)
    check_binary_for_device(local, facts)
    local_sha = sha256_file(local)
    pushed = adb.sha256(serial, REMOTE_BINARY) != local_sha
    if pushed:
        adb.push(serial, local, REMOTE_BINARY)
    status, reason = probe_binary(adb, serial, chmod=True)
    if status != "ok":
        raise BinaryUnusable(f"{serial}: {reason}", status)
    return InstalledBinary(serial, REMOTE_BINARY, str(local), local_sha, pushed)
