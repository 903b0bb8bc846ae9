"""One .tflite on microcontrollers: TFLM (runs?, exact arena, top-1 as TFLM computes it and its agreement with
LiteRT), Vela per Ethos-U target, and the fit on each board. The Python API behind `tflkit mcu`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from tflkit.core.errors import ModelFileError
from tflkit.mcu.boards import Board
from tflkit.mcu.fit import FLASH_RESERVE_KB, SRAM_RESERVE_KB, Fit, fit, npu_problem, reserves_note
from tflkit.mcu.tflm import VELA_OP, TflmCheck, check, custom_ops
from tflkit.mcu.vela import VelaResult, VelaTarget, compile_model
from tflkit.tflite.arena import arena_bytes
from tflkit.tflite.runtime import check_tflite_file


@dataclass
class McuResult:
    model: str
    file_bytes: int
    runs: bool  # under TFLite Micro
    reason: str = ""  # why it does not
    arena_bytes: int | None = None  # TFLM-measured: the smallest arena that allocates and invokes
    arena_checked: bool = False
    tflm_reported_bytes: int | None = None  # TFLM's print_allocations() total at that arena
    planned_arena_bytes: int | None = None  # tflkit's plan of LiteRT's arena (tflkit.tflite.arena), for comparison
    notes: list = field(default_factory=list)
    tflm: dict = field(default_factory=dict)
    eval: dict | None = None  # EvalResult with runtime "tflm": top1, reference_top1 (LiteRT), agreement
    vela: list = field(default_factory=list)  # VelaResult per Ethos-U target
    fits: list = field(default_factory=list)  # Fit per (board, engine)
    reserves: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def measure(path, boards: list[Board] = (), targets: list[VelaTarget] = (), source=None, split: str = "test",
            limit: int | None = None, sram_reserve_kb: float = SRAM_RESERVE_KB,
            flash_reserve_kb: float = FLASH_RESERVE_KB, preprocessing=None, labels=None, seed: int = 0,
            log=None) -> McuResult:
    """Measure `path` for the MCU: `source` (a dataset) adds top-1 under TFLM on `split` (`limit`: a stratified
    subset); `targets` and the boards' own NPUs get Vela; every board gets a fit. A file that is not a TFLite
    flatbuffer is a ModelFileError; one TFLM refuses is a result with runs False and its reason."""
    log = log or (lambda *_: None)
    path = check_tflite_file(path)
    tflm: TflmCheck = check(path)
    result = McuResult(model=path.name, file_bytes=path.stat().st_size, runs=tflm.runs, reason=tflm.reason,
                       arena_bytes=tflm.arena_bytes, arena_checked=tflm.arena_checked,
                       tflm_reported_bytes=tflm.reported_bytes, planned_arena_bytes=_planned(path),
                       notes=tflm.notes, tflm=tflm.to_dict(),
                       reserves=reserves_note(sram_reserve_kb, flash_reserve_kb))
    if tflm.runs:
        log(f"tflm     {path.name}: runs, arena {tflm.arena_bytes:,} B ({tflm.tries} tries, {tflm.seconds:.1f} s)")
    else:
        log(f"tflm     {path.name}: does not run: {tflm.reason}")
    if tflm.runs and source is not None:
        result.eval = _evaluate(path, source, split, limit, preprocessing, labels, seed, log)
    all_targets = list(dict.fromkeys([*targets, *(VelaTarget.parse(b.ethos_u) for b in boards if b.ethos_u)]))

    if VELA_OP in custom_ops(path):  # already compiled for an NPU: Vela on it again means nothing
        all_targets = []
    vela = {t.name: compile_model(path, t) for t in all_targets}
    for t, v in vela.items():
        log(f"vela     {path.name} {t}: " + (f"SRAM {v.sram_kib:,.1f} KiB, flash {v.flash_kib:,.1f} KiB, "
                                             f"{v.npu_ops} NPU / {v.cpu_ops} CPU ops" if v.ok else v.message))
    result.vela = [v.to_dict() for v in vela.values()]
    result.fits = [f.to_dict() for f in _fits(result, boards, vela, sram_reserve_kb, flash_reserve_kb)]
    return result


def _planned(path) -> int | None:
    try:
        return arena_bytes(path)
    except (ValueError, RuntimeError, ModelFileError):
        return None


def _evaluate(path, source, split, limit, preprocessing, labels, seed, log):
    from tflkit.training.evaluation import evaluate  # TensorFlow: only when top-1 under TFLM is asked for

    ev = evaluate(path, source, split=split, limit=limit, preprocessing=preprocessing, labels=labels, seed=seed,
                  runtime="tflm", compare=True, log=log)
    log(f"tflm     {path.name}: top1 {100 * ev.top1:.2f}% on {ev.count} {split} images (LiteRT "
        f"{100 * ev.reference_top1:.2f}%, top-1 agreement {100 * ev.agreement:.2f}%)")
    return ev.to_dict()


def _fits(result: McuResult, boards, vela: dict[str, VelaResult], sram_reserve_kb, flash_reserve_kb) -> list[Fit]:
    fits = []
    for board in boards:
        if result.runs:
            fits.append(fit(board, result.arena_bytes, result.file_bytes, "tflm", sram_reserve_kb, flash_reserve_kb))
        else:
            fits.append(Fit(board.name, False, "tflm", None, board.sram_kb, None, board.flash_kb,
                            breaks=f"does not run under TFLite Micro: {result.reason}"))
        npu = vela.get(VelaTarget.parse(board.ethos_u).name) if board.ethos_u else None
        problem = npu_problem(npu.to_dict(), result.runs) if npu is not None else ""
        if npu is not None and problem:
            fits.append(Fit(board.name, False, npu.target, None, board.sram_kb, None, board.flash_kb,
                            breaks=problem))
        elif npu is not None:
            ms = npu.inference_ms
            if ms is not None and board.npu_clock_mhz and npu.clock_mhz:
                ms *= npu.clock_mhz / board.npu_clock_mhz  # the same cycles at the board's NPU clock
            fits.append(fit(board, int(npu.sram_kib * 1024), Path(npu.compiled).stat().st_size, npu.target,
                            sram_reserve_kb, flash_reserve_kb, inference_ms=ms))
    return fits
