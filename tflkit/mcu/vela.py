"""Arm Vela: a .tflite compiled for an Ethos-U NPU, with Vela's own estimates (SRAM, flash, NPU and CPU operators,
cycles and inference time at the system config's clock).

Vela runs as a child process (`python -m ethosu.vela`) in a scratch folder; its compiled file, per-layer CSV and
summary CSV are then copied into `vela/` beside the source file under names that carry the target, the compiled
file atomically. Vela 5.2 prints no cycles on its console: they come from the summary CSV.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tflkit.core.errors import UsageError, unknown_choice

ACCELERATORS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512",
                "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024", "ethos-u85-2048")
# Vela's own defaults when no system config is given (its console says so); named here so every result records
# the config its figures assume, and so the run does not warn.
DEFAULT_SYSTEM = {"ethos-u55": ("Ethos_U55_High_End_Embedded", "Shared_Sram"),
                  "ethos-u65": ("Ethos_U65_Client_Server", "Dedicated_Sram_384KB"),
                  "ethos-u85": ("Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram_384KB")}
TIMEOUT_S = 600.0
INSTALL_HINT = "pip install 'tflkit[mcu]'"


def require_vela() -> None:
    if importlib.util.find_spec("ethosu") is None:
        raise UsageError(f"Arm Vela is not installed: {INSTALL_HINT}")


def vela_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ethos-u-vela")
    except PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class VelaTarget:
    """An Ethos-U configuration: `ethos-u55-128`, or `ethos-u55-128:SYSTEM_CONFIG:MEMORY_MODE` (names of vela.ini)."""

    accelerator: str
    system_config: str
    memory_mode: str

    @classmethod
    def parse(cls, spec: str) -> VelaTarget:
        accelerator, *rest = spec.strip().split(":")
        if accelerator not in ACCELERATORS:
            raise unknown_choice("Ethos-U accelerator config", accelerator, ACCELERATORS)
        if len(rest) > 2:
            raise UsageError(f"Ethos-U target {spec!r}: expected ACCELERATOR[:SYSTEM_CONFIG[:MEMORY_MODE]]")
        system, mode = DEFAULT_SYSTEM[accelerator.rsplit("-", 1)[0]]
        return cls(accelerator, rest[0] if rest else system, rest[1] if len(rest) > 1 else mode)

    @property
    def name(self) -> str:
        return self.accelerator if self == VelaTarget.parse(self.accelerator) else \
            f"{self.accelerator}:{self.system_config}:{self.memory_mode}"


@dataclass
class VelaResult:
    model: str
    target: str
    ok: bool
    message: str = ""
    system_config: str = ""
    memory_mode: str = ""
    clock_mhz: float | None = None
    sram_kib: float | None = None  # Vela's "Total SRAM used": the tensor arena in SRAM (plus weights in Sram_Only)
    flash_kib: float | None = None  # on- and off-chip flash: the compiled model (weights and command stream)
    dram_kib: float | None = None
    npu_ops: int | None = None
    cpu_ops: int | None = None
    cpu_op_names: list = field(default_factory=list)  # operators left to the CPU (TFLM on the board's core)
    macs: int | None = None
    cycles_npu: int | None = None
    cycles_total: int | None = None
    inference_ms: float | None = None  # cycles_total at the config's clock: Vela's estimate, not a measurement
    compiled: str = ""  # the Vela-compiled .tflite beside the source
    per_layer_csv: str = ""
    vela_version: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def outputs_for(path: Path, target: VelaTarget) -> dict[str, Path]:
    """Vela's files in a `vela/` folder beside the source: beside it, but out of globs like `tflite/*.tflite`
    (a compiled file is no longer a plain TFLite model: its graph is one ethos-u custom operator)."""
    stem = path.name[:-len(".tflite")] if path.name.endswith(".tflite") else path.name
    tag = target.name.replace(":", "_")
    folder = path.parent / "vela"
    return {"compiled": folder / f"{stem}.{tag}.tflite", "per_layer": folder / f"{stem}.{tag}.per-layer.csv",
            "summary": folder / f"{stem}.{tag}.summary.csv"}


def compile_model(path, target: VelaTarget, timeout_s: float = TIMEOUT_S) -> VelaResult:
    """Vela on `path` for `target`; a file Vela rejects is a result with ok False and Vela's reason."""
    require_vela()
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"model file not found: {path}")
    result = VelaResult(model=path.name, target=target.name, ok=False, system_config=target.system_config,
                        memory_mode=target.memory_mode, vela_version=vela_version())
    with tempfile.TemporaryDirectory(prefix="tflkit-vela-") as tmp:
        source = Path(tmp) / "model.tflite"  # a plain name: Vela derives its output names from the input's
        os.symlink(path.resolve(), source)
        cmd = [sys.executable, "-m", "ethosu.vela", "--accelerator-config", target.accelerator,
               "--config", "Arm/vela.ini", "--system-config", target.system_config, "--memory-mode",
               target.memory_mode, "--output-dir", str(Path(tmp) / "out"), "--verbose-performance", str(source)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout_s)
        except subprocess.TimeoutExpired:
            result.message = f"Vela did not finish within {timeout_s:.0f} s"
            return result
        out = Path(tmp) / "out"
        summaries = sorted(out.glob("model_summary_*.csv"))
        if proc.returncode != 0 or not summaries or not (out / "model_vela.tflite").is_file():
            result.message = "Vela failed: " + _vela_error(proc.stdout + "\n" + proc.stderr, proc.returncode)
            return result
        _read_console(proc.stdout, result)
        _read_summary(summaries[0], result)
        layers = out / "model_per-layer.csv"
        if layers.is_file():
            result.cpu_op_names = cpu_operators(layers)
        targets = outputs_for(path, target)
        targets["compiled"].parent.mkdir(exist_ok=True)
        # The compiled file replaces an older one only once complete (same folder: os.replace is atomic).
        staged = targets["compiled"].with_name(f".{targets['compiled'].name}.part")
        shutil.copyfile(out / "model_vela.tflite", staged)
        os.replace(staged, targets["compiled"])
        shutil.copyfile(summaries[0], targets["summary"])
        if layers.is_file():
            shutil.copyfile(layers, targets["per_layer"])
            result.per_layer_csv = str(targets["per_layer"])
        result.compiled = str(targets["compiled"])
    result.ok = True
    return result


