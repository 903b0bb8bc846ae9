"""Boards as data: the memory a model must fit, with the document each figure comes from.

SRAM and flash are the chip's (or, for external flash, the named board's) totals as the vendor states them; the
part a tensor arena can use is smaller by what the application, stack and TFLM's own objects take, which "fits"
(tflkit.mcu.fit) subtracts as a stated reserve. A user's board comes from a YAML file with the same keys:

    boards:
      my_board: {title: "My board", core: Cortex-M4F, clock_mhz: 80, sram_kb: 128, flash_kb: 512}
      my_npu_board: {core: Cortex-M55, clock_mhz: 400, sram_kb: 2048, flash_kb: 4096,
                     ethos_u: ethos-u55-128, npu_clock_mhz: 400, source: "vendor datasheet rev 2"}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tflkit.core.config import from_dict, read_yaml
from tflkit.core.errors import UsageError, unknown_choice
from tflkit.mcu.vela import VelaTarget


@dataclass(frozen=True)
class Board:
    name: str
    core: str
    clock_mhz: float
    sram_kb: float  # KiB (1,024 bytes), as vendors state on-chip SRAM
    flash_kb: float
    title: str = ""
    ethos_u: str = ""  # a tflkit.mcu.vela target where the board has an Ethos-U NPU
    npu_clock_mhz: float | None = None  # the NPU's clock on this board (Vela's estimate is rescaled to it)
    source: str = ""  # where the figures come from

    def to_dict(self) -> dict:
        return asdict(self)


BOARDS = {b.name: b for b in (
    Board("stm32f746g_disco", "Cortex-M7", 216, 320, 1024, title="STM32F746G-DISCO",
          source="ST DS10916 (STM32F745xx/STM32F746xx datasheet): 320 KB SRAM including 64 KB DTCM, 1 MB flash, "
                 "216 MHz"),
    Board("stm32h747", "Cortex-M7 + Cortex-M4", 480, 1024, 2048, title="STM32H747 (STM32H747I-DISCO)",
          source="ST DS12930 (STM32H747xI/G datasheet): 1 MB RAM (192 KB TCM + 864 KB user SRAM), 2 MB flash, "
                 "M7 up to 480 MHz"),
    Board("nrf52840", "Cortex-M4F", 64, 256, 1024, title="nRF52840 / Arduino Nano 33 BLE",
          source="Nordic nRF52840 Product Specification v1.7: 256 KB RAM, 1 MB flash, 64 MHz"),
    Board("esp32s3_devkitc1", "Xtensa LX7 (dual core)", 240, 512, 8192, title="ESP32-S3-DevKitC-1 (N8)",
          source="Espressif ESP32-S3 datasheet v1.x: 512 KB SRAM, 240 MHz; ESP32-S3-DevKitC-1 user guide: "
                 "ESP32-S3-WROOM-1-N8, 8 MB flash (the R8 variants' 8 MB PSRAM is not counted)"),
    Board("rp2350_pico2", "Cortex-M33 (dual core)", 150, 520, 4096, title="Raspberry Pi Pico 2 (RP2350)",
          source="RP2350 datasheet: 520 KB SRAM, 150 MHz; Raspberry Pi Pico 2 datasheet: 4 MB QSPI flash"),
    Board("imxrt1170_evk", "Cortex-M7 + Cortex-M4", 1000, 2048, 16384, title="i.MX RT1170 (MIMXRT1170-EVK)",
          source="NXP i.MX RT1170 datasheet: 2 MB on-chip SRAM (512 KB of it TCM), M7 at 1 GHz; MIMXRT1170-EVK "
                 "user's guide: 128 Mbit (16 MB) IS25WP128 QSPI NOR flash"),
    Board("alif_e7_hp", "Cortex-M55", 400, 13824, 5632, title="Alif Ensemble E7, high-performance subsystem",
          ethos_u="ethos-u55-256", npu_clock_mhz=400,
          source="Alif Ensemble E7 datasheet: 13.5 MB SRAM, 5.5 MB MRAM (non-volatile, in place of flash), "
                 "high-performance Cortex-M55 at 400 MHz with an Ethos-U55-256"),
)}


def get_board(name: str, extra: dict | None = None) -> Board:
    boards = {**BOARDS, **(extra or {})}
    if name not in boards:
        raise unknown_choice("board", name, boards)
    return boards[name]


def read_boards(path) -> dict[str, Board]:
    """A user's boards from YAML (`boards: {name: {core, clock_mhz, sram_kb, flash_kb, ...}}`)."""
    data = read_yaml(path, what="boards file", expected="a mapping with a `boards:` mapping")
    boards = data.get("boards")
    if set(data) - {"boards"} or not isinstance(boards, dict) or not boards:
        raise UsageError(f"{path}: expected one key `boards:` mapping board names to their figures")
    out = {}
    for name, fields in boards.items():
        board = from_dict(Board, {"name": str(name), **(fields or {})}, source=f"{path}: board {name}")
        for key in ("clock_mhz", "sram_kb", "flash_kb"):
            if getattr(board, key) <= 0:
                raise UsageError(f"{path}: board {name}: {key} must be above 0, got {getattr(board, key)}")
        if board.ethos_u:
            VelaTarget.parse(board.ethos_u)
        out[board.name] = board
    return out


def resolve_boards(names=(), boards_file=None) -> list[Board]:
    """The boards named (built-in, or from a user's `boards_file`); every one of them when no name is given."""
    extra = read_boards(boards_file) if boards_file else {}
    return [get_board(name, extra) for name in (names or list({**BOARDS, **extra}))]
