"""Read the text printed by TensorFlow Lite's `benchmark_model` into one `BenchResult`.

Every output family seen in the wild is understood:

- TF 1.x: ``Average inference timings in us: Warmup: W, Init: I, no stats: N``
- TF 2.0 to 2.2: ``Average inference timings in us: Warmup: W, Init: I, Inference: N``
- TF 2.3 on: ``count=.. first=.. curr=.. min=.. max=.. avg=.. std=..`` lines, ``Inference timings in us: Init: ..,
  First inference: .., Warmup (avg): .., Inference (avg): ..`` and either memory line
- LiteRT builds whose ``count=`` lines add ``p5=.. median=.. p95=..``
- the LiteRT CompiledModel tool's ``========== BENCHMARK RESULTS ==========`` block (milliseconds)
- any of the above behind logcat prefixes (the benchmark APK), with ``Overall max resident set size = .. MB``

The tool prints microseconds; results are milliseconds and megabytes. Only what the log states is reported: a
median appears only when the tool printed one (a mean is never passed off as a median), and threads, delegate or
any figure the log does not state stay None, never a default. The delegate is read from what the log shows (the
parameter echo or command line, "Created ... delegate", "Replacing N out of M node(s) with delegate (...)", the op
profile's delegate nodes); an output cut short after initialization is `truncated`, keeping what it did print.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tflkit.core.errors import TflkitError
from tflkit.core.results import STATUS_OK, BenchResult

STATUS_TRUNCATED = "truncated"  # the run started but its output stops before the timings
# Undecodable bytes and control characters tolerated in a log (a mangled device name, a stray byte) before it
# counts as a binary file; a NUL byte alone settles it.
_MAX_UNREADABLE_FRACTION = 0.01
_MAX_UNREADABLE_FEW = 4

NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"

# `adb logcat -v threadtime`: "05-30 15:16:44.857  3380  3380 I tflite  : message" (`-v year` adds the year,
# `-v uid` a user before the pids). Exactly one space follows the colon, so a profiling row's leading TAB survives.
_LOGCAT_THREADTIME = re.compile(
    r"^(?:\d{4}-)?\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+(?:[\w.]+\s+)?\d+\s+\d+\s+[VDIWEF]\s+\S+?\s*: ?"
)
# `-v brief` / `-v tag` / `-v time`: "E/tflite: message", "I/tflite  ( 3380): message", "05-30 15:16:44.857 I/tflite..".
_LOGCAT_BRIEF = re.compile(
    r"^(?:(?:\d{4}-)?\d\d-\d\d\s+\d\d:\d\d:\d\d\.\d+\s+)?[VDIWEF]/[^\s:(]+\s*(?:\(\s*\d+\))?\s*: ?"
)
# Threadtime with the time and pids cut off, as logcat viewers copy it: "I tflite  : message".
_LOGCAT_LEVEL_TAG = re.compile(r"^[VDIWEF]\s+[A-Za-z][\w.-]*\s*: ?")
# TFLITE_LOG / LITERT_LOG severity and source tags: "INFO: ", "ERROR: ", "INFO: [benchmark_litert_model.h:72] ".
_LEVEL_PREFIX = re.compile(r"^(?:(?:INFO|WARNING|WARN|ERROR|VERBOSE|DEBUG): )?(?:\[[\w./-]+:\d+\] )?")

_PARAM_ECHO = re.compile(r"^([A-Za-z#][^:\[\]]*): \[(.*)\]\s*$")

_TIMINGS_LINE = re.compile(r"(Average )?[Ii]nference timings in us: (.*)$")
_RSS = re.compile(rf"Overall max resident set size = ({NUMBER}) MB")
_MEMORY_INIT_OVERALL = re.compile(
    rf"(?:Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
    rf"init=({NUMBER}) overall=({NUMBER})"
)
_MEMORY_PERIODIC_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({NUMBER})")
_SESSION_INIT = re.compile(rf"Initialized session in ({NUMBER}) ?ms")
_LOADED_MODEL = re.compile(r"^Loaded model (\S.*?)\s*$")
# "Running benchmark for at least 1 iterations ..." (TF 1.x: "Running benchmark for 1 iterations"): each opens the
# block whose `count=` line follows, the warm-up first and the timed runs second.
_RUNNING_BENCHMARK = re.compile(r"^Running benchmark for ")
# Lines that show benchmark_model started; such an output without timings or a failure was cut short.
_STARTED = re.compile(
    r"^STARTING!|^Loaded model |Initialized session in |^Running benchmark for |delegate created"
    r"|Created TensorFlow Lite .*delegate|with delegate \(|^Initialized TensorFlow Lite runtime"
)
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\): ({NUMBER})")

_COMPILED_MODEL_MARK = "========== BENCHMARK RESULTS =========="
_COMPILED_MODEL_ROW = re.compile(rf"^([A-Za-z][A-Za-z ()]*?):\s+({NUMBER})\s*(?:ms|MB)?(?:\s*\((\d+) runs\))?")

_GPU_SPLIT = re.compile(
    r"(?:First )?(\d+) operations will run on the GPU, and the remaining (\d+)(?: operations will run)? on the CPU"
)
_REPLACING_OUT_OF = re.compile(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]*)\)")
_REPLACING = re.compile(r"Replacing (\d+) node\(s\) with delegate \(([^)]*)\)")
_PARTIAL_KERNELS = re.compile(r"partially executed by the delegate w/ (\d+) delegate kernels")

# Thread counts in the wordings that state them, the count actually used first; -1 ("the tool's default") is
# reported as printed, not guessed.
_THREAD_STATEMENTS = [
    re.compile(r"^#threads used for CPU inference\s*:\s*\[?(-?\d+)\]?"),
    re.compile(r"^Num(?:ber of)? threads\s*:\s*\[?(-?\d+)\]?", re.IGNORECASE),
    re.compile(r"--num_threads[= ](-?\d+)\b"),
]
# Delegate names as the log spells them (parameter names, delegate node types, "Created ... delegate for GPU").
# XNNPACK comes last: it is applied by default beside the delegate a run asked for.
_DELEGATE_NAMES = ("gpu", "nnapi", "hexagon", "coreml", "xnnpack")
_USE_PARAM = re.compile(r"^use[ _]?(\w+?)\s*$", re.IGNORECASE)  # "Use gpu", "Use NNAPI", "Use nnapi "
_USE_FLAG = re.compile(r"--use_(\w+?)=(\w+)")  # a command line echoed into the log
_DELEGATE_STATEMENTS = [
    re.compile(r"Failed to apply (\S+) delegate"),
    re.compile(r"Created TensorFlow Lite (\S+ )?delegate for (\S+?)\.?$"),
    re.compile(r"^(\S+) delegate created"),
    re.compile(r"Explicitly applied (\S+) delegate"),
    re.compile(r"with delegate \(([^)]*)\)"),
    re.compile(r"operations will run on the (GPU)"),
]

# (status, pattern) in priority order: the most specific explanation wins, wherever it sits in the log.
_SHELL_FAILURES = [
    (
        "wrong_abi",
        re.compile(
            r"not executable: (?:32|64)-bit ELF|not executable: magic|Exec format error|cannot execute binary file"
            r"|wrong ELF class|is for EM_\w+ \(\d+\) instead of EM_\w+|unexpected e_machine",
            re.IGNORECASE,
        ),
    ),
    ("not_found", re.compile(r"^(?:/system/bin/)?sh: (?:\d+: )?(\S+): (?:inaccessible or )?not found")),
    ("not_found", re.compile(r"^(?:/system/bin/)?sh: (?:\d+: )?(\S+): No such file or directory")),
    ("not_executable", re.compile(r"can't execute: Permission denied|not executable", re.IGNORECASE)),
    ("link_failed", re.compile(r"CANNOT LINK EXECUTABLE")),
    ("permission_denied", re.compile(r"Permission denied")),
    ("model_load_failed", re.compile(r"Could not open '[^']*'|Failed to mmap model|Failed to load model")),
]
_RUN_FAILURES = [
    ("delegate_failed", re.compile(r"Failed to apply (\S+) delegate|Disallowed CPU fallback detected")),
    ("crashed", re.compile(r"Segmentation fault|Fatal signal \d+|^Aborted\b")),
    ("benchmark_failed", re.compile(r"Benchmarking failed")),
]
# ERROR lines that restate a failure rather than explain it.
_UNINFORMATIVE_ERRORS = re.compile(r"Restored original execution plan|Benchmarking failed|^\s*$")

_TABLE_KEYS = {
    "node type": "node_type",
    "start": "start_ms",
    "first": "first_ms",
    "avg ms": "avg_ms",
    "%": "percent",
    "avg %": "percent",
    "cdf%": "cdf_percent",
    "cdf %": "cdf_percent",
    "mem kb": "mem_kb",
    "times called": "times_called",
    "count": "count",
    "name": "name",
}
_TEXT_COLUMNS = {"node_type", "name"}
_INT_COLUMNS = {"count", "times_called"}


@dataclass
class ParsedLog:
    """One benchmark_model run as read from its output."""

    result: BenchResult
    family: str  # tf1, tf2.0, tf2.3, litert_percentiles, litert_compiled_model, or none
    params: dict[str, str] = field(default_factory=dict)  # the "Num threads: [4]" parameter echo
    op_nodes: list[dict] = field(default_factory=list)  # per-node rows of the run-order table
    delegate_kernels: int | None = None  # "partially executed by the delegate w/ N delegate kernels"
    extras: dict = field(default_factory=dict)  # printed values BenchResult has no field for


def strip_log_prefix(line: str) -> str:
    """Remove a logcat prefix (threadtime, brief, time or level-and-tag format), keeping the message exactly."""
    match = _LOGCAT_THREADTIME.match(line) or _LOGCAT_BRIEF.match(line) or _LOGCAT_LEVEL_TAG.match(line)
    return line[match.end() :] if match else line


def _message(line: str) -> str:
    return _LEVEL_PREFIX.sub("", line, count=1)


def parse_log(
    text: str,
    *,
    model: str | None = None,
    target: str = "android",
    device: str = "",
    threads: int | None = None,
    delegate: str | None = None,
) -> ParsedLog:
    """Parse one run's output. Arguments given here win over what the log states; what neither states is None."""
    # splitlines() also splits on a lone CR; the rstrip catches CRs left by logs saved twice through Windows.
    raw_lines = [strip_log_prefix(line.rstrip("\r")) for line in text.splitlines()]
    lines = [_message(line) for line in raw_lines]
    params = _param_echo(lines)
    result = BenchResult(
        model=model if model is not None else _model_from_log(params, lines),
        target=target,
        runtime="benchmark_model",
        device=device,
        threads=threads if threads is not None else _threads_from_log(lines),
        delegate=None,  # read below, once the op profile is known
    )
    extras: dict = {}
    if any(_COMPILED_MODEL_MARK in line for line in lines):
        family = _read_compiled_model_block(lines, result, extras)
        _read_percentiles(lines, result)
    else:
        family = _read_classic_timings(lines, result, extras)
    _read_memory(lines, result, extras)
    nodes, summary = _read_op_profile(lines)
    result.op_profile = summary
    result.delegate = delegate or _delegate_from_log(lines, params, summary or nodes)
    delegate_kernels = _read_delegation(lines, result)
    _classify(raw_lines, lines, result, has_timings=family != "none", has_profile=bool(summary or nodes))
    return ParsedLog(result, family, params, nodes, delegate_kernels, extras)


