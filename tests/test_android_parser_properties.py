"""Property tests: benchmark outputs generated in each family, read back exactly as they were written.

Each example writes one `benchmark_model` output with random figures, a random subset of the lines that state
threads, delegate, model and memory, one of the logcat prefix styles (or none) and one line-break style, and
optionally cuts it short after initialization. The parser must return exactly the figures written, and None for
everything the output leaves out: never a default.

Families, in the formats of the shared fixtures and the parser's docstring:
- `tf2`: TF 2.3+ benchmark_model (`count=` lines, `Inference timings in us: Init: .., First inference: ..`)
- `litert`: newer LiteRT builds (`INFO: ` on every line, `p5= median= p95=`, the periodic memory peak)
- `apk`: the Android benchmark app through `adb logcat` (TF 2.0-2.2 wording, `Overall max resident set size`)
"""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from android_bench.parser import parse_log, strip_log_prefix

approx = pytest.approx
# No example database: nothing is written into the working tree, and every run draws afresh.
SETTINGS = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Delegate -> the node type its "Replacing ..." line names.
DELEGATE_NODE = {"xnnpack": "TfLiteXNNPackDelegate", "gpu": "TfLiteGpuDelegateV2", "nnapi": "TfLiteNnapiDelegate"}
CREATED_LINE = {
    "xnnpack": "Created TensorFlow Lite XNNPACK delegate for CPU.",
    "gpu": "Created TensorFlow Lite delegate for GPU.",
    "nnapi": "Created TensorFlow Lite delegate for NNAPI.",
}
PARAM_LINE = {"xnnpack": "Use xnnpack: [1]", "gpu": "Use gpu: [1]", "nnapi": "Use NNAPI: [1]"}


@st.composite
def microseconds(draw) -> str:
    """A time as benchmark_model prints it: an integer, a decimal, or six significant digits (2.95034e+06)."""
    value = draw(st.floats(min_value=1.0, max_value=5e7, allow_nan=False, allow_infinity=False))
    style = draw(st.sampled_from(["int", "decimal", "g"]))
    if style == "int":
        return str(max(1, int(value)))
    return f"{value:.1f}" if style == "decimal" else f"{value:g}"


def ms(printed_us: str) -> float:
    return float(printed_us) / 1000.0


@st.composite
def logcat_prefixes(draw, styles=("none", "threadtime", "year", "level_tag", "brief_pid", "brief", "time")):
    """(style, a function giving the prefix of line i) in one of the styles `adb logcat` and its viewers print."""
    style = draw(st.sampled_from(styles))
    pid = draw(st.integers(min_value=1, max_value=99999))
    tag = draw(st.sampled_from(["tflite", "TFLite", "BenchmarkModel"]))
    level = draw(st.sampled_from("IWDV"))

    def prefix(i: int) -> str:
        stamp = f"11-30 12:{i // 60 % 60:02d}:{i % 60:02d}.{(i * 37) % 1000:03d}"
        return {
            "none": "",
            "threadtime": f"{stamp}  {pid:>5} {pid:>5} {level} {tag:<8}: ",
            "year": f"2026-{stamp} {pid} {pid} {level} {tag}: ",
            "level_tag": f"{level} {tag:<8}: ",
            "brief_pid": f"{level}/{tag}({pid:>5}): ",
            "brief": f"{level}/{tag}: ",
            "time": f"{stamp} {level}/{tag}( {pid}): ",
        }[style]

    return style, prefix


@st.composite
def stat_line(draw, percentiles: bool):
    """(printed `count=` line, the figures in it)."""
    fields = {"count": str(draw(st.integers(min_value=2, max_value=500)))}
    for key in ("first", "curr", "min", "max", "avg", "std"):
        fields[key] = draw(microseconds())
    if percentiles:
        for key in ("p5", "median", "p95"):
            fields[key] = draw(microseconds())
    return " ".join(f"{k}={v}" for k, v in fields.items()), fields


