"""Fetching a published file (ImageNet weights, a dataset archive) where a network exists, and failing within
seconds where it does not: the host must answer a TCP connect first (urllib and DNS have no useful time-out on a
machine without a route), the file streams to a temporary name, is verified, and only then takes its place."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

from tflkit.core.errors import UsageError
from tflkit.core.fileio import atomic_path

CONNECT_TIMEOUT_S = 3.0


def host_reachable(host: str, port: int = 443, timeout: float = 2.0) -> bool:
    """A TCP connect within `timeout` seconds, DNS included (getaddrinfo has no time-out, hence the thread)."""
    result = []

    def probe():
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def file_digest(path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, target: Path, verify: Callable[[Path], None], offline: str, log=None) -> Path:
    """Download `url` to `target` (atomically), `verify(path)` raising on a bad file before it lands; `offline`: the
    one line a user gets when the host cannot be reached (what to fetch elsewhere, which flag takes the file)."""
    from urllib.error import URLError
    from urllib.parse import urlparse
    from urllib.request import urlopen

    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if not host_reachable(parsed.hostname, port, timeout=CONNECT_TIMEOUT_S):
        raise UsageError(f"{offline} (no connection to {parsed.hostname}:{port})")
    if log:
        log(f"downloading {url} -> {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urlopen(url, timeout=30) as response, atomic_path(target) as tmp:
            with open(tmp, "wb") as f:
                for block in iter(lambda: response.read(1 << 20), b""):
                    f.write(block)
            verify(Path(tmp))  # a bad file never takes the target's place
    except (URLError, TimeoutError, ConnectionError) as exc:
        raise UsageError(f"{offline} ({exc})") from None
    return target