def _param_echo(lines: list[str]) -> dict[str, str]:
    params = {}
    for line in lines:
        match = _PARAM_ECHO.match(line)
        if match:
            params[match.group(1).strip()] = match.group(2)
    return params


def _model_from_log(params: dict[str, str], lines: list[str]) -> str:
    graph = params.get("Graph", "")
    if not graph:
        graph = next((m.group(1) for line in lines if (m := _LOADED_MODEL.match(line))), "")
    return PurePosixPath(graph).name if graph else ""


def _threads_from_log(lines: list[str]) -> int | None:
    for pattern in _THREAD_STATEMENTS:
        for line in lines:
            if match := pattern.search(line):
                return int(match.group(1))
    return None


def _delegate_named(text: str) -> str | None:
    lowered = text.lower()
    return next((name for name in _DELEGATE_NAMES if name in lowered), None)


def _delegate_from_log(lines: list[str], params: dict[str, str], profile_rows: list[dict]) -> str | None:
    """The delegate the log shows in use; "cpu" only where it shows every delegate it names switched off."""
    switches: dict[str, bool] = {}
    for key, value in params.items():
        if (match := _USE_PARAM.match(key)) and (name := _delegate_named(match.group(1))):
            switches[name] = switches.get(name, False) or value.strip().lower() in ("1", "true", "yes")
    for line in lines:
        for match in _USE_FLAG.finditer(line):
            if name := _delegate_named(match.group(1)):
                switches[name] = switches.get(name, False) or match.group(2).lower() in ("1", "true", "yes")
    shown = {name for name, on in switches.items() if on}
    for line in lines:
        for pattern in _DELEGATE_STATEMENTS:
            match = pattern.search(line)
            if match and (name := _delegate_named(" ".join(g for g in match.groups() if g))):
                shown.add(name)
    # Op-profile rows whose node type is a delegate kernel (TfLiteNnapiDelegate, TfLiteXNNPackDelegate, ...).
    delegate_nodes = [str(row.get("node_type", "")) for row in profile_rows
                      if "delegate" in str(row.get("node_type", "")).lower()]
    shown.update(name for node_type in delegate_nodes if (name := _delegate_named(node_type)))
    chosen = next((name for name in _DELEGATE_NAMES if name in shown), None)
    if chosen is None and switches:
        return "cpu"  # the log echoes its delegate switches and every one is off
    if chosen is None and profile_rows and not delegate_nodes:
        return "cpu"  # the timed runs' profile lists every node executed, and none is a delegate kernel
    return chosen


