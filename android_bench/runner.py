"""Benchmark models on phones: push, run benchmark_model for every thread count and delegate, parse, clean up.

`bench()` is the whole API. A run that fails (a delegate that refuses the graph, a hang past the time-out) becomes a
row with its status and the others go on; a phone that disappears turns its remaining runs into `device_error` rows
while the other phones carry on. Only setup problems the user must fix first (no device, an unknown or unauthorized
serial, a bad argument) raise.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from android_bench.adb import Adb, DeviceFacts
from android_bench.install import REMOTE_DIR, check_local_binary, ensure_benchmark_model
from android_bench.parser import parse_log
from tflkit.core.errors import DeviceError, ModelFileError, UsageError, unknown_choice
from tflkit.core.fileio import sha256_file
from tflkit.core.results import BenchResult

# One row per delegate; "cpu" turns XNNPACK off so that cpu and xnnpack are really different rows.
DELEGATE_FLAGS = {
    "cpu": ("--use_xnnpack=false",),
    "xnnpack": ("--use_xnnpack=true",),
    "gpu": ("--use_gpu=true",),
    "nnapi": ("--use_nnapi=true",),
}
# benchmark_model keeps running past --num_runs until min_secs have passed; 0 makes the count what was asked.
FIXED_COUNT_FLAGS = ("--min_secs=0", "--warmup_min_secs=0")


def check_model_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] != b"TFL3":  # the flatbuffer file identifier of every .tflite
        raise ModelFileError(f"{path} is not a TFLite model (no TFL3 identifier)")
    return path


def check_taskset_mask(mask: str | None) -> str | None:
    """A hex CPU mask for the phone's taskset (f0 = cores 4-7), without any 0x prefix."""
    if mask is None:
        return None
    digits = mask.lower().removeprefix("0x")
    if not digits or any(c not in "0123456789abcdef" for c in digits) or int(digits, 16) == 0:
        raise UsageError(f"--taskset takes a non-zero hexadecimal CPU mask such as f0, got {mask!r}")
    return digits


def select_devices(adb: Adb, serials: Sequence[str] | None, progress: Callable[[str], None]) -> list[str]:
    """The serials to use: those asked for (each must be ready), or every ready device."""
    entries = adb.devices()
    states = {entry.serial: entry.state for entry in entries}
    listing = ", ".join(f"{serial} ({state})" for serial, state in states.items()) or "none"
    if not serials:
        ready = [serial for serial, state in states.items() if state == "device"]
        if not ready:
            if not states:
                raise DeviceError("no Android device attached (adb devices lists none)")
            raise DeviceError(f"no Android device ready: {listing}; unlock the phone and accept USB debugging")
        for serial, state in states.items():
            if state != "device":
                progress(f"skipping {serial}: {state}")
        return ready
    for serial in serials:
        if serial not in states:
            raise DeviceError(f"device {serial!r} is not attached; attached: {listing}")
        if states[serial] == "unauthorized":
            raise DeviceError(
                f"device {serial!r} is unauthorized: unlock the phone and accept the USB debugging prompt"
            )
        if states[serial] != "device":
            raise DeviceError(f"device {serial!r} is {states[serial]}, not ready for adb shell")
    return list(dict.fromkeys(serials))


def benchmark_command(
    binary: str,
    remote_model: str,
    threads: int,
    delegate: str,
    *,
    runs: int,
    warmup: int,
    op_profiling: bool = False,
    taskset: str | None = None,
) -> str:
    args = [
        binary,
        f"--graph={remote_model}",
        f"--num_threads={threads}",
        f"--num_runs={runs}",
        f"--warmup_runs={warmup}",
        *FIXED_COUNT_FLAGS,
        *DELEGATE_FLAGS[delegate],
        "--report_peak_memory_footprint=true",
    ]
    if op_profiling:
        args.append("--enable_op_profiling=true")
    if taskset:
        args = ["taskset", taskset, *args]
    return " ".join(shlex.quote(arg) for arg in args)