@st.composite
def benchmark_outputs(draw):
    """(output text, what a parser must read from it)."""
    family = draw(st.sampled_from(["tf2", "litert", "apk"]))
    model = draw(st.sampled_from(["net.tflite", "mobilenet_v2_1.0_224_quant.tflite", "a-b_c.int8.tflite"]))
    threads = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=16)))
    thread_lines = draw(st.sampled_from(["num", "used", "both"]))
    delegate = draw(st.sampled_from([None, "cpu", "xnnpack", "gpu", "nnapi"]))
    shown_by = draw(st.sampled_from(["param", "created", "replacing"]))
    placement = draw(st.one_of(st.none(), st.tuples(st.integers(0, 400), st.integers(0, 400))))
    if delegate in (None, "cpu"):
        placement = None
    if shown_by == "replacing" and delegate in DELEGATE_NODE and placement is None:
        shown_by = "created"
    echo_graph, echo_loaded = draw(st.booleans()), draw(st.booleans())
    memory = draw(st.booleans())
    init_us = str(draw(st.integers(min_value=1, max_value=900_000)))
    warmup_count = draw(st.integers(min_value=1, max_value=5))
    warmup_values = [draw(microseconds()) for _ in range(3)]
    runs_line, runs = draw(stat_line(percentiles=family == "litert"))
    first_us, warmup_avg_us = draw(microseconds()), draw(microseconds())
    memory_values = [f"{draw(st.floats(0.5, 900.0)):.5g}" for _ in range(2)]

    expected = {
        "model": model if (echo_graph or echo_loaded) else "",
        "threads": threads,
        "delegate": delegate,
        "placement": (placement[0], placement[1]) if placement else (None, None),
        "init_ms": ms(init_us),
    }
    lines = ["STARTING!", "Log parameter values verbosely: [0]"]
    if threads is not None and thread_lines in ("num", "both"):
        lines.append(f"Num threads: [{threads}]")
    if echo_graph:
        lines.append(f"Graph: [/data/local/tmp/tflkit/{model}]")
    if threads is not None and thread_lines in ("used", "both"):
        lines.append(f"#threads used for CPU inference: [{threads}]")
    if delegate == "cpu":
        lines.append("Use xnnpack: [0]")
    elif delegate is not None and shown_by == "param":
        lines.append(PARAM_LINE[delegate])
    if echo_loaded:
        lines.append(f"Loaded model /data/local/tmp/tflkit/{model}")
    lines.append("INFO: Initialized TensorFlow Lite runtime.")
    if delegate in CREATED_LINE and shown_by == "created":
        lines.append(f"INFO: {CREATED_LINE[delegate]}")
    if placement:
        done, left = placement
        lines.append(f"INFO: Replacing {done} out of {done + left} node(s) with delegate "
                     f"({DELEGATE_NODE[delegate]}) node, yielding 1 partitions for the whole graph.")
    lines.append(f"Initialized session in {ms(init_us):.3f}ms.")
    lines.append("Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding "
                 "150 seconds.")
    initialized_at = len(lines)
    if warmup_count == 1:
        lines.append(f"count=1 curr={warmup_values[0]}")
        warmup_first, warmup_mean = warmup_values[0], warmup_values[0]
    else:
        lines.append(f"count={warmup_count} first={warmup_values[0]} curr={warmup_values[1]} min=1 max=2 "
                     f"avg={warmup_values[2]} std=1")
        warmup_first, warmup_mean = warmup_values[0], warmup_values[2]
    lines += ["", ("Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding "
                   "150 seconds.")]
    runs_at = len(lines)
    lines += [runs_line, ""]
    if family == "apk":
        # The app's older wording: Warmup and Init, no "First inference"; the RSS figure runs on after it.
        rss = f"Overall max resident set size = {memory_values[0]} MB, total malloc-ed size = 0 MB" if memory else ""
        lines.append(f"Average inference timings in us: Warmup: {warmup_avg_us}, Init: {init_us}, "
                     f"Inference: {runs['avg']}{rss}")
        first_ms, warmup_mean_ms = ms(warmup_first), ms(warmup_avg_us)
        peak, init_memory = (float(memory_values[0]) if memory else None), None
    else:
        lines.append(f"Inference timings in us: Init: {init_us}, First inference: {first_us}, "
                     f"Warmup (avg): {warmup_avg_us}, Inference (avg): {runs['avg']}")
        first_ms, warmup_mean_ms = ms(first_us), ms(warmup_avg_us)
        peak, init_memory = None, None
        if memory and family == "litert":
            lines.append(f"Memory footprint delta from the start of the tool (MB): init={memory_values[0]} "
                         f"overall={memory_values[1]}")
            lines.append(f"Overall peak memory footprint (MB) via periodic monitoring: {memory_values[1]}")
            peak, init_memory = float(memory_values[1]), float(memory_values[0])
        elif memory:
            lines.append(f"Peak memory footprint (MB): init={memory_values[0]} overall={memory_values[1]}")
            peak, init_memory = float(memory_values[1]), float(memory_values[0])

    if family == "litert":  # every line through the LiteRT logger
        lines = [f"INFO: {line}" if line and not line.startswith("INFO: ") else line for line in lines]

    # A run cut short (killed, or a delegate that died) somewhere after initialization, before the timed runs.
    cut = draw(st.one_of(st.none(), st.integers(min_value=initialized_at - 1, max_value=runs_at)))
    if cut is not None:
        kept_warmup = cut > initialized_at
        lines = lines[:cut] + (["Killed"] if draw(st.booleans()) else [])
        expected.update(status="truncated", mean_ms=None, std_ms=None, min_ms=None, max_ms=None, count=None,
                        median_ms=None, p5_ms=None, p95_ms=None, peak_memory_mb=None, init_memory_mb=None,
                        first_ms=ms(warmup_first) if kept_warmup else None,
                        warmup_mean_ms=ms(warmup_mean) if kept_warmup else None)
    else:
        expected.update(
            status="ok", mean_ms=ms(runs["avg"]), std_ms=ms(runs["std"]), min_ms=ms(runs["min"]),
            max_ms=ms(runs["max"]), count=int(runs["count"]),
            median_ms=ms(runs["median"]) if "median" in runs else None,
            p5_ms=ms(runs["p5"]) if "p5" in runs else None, p95_ms=ms(runs["p95"]) if "p95" in runs else None,
            peak_memory_mb=peak, init_memory_mb=init_memory, first_ms=first_ms, warmup_mean_ms=warmup_mean_ms,
        )

    if family == "apk":  # the app prints only to logcat
        style, prefix = draw(logcat_prefixes(styles=("threadtime", "year", "level_tag", "brief_pid", "brief", "time")))
    else:  # a benchmark_model run's output, plain or saved through logcat too
        style, prefix = draw(logcat_prefixes())
    newline = draw(st.sampled_from(["\n", "\r\n", "\r\r\n"]))
    text = newline.join(prefix(i) + line for i, line in enumerate(lines))
    if draw(st.booleans()):
        text += newline
    expected["family"], expected["prefix"] = family, style
    return text, expected


FIGURES = ("init_ms", "first_ms", "warmup_mean_ms", "mean_ms", "std_ms", "min_ms", "max_ms", "median_ms", "p5_ms",
           "p95_ms", "peak_memory_mb", "init_memory_mb")


@SETTINGS
@given(benchmark_outputs())
def test_every_figure_written_is_read_back_and_nothing_else(case):
    text, expected = case
    r = parse_log(text).result
    assert r.status == expected["status"], (r.message, expected)
    assert (r.model, r.threads, r.delegate) == (expected["model"], expected["threads"], expected["delegate"])
    assert (r.delegated_ops, r.cpu_ops) == expected["placement"]
    assert r.count == expected["count"]
    for name in FIGURES:
        value = getattr(r, name)
        if expected[name] is None:
            assert value is None, (name, value)
        else:
            assert value == approx(expected[name], rel=1e-9), name


@SETTINGS
@given(benchmark_outputs())
def test_a_prefix_and_line_breaks_change_nothing(case):
    """The same output read plain and as written: identical results, whatever the prefix and line breaks."""
    text, _ = case
    plain = "\n".join(strip_log_prefix(line) for line in text.replace("\r", "\n").split("\n"))
    assert parse_log(plain).result == parse_log(text).result