def _us_to_ms(value: float | None) -> float | None:
    # Rounded so 92571.2 us reads back as 92.5712 ms, not 92.57119999999999.
    return None if value is None else round(value / 1000.0, 9)


def _stat_line(line: str) -> dict[str, float]:
    """`count=50 first=.. curr=.. min=.. max=.. avg=.. std=..[ p5=.. median=.. p95=..]`, values as printed."""
    fields = {key: float(value) for key, value in re.findall(rf"(\w+)=({NUMBER})", line)}
    # The tool prints only `curr` when every sample was equal ("(all same)") or there was one sample.
    if "avg" not in fields and "curr" in fields and ("(all same)" in line or fields.get("count") == 1):
        fields.update(min=fields["curr"], max=fields["curr"], avg=fields["curr"])
        if "(all same)" in line:
            fields["std"] = 0.0
    return fields


def _timing_pairs(text: str) -> dict[str, float]:
    """`Warmup: 175118, Init: 5370, no stats: 154562` -> {"Warmup": 175118.0, ...}."""
    pairs = {}
    for part in text.split(","):
        key, sep, value = part.partition(":")
        number = re.match(rf"\s*({NUMBER})", value) if sep else None
        if number:
            pairs[key.strip()] = float(number.group(1))
    return pairs


def _stat_blocks(lines: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """(warm-up, timed runs) `count=` statistics, {} for a block the output does not have."""
    block = -1
    stats: list[tuple[int, dict[str, float]]] = []
    for line in lines:
        if _RUNNING_BENCHMARK.match(line):
            block += 1
        elif line.lstrip().startswith("count="):
            stats.append((block, _stat_line(line)))
    if block < 0:
        # No "Running benchmark" lines (a trimmed snippet): warm-up stats come first, the timed runs last, and a
        # log trimmed to one count line holds the timed runs.
        runs = stats[-1][1] if stats else {}
        warmup = stats[-2][1] if len(stats) >= 2 else {}
        return warmup, runs
    # Each "Running benchmark" line opens a block: the first is the warm-up, the next the timed runs. A run killed
    # during its timed runs has the warm-up's count line only, which must not pass for the timed runs.
    warmup = next((s for b, s in reversed(stats) if b == 0), {})
    runs = next((s for b, s in reversed(stats) if b >= 1), {})
    return warmup, runs


def _read_classic_timings(lines: list[str], result: BenchResult, extras: dict) -> str:
    timing_pairs: dict[str, float] = {}
    family = "none"
    for line in lines:
        match = _TIMINGS_LINE.search(line)
        if match:
            timing_pairs = _timing_pairs(match.group(2))
            if match.group(1) is None:
                family = "tf2.3"
            elif "no stats" in timing_pairs:
                family = "tf1"
            else:
                family = "tf2.0"
        if (match := _SESSION_INIT.search(line)) and "session_init_ms" not in extras:
            extras["session_init_ms"] = float(match.group(1))
        if match := _MODEL_SIZE.search(line):
            extras["model_size_mb"] = float(match.group(1))

    warmup, runs = _stat_blocks(lines)
    if runs and family == "none":
        family = "tf2.3"
    if "median" in runs:
        family = "litert_percentiles"

    # Init and the warm-up figures are kept even when the output stops before the timed runs.
    result.init_ms = _us_to_ms(timing_pairs.get("Init"))
    if result.init_ms is None and "session_init_ms" in extras:
        result.init_ms = extras["session_init_ms"]
    warmup_avg = timing_pairs.get("Warmup (avg)", timing_pairs.get("Warmup", warmup.get("avg")))
    result.warmup_mean_ms = _us_to_ms(warmup_avg)
    first_of_warmup = warmup.get("first", warmup.get("curr") if warmup.get("count") == 1 else None)
    result.first_ms = _us_to_ms(timing_pairs.get("First inference", first_of_warmup))
    if family == "none":
        return family

    inference_avg = timing_pairs.get("Inference (avg)", timing_pairs.get("Inference", timing_pairs.get("no stats")))
    result.mean_ms = _us_to_ms(runs.get("avg", inference_avg))
    result.std_ms = _us_to_ms(runs.get("std"))
    result.min_ms = _us_to_ms(runs.get("min"))
    result.max_ms = _us_to_ms(runs.get("max"))
    result.p5_ms = _us_to_ms(runs.get("p5"))
    result.median_ms = _us_to_ms(runs.get("median"))
    result.p95_ms = _us_to_ms(runs.get("p95"))
    result.count = int(runs["count"]) if "count" in runs else None
    return family


def _read_percentiles(lines: list[str], result: BenchResult) -> None:
    """The CompiledModel block has no median, but the same tool's `count=` line may print one (microseconds)."""
    runs = [_stat_line(line) for line in lines if line.lstrip().startswith("count=")]
    if runs and "median" in runs[-1]:
        result.p5_ms = _us_to_ms(runs[-1].get("p5"))
        result.median_ms = _us_to_ms(runs[-1]["median"])
        result.p95_ms = _us_to_ms(runs[-1].get("p95"))


def _read_compiled_model_block(lines: list[str], result: BenchResult, extras: dict) -> str:
    start = next(i for i, line in enumerate(lines) if _COMPILED_MODEL_MARK in line) + 1
    rows: dict[str, tuple[float, int | None]] = {}
    for line in lines[start:]:
        if line.startswith("=====") and "BENCHMARK" not in line:
            break
        match = _COMPILED_MODEL_ROW.match(line.strip())
        if match:
            runs = int(match.group(3)) if match.group(3) else None
            rows[match.group(1).strip()] = (float(match.group(2)), runs)

    def value(key: str) -> float | None:
        return rows[key][0] if key in rows else None

    # This tool already prints milliseconds.
    result.init_ms = value("Model initialization")
    result.first_ms = value("Warmup (first)")
    result.warmup_mean_ms = value("Warmup (avg)")
    result.mean_ms = value("Inference (avg)")
    result.count = rows["Inference (avg)"][1] if "Inference (avg)" in rows else None
    result.min_ms = value("Inference (min)")
    result.max_ms = value("Inference (max)")
    result.std_ms = value("Inference (std)")
    for key, name in (("Init footprint", "init_footprint_mb"), ("Overall footprint", "overall_footprint_mb"),
                      ("Peak memory", "peak_memory_mb"), ("Throughput", "throughput_mb_per_s")):
        if key in rows:
            extras[name] = rows[key][0]
    result.init_memory_mb = extras.get("init_footprint_mb")
    result.peak_memory_mb = extras.get("peak_memory_mb", extras.get("overall_footprint_mb"))
    return "litert_compiled_model" if result.mean_ms is not None else "none"


def _read_memory(lines: list[str], result: BenchResult, extras: dict) -> None:
    for line in lines:
        if match := _MEMORY_INIT_OVERALL.search(line):
            result.init_memory_mb = float(match.group(1))
            extras["overall_memory_mb"] = float(match.group(2))
        if match := _MEMORY_PERIODIC_PEAK.search(line):
            extras["periodic_peak_memory_mb"] = float(match.group(1))
        if match := _RSS.search(line):
            extras["max_rss_mb"] = float(match.group(1))
    # The periodic monitor sees the true peak; the init/overall pair is a max-RSS delta; older tools give only RSS.
    for key in ("periodic_peak_memory_mb", "overall_memory_mb", "max_rss_mb"):
        if key in extras:
            result.peak_memory_mb = extras[key]
            break


def _read_delegation(lines: list[str], result: BenchResult) -> int | None:
    wanted = (result.delegate or "").lower()
    replacing: list[tuple[int, int | None, str]] = []
    kernels = None
    for line in lines:
        if match := _GPU_SPLIT.search(line):
            result.delegated_ops, result.cpu_ops = int(match.group(1)), int(match.group(2))
            return kernels  # the GPU delegate's own count is the most specific statement
        if match := _REPLACING_OUT_OF.search(line):
            done, total = int(match.group(1)), int(match.group(2))
            replacing.append((done, total - done, match.group(3)))
        elif match := _REPLACING.search(line):
            replacing.append((int(match.group(1)), None, match.group(2)))
        if match := _PARTIAL_KERNELS.search(line):
            kernels = int(match.group(1))
        if "completely executed by the delegate" in line:
            result.cpu_ops = 0
        if "will not be executed by the delegate" in line:
            result.delegated_ops = 0
    if replacing:
        # With several delegates (XNNPACK by default, then the one asked for), report the one asked for.
        chosen = next((r for r in replacing if wanted != "cpu" and wanted in r[2].lower()), replacing[0])
        result.delegated_ops = chosen[0]
        if chosen[1] is not None:
            result.cpu_ops = chosen[1]
    return kernels


def _read_op_profile(lines: list[str]) -> tuple[list[dict], list[dict]]:
    """Per-node rows and the per-node-type summary of the timed runs (not of initialization)."""
    regular = [i for i, line in enumerate(lines) if "Profiling Info for Regular Benchmark Runs" in line]
    if regular:
        region = lines[regular[-1] + 1 :]
    elif any("Profiling Info for Benchmark Initialization" in line for line in lines):
        return [], []  # only the initialization tables were printed
    else:
        region = lines  # older tools print one unlabelled set of tables
    return _read_table(region, "Run Order"), _read_table(region, "Summary by node type")


def _read_table(lines: list[str], title: str) -> list[dict]:
    for i, line in enumerate(lines):  # noqa: B007  (`i` is read after the loop)
        if line.startswith("=") and f" {title} " in line:
            break
    else:
        return []
    header = [_column_key(cell) for cell in lines[i + 1].split("\t")] if i + 1 < len(lines) else []
    rows = []
    for line in lines[i + 2 :]:
        if not line.startswith("\t"):
            break
        cells = line.split("\t")
        rows.append({key: _cell(key, cell) for key, cell in zip(header, cells) if key})
    return rows


def _column_key(cell: str) -> str:
    name = cell.strip().strip("[]").strip().lower()
    return _TABLE_KEYS.get(name, re.sub(r"\W+", "_", name).strip("_"))


def _cell(key: str, cell: str):
    text = cell.strip()
    if key in _TEXT_COLUMNS:
        return text
    try:
        number = float(text.rstrip("%"))
    except ValueError:
        return text
    return int(number) if key in _INT_COLUMNS else number


def _classify(
    raw_lines: list[str], lines: list[str], result: BenchResult, *, has_timings: bool, has_profile: bool
) -> None:
    # With timings printed, shell-level words (a stray "Permission denied" warning) do not void the numbers;
    # a failed delegate or a failed run still does: those numbers are not what was asked for.
    rules = _RUN_FAILURES if has_timings else _SHELL_FAILURES + _RUN_FAILURES
    for status, pattern in rules:
        hit = next((line for line in lines if pattern.search(line)), None)
        if hit is not None:
            result.status = status
            result.message = _failure_message(status, hit.strip(), raw_lines)
            return
    if not has_timings:
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")
        if any(_STARTED.search(line) for line in lines):
            # Cut short (a killed run, a delegate that died later): what it printed so far is kept.
            result.status = STATUS_TRUNCATED
            result.message = f"the output stops before the timings; last line: {last[:160]}"
            return
        result.status = "no_results"
        if has_profile:
            result.message = "an op profile but no overall timings in the output"
        else:
            result.message = f"no timings in the output; last line: {last[:160]}" if last else "empty output"
        return
    result.status = STATUS_OK
    result.message = ""


def _first_error_cause(raw_lines: list[str]) -> str:
    for line in raw_lines:
        stripped = line.strip()
        if stripped.startswith("ERROR:"):
            cause = stripped[len("ERROR:") :].strip()
            if not _UNINFORMATIVE_ERRORS.search(cause):
                return cause
    return ""


def _failure_message(status: str, line: str, raw_lines: list[str]) -> str:
    cause = _first_error_cause(raw_lines)
    if status == "delegate_failed":
        return f"{line.rstrip('.')}: {cause}" if cause else line
    if status == "benchmark_failed":
        return f"benchmark_model failed: {cause}" if cause else "benchmark_model failed (Benchmarking failed.)"
    if status == "wrong_abi":
        return f"benchmark_model is built for another CPU (wrong ABI): {line}"
    if status == "not_found":
        return f"not found on the device: {line}; run `tflkit android setup`"
    if status == "not_executable":
        return f"benchmark_model is not executable on the device: {line}"
    return line[:200]


def read_log_text(path) -> str:
    """A saved log's text, or TflkitError naming the file when it is not text (a binary, an image, a .tflite).

    UTF-16 (what PowerShell's `adb logcat > file` writes) and a UTF-8 byte-order mark are read as text.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TflkitError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass  # not really UTF-16: judged as bytes below
    text = data.decode("utf-8-sig", errors="replace")
    sample = text[:65536]
    unreadable = sum(1 for ch in sample if ch == "\ufffd" or (ch < " " and ch not in "\t\n\r\f\v\x1b"))
    if "\x00" in sample or unreadable > max(_MAX_UNREADABLE_FEW, _MAX_UNREADABLE_FRACTION * len(sample)):
        raise TflkitError(f"{path}: not a text file (binary data), not a benchmark_model log")
    return text
