"""A compact text table of BenchResults for the terminal."""

from __future__ import annotations

from tflkit.core.results import BenchResult

COLUMNS = ("model", "target", "delegate", "threads", "status", "median_ms", "mean_ms", "std_ms", "min_ms",
           "init_ms", "peak_mb", "ops deleg/cpu")
NOT_IN_LOG = "not in the log"  # threads or delegate a parsed log does not state: never a default
MISSING = "-"


def _ms(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.3f}" if value < 100 else f"{value:.1f}"


def _ops(result: BenchResult) -> str:
    """Nodes on the delegate / left on the CPU, as the log stated them; "?" where it did not say."""
    if result.delegated_ops is None and result.cpu_ops is None:
        return MISSING
    return "/".join("?" if n is None else str(n) for n in (result.delegated_ops, result.cpu_ops))


def _row(result: BenchResult) -> list[str]:
    return [
        result.model or MISSING,
        result.target,
        NOT_IN_LOG if result.delegate is None else result.delegate,
        NOT_IN_LOG if result.threads is None else str(result.threads),
        result.status,
        _ms(result.median_ms),
        _ms(result.mean_ms),
        _ms(result.std_ms),
        _ms(result.min_ms),
        _ms(result.init_ms),
        MISSING if result.peak_memory_mb is None else f"{result.peak_memory_mb:.1f}",
        _ops(result),
    ]


def format_table(results: list[BenchResult], *, show_file: bool = False) -> str:
    """One line per run; failures get their one-line reason underneath. Median shows only where printed.

    With `show_file` (several logs parsed), a first `file` column names each row's log (`raw_log`).
    """
    if not results:
        return "(no results)"
    columns = (["file"] if show_file else []) + list(COLUMNS)
    rows = [columns] + [([r.raw_log or MISSING] if show_file else []) + _row(r) for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    numeric = {i for i, name in enumerate(columns) if name.endswith(("_ms", "_mb"))}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(rows[0]).rstrip()]
    for result, row in zip(results, rows[1:]):
        out.append(line(row).rstrip())
        if not result.ok and result.message:
            out.append(f"    -> {result.message}")
    if any(cell == MISSING for row in rows[1:] for cell in row):
        out.append(f"({MISSING}: not in the log)")
    return "\n".join(out)


def format_op_profile(result: BenchResult, limit: int = 15) -> str:
    """The per-node-type summary of one run, slowest first."""
    rows = sorted(result.op_profile, key=lambda row: -(row.get("avg_ms") or 0.0))[:limit]
    if not rows:
        return ""
    width = max(len(str(row.get("node_type", ""))) for row in rows)
    delegate = result.delegate or f"delegate {NOT_IN_LOG}"
    threads = f"{result.threads} threads" if result.threads is not None else f"threads {NOT_IN_LOG}"
    lines = [f"op profile of {result.model or 'the run'} ({delegate}, {threads}):",
             f"  {'node type'.ljust(width)}  count     avg_ms       %"]
    for row in rows:
        lines.append(f"  {str(row.get('node_type', '')).ljust(width)}  {row.get('count', '-'):>5}  "
                     f"{row.get('avg_ms', 0.0):>9.3f}  {row.get('percent', 0.0):>6.1f}")
    return "\n".join(lines)