def _vela_error(text: str, code: int) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    line = (errors or lines or [f"exit code {code}"])[-1]
    line = re.sub(r"^(RuntimeError: )?Compilation failed: (Error: )?", "", line)
    # Vela quotes the operator's full tensor name (a ;-joined list of every fused op): its first entry names it
    return re.sub(r"'([^';]{0,80})[^']*'", lambda m: f"'{m.group(1)}'", line)[:300]


def _read_console(text: str, result: VelaResult) -> None:
    for key, attr in (("CPU operators", "cpu_ops"), ("NPU operators", "npu_ops")):
        m = re.search(rf"^{key} = (\d+)", text, re.M)
        if m:
            setattr(result, attr, int(m.group(1)))


def _read_summary(path: Path, result: VelaResult) -> None:
    with open(path, newline="") as f:
        row = next(csv.DictReader(f))

    def number(key):
        try:
            return float(row[key])
        except (KeyError, ValueError):
            return None

    result.clock_mhz = (number("core_clock") or 0) / 1e6 or None
    result.sram_kib = number("sram_memory_used")
    flash = [number("on_chip_flash_memory_used"), number("off_chip_flash_memory_used")]
    result.flash_kib = sum(v for v in flash if v is not None) if any(v is not None for v in flash) else None
    result.dram_kib = number("dram_memory_used")
    for key, attr in (("nn_macs", "macs"), ("cycles_npu", "cycles_npu"), ("cycles_total", "cycles_total")):
        value = number(key)
        setattr(result, attr, int(value) if value is not None else None)
    seconds = number("inference_time")
    result.inference_ms = seconds * 1e3 if seconds is not None else None


def cpu_operators(per_layer_csv: Path) -> list[str]:
    """The original operators Vela leaves to the CPU, in network order, each once."""
    names = []
    with open(per_layer_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("Target", "").strip() == "CPU":
                name = row.get("Original Operator", "").strip()
                if name and name not in names:
                    names.append(name)
    return names
