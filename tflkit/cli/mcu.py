"""`tflkit mcu FILE... --board B...`: a thin shell over tflkit.mcu.measure."""

from __future__ import annotations

from pathlib import Path

from tflkit import api
from tflkit.cli.common import JSON_HELP, Reply, item_error, log_line
from tflkit.core.errors import UsageError
from tflkit.mcu.boards import BOARDS
from tflkit.mcu.fit import FLASH_RESERVE_KB, SRAM_RESERVE_KB
from tflkit.mcu.vela import ACCELERATORS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "mcu", help="microcontrollers: does a .tflite run under TFLite Micro, its exact arena, flash, Ethos-U "
                    "figures by Vela, and whether it fits each board (extra: tflkit[mcu])",
        description="Every file runs under TensorFlow Lite Micro in child processes: refused (the reason named), "
                    "or the smallest tensor arena that allocates and invokes, found by bisection and checked by "
                    "fresh runs at that size and a byte less. --dataset adds top-1 as TFLM's reference kernels "
                    "compute it and its agreement with LiteRT. --ethos-u compiles with Arm Vela.")
    p.add_argument("model", nargs="*", help=".tflite files")
    p.add_argument("--board", nargs="+", metavar="B",
                   help=f"boards to fit (default: all built-in): {', '.join(BOARDS)}, or names from --boards-file")
    p.add_argument("--boards-file", help="YAML with your own boards (keys as `tflkit mcu --list-boards --json`)")
    p.add_argument("--ethos-u", nargs="+", default=[], metavar="T",
                   help=f"Vela targets ACCELERATOR[:SYSTEM_CONFIG[:MEMORY_MODE]], accelerators: "
                        f"{', '.join(ACCELERATORS)} (boards with an NPU add their own)")
    p.add_argument("--dataset", help="score top-1 under TFLM on this dataset's --split (slow: reference kernels)")
    p.add_argument("--data-dir", help="where the dataset's files are")
    p.add_argument("--split", default="test", help="with --dataset: the split to score (default: test)")
    p.add_argument("--limit", type=int, metavar="N", help="score a stratified subset of N images")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit subset and the dataset's splits")
    p.add_argument("--sram-reserve-kb", type=float, default=SRAM_RESERVE_KB,
                   help=f"SRAM kept for the application, stack and TFLM outside the arena "
                        f"(default {SRAM_RESERVE_KB:g})")
    p.add_argument("--flash-reserve-kb", type=float, default=FLASH_RESERVE_KB,
                   help=f"flash for the TFLM runtime, kernels and application (default {FLASH_RESERVE_KB:g})")
    p.add_argument("--list-boards", action="store_true", help="print the boards and their sources, then exit")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p.set_defaults(func=cmd_mcu)


def cmd_mcu(args) -> Reply:
    if args.list_boards:
        boards = api.boards(args.boards_file)
        if not args.json:
            for b in boards:
                npu = f", {b['ethos_u']}" if b["ethos_u"] else ""
                print(f"{b['name']:<18} {b['core']}, {b['clock_mhz']:g} MHz, SRAM {b['sram_kb']:g} KB, flash "
                      f"{b['flash_kb']:g} KB{npu}  ({b['source']})")
        return Reply("mcu", boards)
    if not args.model:
        raise UsageError("give one or more .tflite files (or --list-boards)")
    results = api.mcu(args.model, boards=args.board, boards_file=args.boards_file, ethos_u=args.ethos_u,
                      dataset=args.dataset, data_dir=args.data_dir, split=args.split, limit=args.limit,
                      seed=args.seed, sram_reserve_kb=args.sram_reserve_kb, flash_reserve_kb=args.flash_reserve_kb,
                      log=log_line)
    reply = Reply("mcu")
    for result in results:
        if isinstance(result, api.Failed):
            log_line(f"tflkit: error: {result.message}")
            reply.errors.append(item_error(result.item, result.message))
            continue
        reply.results.append(result)
        if not result.runs:
            reply.errors.append(item_error(result.model, f"does not run under TFLite Micro: {result.reason}"))
        if not args.json:
            print(format_result(result))
    return reply


def format_result(r) -> str:
    """The text form: what TFLM says, Vela's figures, then one line per board and engine."""
    name = Path(r.model).name
    if not r.runs:
        lines = [f"{name}: does not run under TFLite Micro: {r.reason}"]
    else:
        check = f"checked: {r.arena_bytes - 1:,} B fails" if r.arena_checked else "NOT confirmed by the check runs"
        extra = []
        if r.tflm_reported_bytes is not None:
            parts = r.tflm.get("head_bytes"), r.tflm.get("tail_bytes")
            split = f": {parts[0]:,} activations + {parts[1]:,} persistent" if None not in parts else ""
            extra.append(f"TFLM's own report {r.tflm_reported_bytes:,} B{split}")
        if r.planned_arena_bytes is not None:
            extra.append(f"tflkit's LiteRT plan {r.planned_arena_bytes:,} B")
        lines = [f"{name}: runs under TFLite Micro; arena {r.arena_bytes:,} B ({check}; {', '.join(extra)}); "
                 f"file {r.file_bytes / 1024:,.1f} KB"]
    lines += [f"  note: {note}" for note in r.notes]
    if r.eval:
        e = r.eval
        lines.append(f"  top-1 under TFLM {100 * e['top1']:.2f}% on {e['count']} {e['split']} images"
                     f"{' (a stratified subset)' if e['limit'] else ''}; LiteRT {100 * e['reference_top1']:.2f}%, "
                     f"top-1 agreement {100 * e['agreement']:.2f}%")
    for v in r.vela:
        if not v["ok"]:
            lines.append(f"  {v['target']}: {v['message']}")
            continue
        cpu = f" ({', '.join(v['cpu_op_names'])})" if v["cpu_op_names"] else ""
        ms = f", {v['inference_ms']:.3f} ms estimated" if v["inference_ms"] is not None else ""
        lines.append(f"  {v['target']} ({v['system_config']}, {v['memory_mode']}, {v['clock_mhz']:g} MHz): SRAM "
                     f"{v['sram_kib']:,.1f} KiB, flash {v['flash_kib']:,.1f} KiB, DRAM {v['dram_kib']:,.1f} KiB; "
                     f"{v['npu_ops']} NPU / {v['cpu_ops']} CPU ops{cpu}{ms}; Vela {v['vela_version']}")
    if r.fits:
        lines.append(f"  {'board':<18} {'engine':<14} {'SRAM need/has KB':>20} {'flash need/has KB':>20}  fits")
        for f in r.fits:
            if f["sram_need_kb"] is None:  # the reason is on the file's first line
                lines.append(f"  {f['board']:<18} {f['engine']:<14} {'-':>9} / {f['sram_kb']:<8,.0f} {'-':>9} / "
                             f"{f['flash_kb']:<8,.0f}  no: does not run")
                continue
            verdict = "yes" if f["fits"] else f"no: {f['breaks']}"
            ms = f"  ({f['inference_ms']:.3f} ms est.)" if f["inference_ms"] is not None else ""
            lines.append(f"  {f['board']:<18} {f['engine']:<14} {f['sram_need_kb']:>9,.1f} / {f['sram_kb']:<8,.0f}"
                         f" {f['flash_need_kb']:>9,.1f} / {f['flash_kb']:<8,.0f}  {verdict}{ms}")
        lines.append(f"  ({r.reserves})")
    return "\n".join(lines)
