"""What every command module shares: the reply (tflkit.core.reply), progress lines, a directory flag's check."""

from __future__ import annotations

import sys
from pathlib import Path

from tflkit.core.errors import UsageError
from tflkit.core.reply import JSON_HELP, Reply, item_error

__all__ = ["JSON_HELP", "Reply", "item_error", "log_line", "require_dir"]


def require_dir(path, flag: str) -> None:
    if path is not None and not Path(path).is_dir():
        raise UsageError(f"{flag}: no such directory: {path}")


def log_line(line: str) -> None:
    """Progress and notes: to stderr, one write per line (parallel cells never land two to a line)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
