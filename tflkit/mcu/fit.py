"""Does a model fit a board: the arena with the I/O (TFLM-measured, or Vela's SRAM on an Ethos-U board) plus a
stated SRAM reserve within SRAM, and the file plus a stated runtime reserve within flash.

The reserves are assumptions, stated with every verdict: SRAM for the application, stack, heap and TFLM's
interpreter objects outside the arena; flash for the TFLM runtime with the model's kernels and a small
application (TFLM's core is ~16 KB on a Cortex-M3 per its documentation; reference kernels for a CNN and a board
support package take several times that). A user with a measured firmware passes their own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tflkit.mcu.boards import Board

SRAM_RESERVE_KB = 32.0
FLASH_RESERVE_KB = 128.0


@dataclass
class Fit:
    board: str
    fits: bool
    engine: str  # "tflm" (the board's CPU) or the Ethos-U target
    sram_need_kb: float | None  # None: not known (the file does not run on this engine)
    sram_kb: float
    flash_need_kb: float | None
    flash_kb: float
    breaks: str = ""  # which budget it breaks and by how much
    inference_ms: float | None = None  # Ethos-U only: Vela's cycles at the board's NPU clock

    def to_dict(self) -> dict:
        return asdict(self)


def fit(board: Board, arena_bytes: int, model_bytes: int, engine: str = "tflm",
        sram_reserve_kb: float = SRAM_RESERVE_KB, flash_reserve_kb: float = FLASH_RESERVE_KB,
        inference_ms: float | None = None) -> Fit:
    sram_need = arena_bytes / 1024 + sram_reserve_kb
    flash_need = model_bytes / 1024 + flash_reserve_kb
    over = []
    if sram_need > board.sram_kb:
        over.append(f"SRAM by {sram_need - board.sram_kb:,.1f} KB ({sram_need:,.1f} of {board.sram_kb:,.0f} KB)")
    if flash_need > board.flash_kb:
        over.append(f"flash by {flash_need - board.flash_kb:,.1f} KB ({flash_need:,.1f} of "
                    f"{board.flash_kb:,.0f} KB)")
    return Fit(board=board.name, fits=not over, engine=engine, sram_need_kb=round(sram_need, 2),
               sram_kb=board.sram_kb, flash_need_kb=round(flash_need, 2), flash_kb=board.flash_kb,
               breaks="; ".join(over), inference_ms=inference_ms)


def reserves_note(sram_reserve_kb: float = SRAM_RESERVE_KB, flash_reserve_kb: float = FLASH_RESERVE_KB) -> str:
    return (f"fits = arena + I/O + {sram_reserve_kb:g} KB reserved SRAM <= SRAM, and file + {flash_reserve_kb:g} KB "
            f"runtime <= flash")


def npu_problem(vela: dict, runs_under_tflm: bool) -> str:
    """Why a board's Ethos-U cannot run the file as Vela compiled it, or "": Vela put nothing on the NPU (a float
    model stays on the CPU), or the operators it left to the CPU would run under TFLM, which refuses the file."""
    if not vela.get("ok"):
        return vela.get("message") or "Vela failed"
    if not vela.get("npu_ops"):
        return "Vela put no operator on the NPU (float operators stay on the CPU)"
    if vela.get("cpu_ops") and not runs_under_tflm:
        names = ", ".join(vela.get("cpu_op_names") or [])
        return f"the {vela['cpu_ops']} operator(s) Vela leaves to the CPU ({names}) do not run under TFLite Micro"
    return ""