def bench(
    models: Sequence[str | Path],
    serials: Sequence[str] | None = None,
    *,
    threads: Sequence[int] = (1, 4),
    delegates: Sequence[str] = ("cpu",),
    runs: int = 50,
    warmup: int = 1,
    op_profiling: bool = False,
    taskset: str | None = None,
    cooldown_s: float = 1.0,
    timeout_s: float = 300.0,
    logs_dir: str | Path | None = None,
    keep: bool = False,
    binary: str | Path | None = None,
    adb: Adb | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[BenchResult]:
    """Benchmark every model on every device for every thread count and delegate; one BenchResult per run."""
    model_paths = [check_model_file(m) for m in models]
    if not model_paths:
        raise UsageError("no model given")
    for delegate in delegates:
        if delegate not in DELEGATE_FLAGS:
            raise unknown_choice("delegate", delegate, DELEGATE_FLAGS)
    if not threads or any(t < 1 for t in threads):
        raise UsageError(f"thread counts must be 1 or more, got {list(threads)}")
    if runs < 1 or warmup < 0 or timeout_s <= 0 or cooldown_s < 0:
        raise UsageError("runs must be >= 1, warmup and cooldown >= 0, timeout > 0")
    taskset = check_taskset_mask(taskset)
    if binary is not None:
        binary = check_local_binary(binary)
    say = progress or (lambda message: None)
    adb = adb or Adb()
    session = _Session(
        adb=adb,
        models=model_paths,
        threads=list(dict.fromkeys(threads)),
        delegates=list(dict.fromkeys(delegates)),
        runs=runs,
        warmup=warmup,
        op_profiling=op_profiling,
        taskset=taskset,
        cooldown_s=cooldown_s,
        timeout_s=timeout_s,
        logs_dir=Path(logs_dir) if logs_dir else None,
        keep=keep,
        binary=binary,
        say=say,
    )
    results: list[BenchResult] = []
    for serial in select_devices(adb, serials, say):
        results.extend(session.bench_device(serial))
    return results


@dataclass
class _Session:
    """The settings of one bench() call, applied to one device at a time."""

    adb: Adb
    models: list[Path]
    threads: list[int]
    delegates: list[str]
    runs: int
    warmup: int
    op_profiling: bool
    taskset: str | None
    cooldown_s: float
    timeout_s: float
    logs_dir: Path | None
    keep: bool
    binary: str | Path | None
    say: Callable[[str], None]

    def planned(self) -> list[tuple[Path, int, str]]:
        return [(m, t, d) for m in self.models for t in self.threads for d in self.delegates]

    def bench_device(self, serial: str) -> list[BenchResult]:
        results: list[BenchResult] = []
        to_remove: list[str] = []
        facts = DeviceFacts(serial)
        try:
            facts = self.adb.facts(serial)
            installed = ensure_benchmark_model(self.adb, serial, self.binary, facts=facts)
            if installed.pushed:
                to_remove.append(installed.remote_path)
            self.say(f"[{serial}] {facts.describe()}, {facts.cpu_summary() or 'cpu unknown'}")
            for model in self.models:
                remote_model = self.push_model(serial, model)
                to_remove.append(remote_model)
                for threads in self.threads:
                    for delegate in self.delegates:
                        if results:
                            time.sleep(self.cooldown_s)  # let the SoC cool so runs do not inherit throttling
                        results.append(self.run_one(serial, facts, model, remote_model, threads, delegate))
        except DeviceError as exc:
            # This phone is done for (gone, or the binary cannot run on it); keep what it gave, mark the rest.
            self.say(f"[{serial}] stopped: {exc}")
            done = {(r.model, r.threads, r.delegate) for r in results}
            for model, threads, delegate in self.planned():
                if (model.name, threads, delegate) not in done:
                    results.append(
                        BenchResult(
                            model=model.name,
                            target=f"android:{serial}",
                            runtime="benchmark_model",
                            device=facts.describe(),
                            threads=threads,
                            delegate=delegate,
                            status=getattr(exc, "status", "device_error"),
                            message=str(exc),
                            size_bytes=model.stat().st_size,
                        )
                    )
        finally:
            if not self.keep:
                self.remove(serial, to_remove)
        return results

    def push_model(self, serial: str, model: Path) -> str:
        remote = f"{REMOTE_DIR}/{model.name}"
        if self.adb.sha256(serial, remote) == sha256_file(model):
            self.say(f"[{serial}] {model.name} already on the device (same sha256); not pushed")
        else:
            self.adb.push(serial, model, remote)
        return remote

    def run_one(
        self, serial: str, facts: DeviceFacts, model: Path, remote_model: str, threads: int, delegate: str
    ) -> BenchResult:
        command = benchmark_command(
            f"{REMOTE_DIR}/benchmark_model",
            remote_model,
            threads,
            delegate,
            runs=self.runs,
            warmup=self.warmup,
            op_profiling=self.op_profiling,
            taskset=self.taskset,
        )
        shell = self.adb.shell(serial, command, timeout_s=self.timeout_s, kill_on_timeout=True)
        log_path = self.save_log(serial, model, threads, delegate, command, shell.output)
        result = parse_log(
            shell.output,
            model=model.name,
            target=f"android:{serial}",
            device=facts.describe(),
            threads=threads,
            delegate=delegate,
        ).result
        if shell.timed_out:
            result.status = "timeout"
            result.message = f"no result within {self.timeout_s:g} s; benchmark_model was killed"
        elif result.status == "no_results" and shell.exit_code:
            result.message += f" (exit code {shell.exit_code})"
        result.size_bytes = model.stat().st_size
        result.raw_log = str(log_path) if log_path else None
        self.say(f"[{serial}] {model.name} threads={threads} {delegate}: {_summary(result)}")
        return result

    def save_log(self, serial: str, model: Path, threads: int, delegate: str, command: str, text: str):
        if self.logs_dir is None:
            return None
        path = self.logs_dir / serial / f"{model.stem}.threads{threads}.{delegate}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        # The command line first, so a log can be re-run by hand; the parser ignores it.
        path.write_text(f"# adb -s {serial} shell {command}\n{text}")
        return path

    def remove(self, serial: str, remote_paths: list[str]) -> None:
        if not remote_paths:
            return
        try:
            self.adb.shell(serial, "rm -f " + " ".join(shlex.quote(p) for p in dict.fromkeys(remote_paths)))
        except DeviceError as exc:
            self.say(f"[{serial}] could not remove pushed files: {exc}")


def _summary(result: BenchResult) -> str:
    if not result.ok:
        return f"{result.status}: {result.message}"
    center = f"median {result.median_ms:.3f} ms" if result.median_ms is not None else f"mean {result.mean_ms:.3f} ms"
    spread = f" +- {result.std_ms:.3f}" if result.std_ms is not None else ""
    return f"{center}{spread} ({result.count} runs)"
