"""Atomic writes: a file is replaced only once its new content is complete on disk."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path`; on success move it over `path`, on failure delete it.

    For writers that want a file name (TFLite converter output, Keras .save) rather than a stream.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same suffix as the target: Keras refuses to save a model to a name not ending in .keras.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.part-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result file should be as readable as any other
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def cache_dir(*parts: str) -> Path:
    """tflkit's cache folder (`$XDG_CACHE_HOME/tflkit`, else ~/.cache/tflkit), or a folder inside it."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tflkit"
    return base.joinpath(*parts)


def sha256_file(path: str | Path) -> str:
    """The file's sha256, read in 1 MiB blocks (a model or a dataset file may not fit in memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
