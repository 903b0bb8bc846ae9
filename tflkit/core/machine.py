"""The machine a number was measured on: CPU model and the instruction-set features TensorFlow's and XNNPACK's
kernels pick from (the same run gave 86% on an AVX2 CPU and 78% on an AMX one), installed versions, kernel
switches. Imports no TensorFlow: its version is read from the installed metadata."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import tflkit

# The features that change which kernels run: AVX2/FMA everywhere on x86-64 since 2013; AVX-512 and VNNI (int8 dot
# products) on Xeons and recent desktops; AVX512-BF16 and AMX (bf16/int8 tiles) on Sapphire Rapids and later.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
# The distributions whose versions decide a result; the lock file (requirements.lock) pins all of them.
VERSIONED = ("tensorflow", "keras", "ai-edge-litert", "tensorflow-model-optimization", "numpy")
# Environment switches that change the kernels (oneDNN on or off) or their threads.
KERNEL_SWITCHES = ("TF_ENABLE_ONEDNN_OPTS", "TF_DETERMINISTIC_OPS", "OMP_NUM_THREADS")


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def cpu_name() -> str:
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_features() -> list[str]:
    """The CPU_FLAGS this CPU has, in that order (empty where /proc/cpuinfo is not readable)."""
    flags = next((line.split(":", 1)[1].split() for line in _cpuinfo() if line.startswith("flags")), [])
    return [flag for flag in CPU_FLAGS if flag in flags]


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def machine() -> dict:
    """CPU, features, cores, platform, Python, the versions that decide a result and the kernel switches set."""
    return {
        "host": platform.node(),
        "cpu": cpu_name(),
        "cpu_features": " ".join(cpu_features()),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        **{dist: version(dist) for dist in VERSIONED},
        **{name: os.environ[name] for name in KERNEL_SWITCHES if name in os.environ},
    }


@functools.lru_cache(maxsize=1)
def environment() -> dict:
    """Versions and machine, without importing TensorFlow (its version is read from the installed metadata)."""
    return {"tflkit": tflkit.__version__, "tflkit_commit": _git_commit(), **machine()}


def _git_commit() -> str | None:
    """The source checkout's commit (with `-dirty` when it has uncommitted changes), when tflkit runs from one."""
    root = Path(tflkit.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("-dirty" if dirty else "")) or None
