"""Worker processes that end with their parent: a killed driver must not leave workers running on its files."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(expected_parent: int | None = None) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (elsewhere: a no-op). If the parent is already gone
    (or is not `expected_parent`), exit now: prctl only watches the parent we have at the time of the call."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    parent = os.getppid()
    if parent == 1 or (expected_parent is not None and parent != expected_parent):
        sys.exit(3)
