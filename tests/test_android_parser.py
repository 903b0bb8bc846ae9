"""benchmark_model output, every family, parsed into BenchResult.

Real outputs are read from ../shared/fixtures/benchmark_model (never copied here); the expected numbers below were
written by hand from reading each file. Families without a shared fixture use short samples written here in the
same format.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from android_bench.parser import parse_log, strip_log_prefix

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "benchmark_model"

approx = pytest.approx

# file -> (mean, std, min, max, count, init, first, warmup_mean, init_mem, peak_mem), ms and MB, read by hand.
TIMED_FIXTURES = {
    "lp6m_mi11_nightly_01.txt": (220.0, 6.795, 206.675, 231.957, 50, 1.430, 247.583, 222.136, 5.66016, 140.508),
    "lp6m_mi11_nightly_02.txt": (167.531, 1.937, 163.977, 174.521, 50, 458.204, 200.430, 183.094, 8.29688, 62.3906),
    "lp6m_mi11_nightly_03.txt": (99.6462, 1.369, 96.919, 103.964, 50, 449.051, 128.300, 113.531, 8.23828, 62.3242),
    "lp6m_mi11_nightly_05.txt": (159.413, 1.311, 157.298, 165.731, 50, 1.829, 232.333, 184.951, 5.35938, 43.9961),
    "lp6m_mi11_tf240_01.txt": (249.684, 1.442, 247.067, 254.474, 50, 16.242, 360.262, 304.586, 4.92969, 138.809),
    "lp6m_mi11_tf240_02.txt": (156.669, 2.352, 149.738, 161.935, 50, 404.292, 188.086, 175.313, 6.80469, 61.0078),
    "lp6m_mi11_tf240_03.txt": (92.5712, 1.638, 89.745, 96.719, 50, 365.972, 120.877, 108.605, 6.90625, 61.0547),
    "lp6m_mi11_tf240_05.txt": (95.7883, 1.284, 93.066, 99.490, 50, 1.779, 152.949, 110.690, 5.15625, 36.9883),
    "nobuo_qemuriscv64_01.txt": (2950.34, 109.798, 2727.568, 3189.954, 50, 17.187, 3512.391, 3512.39, 4.21094, 46.0859),
}
# file -> (model, first line of the cause)
DELEGATE_FAILURES = {
    "lp6m_mi11_nightly_06.txt": ("yolov5s_tflite_int8.tflite", "ANEURALNETWORKS_BAD_DATA at line 1068"),
    "lp6m_mi11_nightly_07.txt": ("yolov5s_tflite_int8.tflite", "ANEURALNETWORKS_BAD_DATA at line 1068"),
    "lp6m_mi11_tf240_06.txt": ("yolov5s_int8_640.tflite", "ANEURALNETWORKS_OP_FAILED at line 3779"),
    "lp6m_mi11_tf240_07.txt": ("yolov5s_int8_640.tflite", "ANEURALNETWORKS_BAD_DATA at line 1068"),
}
# file -> summary-by-node-type rows (node_type, count, avg_ms, percent) of the timed runs, and the per-node count.
PROFILE_FIXTURES = {
    "lp6m_mi11_nightly_04.txt": (
        [
            ("TfLiteNnapiDelegate", 3, 152.261, 92.504),
            ("STRIDED_SLICE", 6, 8.338, 5.066),
            ("TRANSPOSE", 3, 3.148, 1.913),
            ("RESIZE_NEAREST_NEIGHBOR", 2, 0.853, 0.518),
        ],
        14,
    ),
    "lp6m_mi11_tf240_04.txt": (
        [
            ("TfLiteNnapiDelegate", 3, 149.483, 94.187),
            ("STRIDED_SLICE", 6, 8.347, 5.259),
            ("RESIZE_NEAREST_NEIGHBOR", 2, 0.879, 0.554),
        ],
        11,
    ),
    "nobuo_qemuriscv64_01.txt": (
        [
            ("CONV_2D", 15, 2651.853, 89.897),
            ("DEPTHWISE_CONV_2D", 13, 296.919, 10.065),
            ("AVERAGE_POOL_2D", 1, 0.869, 0.029),
            ("SOFTMAX", 1, 0.232, 0.008),
            ("SQUEEZE", 1, 0.016, 0.001),
        ],
        31,
    ),
}


@pytest.fixture
def read_fixture():
    if not FIXTURES.is_dir():
        pytest.skip(f"shared benchmark_model fixtures not present at {FIXTURES}")
    return lambda name: (FIXTURES / name).read_text()


def test_every_shared_fixture_has_hand_written_expectations(read_fixture):
    covered = set(TIMED_FIXTURES) | set(DELEGATE_FAILURES) | set(PROFILE_FIXTURES)
    assert {p.name for p in FIXTURES.glob("*.txt")} == covered


@pytest.mark.parametrize("name", sorted(TIMED_FIXTURES))
def test_timed_fixture(read_fixture, name):
    mean, std, lo, hi, count, init, first, warmup, init_mem, peak_mem = TIMED_FIXTURES[name]
    parsed = parse_log(read_fixture(name), target="android:X")
    r = parsed.result
    assert (r.status, r.message, r.target, r.runtime) == ("ok", "", "android:X", "benchmark_model")
    assert parsed.family == "tf2.3"
    assert (r.mean_ms, r.std_ms, r.min_ms, r.max_ms) == (approx(mean), approx(std), approx(lo), approx(hi))
    assert r.count == count
    assert (r.init_ms, r.first_ms, r.warmup_mean_ms) == (approx(init), approx(first), approx(warmup))
    assert (r.init_memory_mb, r.peak_memory_mb) == (approx(init_mem), approx(peak_mem))
    # These tools print a mean and a spread only: no median may appear.
    assert (r.median_ms, r.p5_ms, r.p95_ms) == (None, None, None)


def test_full_run_with_scientific_notation_and_parameter_echo(read_fixture):
    parsed = parse_log(read_fixture("nobuo_qemuriscv64_01.txt"))
    r = parsed.result
    assert r.model == "mobilenet_v1_1.0_224.tflite"
    assert r.threads == 4 and r.delegate == "cpu"
    assert parsed.params["Enable op profiling"] == "1"
    assert parsed.extras["model_size_mb"] == approx(16.9008)
    # avg=2.95034e+06 us; the profiler's own "Timings (microseconds): ... avg=2.9499e+06" is not the run timing.
    assert r.mean_ms == approx(2950.34)


@pytest.mark.parametrize("name", sorted(DELEGATE_FAILURES))
def test_delegate_failure_fixture(read_fixture, name):
    model, cause = DELEGATE_FAILURES[name]
    r = parse_log(read_fixture(name)).result
    assert r.status == "delegate_failed"
    assert r.message.startswith("Failed to apply NNAPI delegate: NN API returned error")
    assert cause in r.message and "\n" not in r.message
    assert (r.model, r.threads, r.delegate) == (model, 4, "nnapi")
    assert r.mean_ms is None and r.median_ms is None


@pytest.mark.parametrize("name", sorted(PROFILE_FIXTURES))
def test_op_profile_fixture(read_fixture, name):
    summary, node_count = PROFILE_FIXTURES[name]
    parsed = parse_log(read_fixture(name))
    rows = [(row["node_type"], row["count"], row["avg_ms"], row["percent"]) for row in parsed.result.op_profile]
    assert rows == [(t, c, approx(ms), approx(pct)) for t, c, ms, pct in summary]
    assert len(parsed.op_nodes) == node_count
    # Initialization tables (ModifyGraphWithDelegate, AllocateTensors) are not mixed into the timed runs.
    assert all(row["node_type"] not in ("AllocateTensors", "ModifyGraphWithDelegate") for row in parsed.op_nodes)


def test_op_profile_per_node_rows(read_fixture):
    nodes = parse_log(read_fixture("lp6m_mi11_nightly_04.txt")).op_nodes
    assert nodes[0] == {
        "node_type": "STRIDED_SLICE",
        "start_ms": approx(0.019),
        "first_ms": approx(2.086),
        "avg_ms": approx(2.086),
        "percent": approx(1.267),
        "cdf_percent": approx(1.267),
        "mem_kb": approx(0.0),
        "times_called": 1,
        "name": "[model/tf.strided_slice/StridedSlice]:0",
    }
    assert nodes[6]["node_type"] == "TfLiteNnapiDelegate" and nodes[6]["avg_ms"] == approx(83.750)
    assert nodes[6]["name"].endswith(":270")


def test_profile_only_snippet_reports_no_results_but_keeps_the_table(read_fixture):
    r = parse_log(read_fixture("lp6m_mi11_tf240_04.txt")).result
    assert r.status == "no_results" and "op profile" in r.message
    assert r.mean_ms is None and len(r.op_profile) == 3


# ---- families without a shared fixture: short samples in each format ----

TF1_SAMPLE = """\
STARTING!
Num runs: [50]
Num threads: [1]
Warmup runs: [1]
Graph: [/data/local/tmp/mobilenet_quant_v1_224.tflite]
Use nnapi : [0]
Loaded model /data/local/tmp/mobilenet_quant_v1_224.tflite
resolved reporter
Initialized session in 4.685ms
Running benchmark for 1 iterations
count=1 curr=150122

Running benchmark for 50 iterations
count=50 first=113447 curr=111950 min=110890 max=117120 avg=112610 std=1354

Average inference timings in us: Warmup: 150122, Init: 4685, no stats: 112610
"""


def test_tf1_family():
    parsed = parse_log(TF1_SAMPLE)
    r = parsed.result
    assert parsed.family == "tf1" and r.status == "ok"
    assert r.model == "mobilenet_quant_v1_224.tflite" and r.threads == 1 and r.delegate == "cpu"
    assert (r.mean_ms, r.std_ms, r.min_ms, r.max_ms, r.count) == (112.61, 1.354, 110.89, 117.12, 50)
    assert (r.init_ms, r.warmup_mean_ms, r.first_ms) == (4.685, 150.122, 150.122)
    assert r.median_ms is None and r.peak_memory_mb is None


def test_tf1_summary_line_alone():
    r = parse_log("Average inference timings in us: Warmup: 175118, Init: 5370, no stats: 154562\n").result
    assert (r.status, r.mean_ms, r.init_ms, r.warmup_mean_ms) == ("ok", 154.562, 5.37, 175.118)
    assert r.std_ms is None and r.count is None and r.median_ms is None


def test_tf20_family():
    sample = "count=50 first=79654 curr=79804 min=79420 max=81220 avg=79760.9 std=312\n\n" \
             "Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9\n"
    parsed = parse_log(sample)
    assert parsed.family == "tf2.0"
    r = parsed.result
    assert (r.mean_ms, r.std_ms, r.min_ms, r.max_ms) == (79.7609, 0.312, 79.42, 81.22)
    assert (r.init_ms, r.warmup_mean_ms) == (38.467, 83.235)


LOGCAT_APK_SAMPLE = """\
05-30 15:16:44.101  3380  3380 I tflite  : Num threads: [4]
05-30 15:16:44.101  3380  3380 I tflite  : Graph: [/data/local/tmp/mobilenet_v2.tflite]
05-30 15:16:44.101  3380  3380 I tflite  : Use gpu: [1]
05-30 15:16:44.102  3380  3380 I tflite  : Created TensorFlow Lite delegate for GPU.
05-30 15:16:44.350  3380  3380 E tflite  : Next operations are not supported by GPU delegate:
05-30 15:16:44.350  3380  3380 E tflite  : MEAN: Operation is not supported.
05-30 15:16:44.350  3380  3380 E tflite  : First 65 operations will run on the GPU, and the remaining 3 on the CPU.
05-30 15:16:44.857  3380  3380 I tflite  : count=50 first=6102 curr=5350 min=5201 max=6102 avg=5367.43 std=120
05-30 15:16:44.857  3380  3380 I tflite  : Average inference timings in us: Warmup: 6843, Init: 14350, \
Inference: 5367.43Overall max resident set size = 30.6797 MB, total malloc-ed size = 0 MB, \
in-use allocated/mmapped size = 9.36432 MB
"""


def test_logcat_prefixed_apk_output_with_resident_set_size():
    parsed = parse_log(LOGCAT_APK_SAMPLE)
    r = parsed.result
    assert r.status == "ok", r.message  # an "E tflite" line about unsupported ops is not a failure
    assert (r.model, r.threads, r.delegate) == ("mobilenet_v2.tflite", 4, "gpu")
    assert (r.mean_ms, r.init_ms, r.warmup_mean_ms, r.count) == (5.36743, 14.35, 6.843, 50)
    assert r.peak_memory_mb == 30.6797
    assert (r.delegated_ops, r.cpu_ops) == (65, 3)


def test_logcat_brief_prefix_failure():
    sample = "I/tflite: Use gpu: [1]\nE/tflite: ERROR: TfLiteGpuDelegate Init: MUL: Node is not supported\n" \
             "E/tflite: Failed to apply GPU delegate.\nE/tflite: Benchmarking failed.\n"
    r = parse_log(sample).result
    assert r.status == "delegate_failed" and r.delegate == "gpu"
    assert r.message == "Failed to apply GPU delegate: TfLiteGpuDelegate Init: MUL: Node is not supported"


def test_strip_log_prefix_keeps_a_profile_rows_leading_tab():
    line = "05-30 15:16:44.857  3380  3380 I tflite  : \t CONV_2D\t    1.0"
    assert strip_log_prefix(line) == "\t CONV_2D\t    1.0"
    assert strip_log_prefix("E/tflite  ( 3380): Benchmarking failed.") == "Benchmarking failed."
    assert strip_log_prefix("count=1 curr=5") == "count=1 curr=5"


LITERT_PERCENTILES_SAMPLE = """\
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/tflkit/net.tflite]
INFO: Use xnnpack: [1]
INFO: Replacing 62 out of 64 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 2 partitions for the whole graph.
INFO: Explicitly applied XNNPACK delegate, and the model graph will be partially executed by the delegate w/ 2 delegate kernels.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=12 first=52311 curr=40233 min=39870 max=52311 avg=41520.3 std=3410 p5=39870 median=40467 p95=52311

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=40201 curr=40012 min=39544 max=44120 avg=40380.1 std=702 p5=39602 median=40213 p95=41790

INFO: Inference timings in us: Init: 25112, First inference: 52311, Warmup (avg): 41520.3, Inference (avg): 40380.1
INFO: Memory footprint delta from the start of the tool (MB): init=6.5 overall=12.75
INFO: Overall peak memory footprint (MB) via periodic monitoring: 14.125
"""


def test_litert_percentiles_family():
    parsed = parse_log(LITERT_PERCENTILES_SAMPLE)
    r = parsed.result
    assert parsed.family == "litert_percentiles" and r.status == "ok"
    assert (r.model, r.threads, r.delegate) == ("net.tflite", 4, "xnnpack")
    assert (r.p5_ms, r.median_ms, r.p95_ms) == (39.602, 40.213, 41.79)  # the timed runs', not the warm-up's
    assert (r.mean_ms, r.std_ms, r.count) == (40.3801, 0.702, 50)
    assert (r.first_ms, r.warmup_mean_ms, r.init_ms) == (52.311, 41.5203, 25.112)
    assert (r.init_memory_mb, r.peak_memory_mb) == (6.5, 14.125)  # the periodic peak wins over the delta
    assert parsed.extras["overall_memory_mb"] == 12.75
    assert (r.delegated_ops, r.cpu_ops, parsed.delegate_kernels) == (62, 2, 2)


def test_all_same_samples():
    r = parse_log("count=5 curr=1200(all same)\nInference timings in us: Init: 1, First inference: 1300, "
                  "Warmup (avg): 1300, Inference (avg): 1200\n").result
    assert (r.mean_ms, r.min_ms, r.max_ms, r.std_ms, r.count) == (1.2, 1.2, 1.2, 0.0, 5)
    assert r.median_ms is None


COMPILED_MODEL_SAMPLE = """\
INFO: [litert/tools/benchmark_litert_model.cc:88] Loaded model /data/local/tmp/gemma_part.tflite
INFO: [litert/tools/benchmark_litert_model.h:72]
========== BENCHMARK RESULTS ==========
INFO: [litert/tools/benchmark_litert_model.h:73] Model initialization: 812.44 ms
INFO: [litert/tools/benchmark_litert_model.h:74] Warmup (first):       8120.51 ms
Warmup (avg):         8120.51 ms (1 runs)
Inference (avg):      7430.20 ms (10 runs)
Inference (min):      7391.02 ms
Inference (max):      7502.88 ms
Inference (std):      31.07
Throughput:           0.53 MB/s

Memory Usage:
Init footprint:       120.50 MB
Overall footprint:    410.25 MB
Peak memory:          455.00 MB
======================================
"""


def test_litert_compiled_model_block_is_already_in_ms():
    parsed = parse_log(COMPILED_MODEL_SAMPLE, model="gemma_part.tflite")
    r = parsed.result
    assert parsed.family == "litert_compiled_model" and r.status == "ok"
    assert (r.mean_ms, r.count, r.min_ms, r.max_ms, r.std_ms) == (7430.20, 10, 7391.02, 7502.88, 31.07)
    assert (r.init_ms, r.first_ms, r.warmup_mean_ms) == (812.44, 8120.51, 8120.51)
    assert (r.init_memory_mb, r.peak_memory_mb) == (120.5, 455.0)
    assert parsed.extras["throughput_mb_per_s"] == 0.53
    assert r.median_ms is None


def test_compiled_model_block_takes_the_median_its_count_line_printed():
    count_line = "INFO: count=10 first=7502880 curr=7411000 min=7391020 max=7502880 avg=7.4302e+06 std=31070 " \
                 "p5=7391020 median=7420500 p95=7502880\n"
    r = parse_log(count_line + COMPILED_MODEL_SAMPLE).result
    assert (r.mean_ms, r.p5_ms, r.median_ms, r.p95_ms) == (7430.20, 7391.02, 7420.5, 7502.88)


def test_gpu_split_in_newer_wording_and_completely_delegated():
    sample = "27 operations will run on the GPU, and the remaining 4 operations will run on the CPU.\n" \
             "count=3 first=10 curr=10 min=9 max=10 avg=9.6 std=0\n"
    r = parse_log(sample, delegate="gpu").result
    assert (r.delegated_ops, r.cpu_ops) == (27, 4)
    full = parse_log("Explicitly applied GPU delegate, and the model graph will be completely executed by the "
                     "delegate.\nINFO: Replacing 31 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 "
                     "partitions.\ncount=3 first=10 curr=10 min=9 max=10 avg=9.6 std=0\n").result
    assert (full.delegated_ops, full.cpu_ops) == (31, 0)


def test_the_asked_for_delegate_is_reported_when_xnnpack_also_applied():
    sample = "Replacing 40 out of 40 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions.\n" \
             "Replacing 30 out of 40 node(s) with delegate (TfLiteNnapiDelegate) node, yielding 3 partitions.\n" \
             "count=3 first=10 curr=10 min=9 max=10 avg=9.6 std=0\n"
    r = parse_log(sample, delegate="nnapi").result
    assert (r.delegated_ops, r.cpu_ops) == (30, 10)


@pytest.mark.parametrize(
    "output, status, fragment",
    [
        ("/system/bin/sh: /data/local/tmp/tflkit/benchmark_model: not executable: 64-bit ELF file\n",
         "wrong_abi", "wrong ABI"),
        (('CANNOT LINK EXECUTABLE "/data/local/tmp/bm": "/data/local/tmp/bm" is for EM_X86_64 (62) instead of '
          "EM_AARCH64 (183)\n"), "wrong_abi", "EM_X86_64"),
        ("bash: ./benchmark_model: cannot execute binary file: Exec format error\n", "wrong_abi", "Exec format"),
        ("/system/bin/sh: /data/local/tmp/tflkit/benchmark_model: can't execute: Permission denied\n",
         "not_executable", "not executable"),
        ("/system/bin/sh: /data/local/tmp/tflkit/benchmark_model: inaccessible or not found\n",
         "not_found", "tflkit android setup"),
        ("/system/bin/sh: /data/local/tmp/bm: not found\n", "not_found", "/data/local/tmp/bm"),
        ('CANNOT LINK EXECUTABLE "/data/local/tmp/bm": library "libc++_shared.so" not found\n',
         "link_failed", "libc++_shared.so"),
        ("/system/bin/sh: can't create /data/local/tmp/out.txt: Permission denied\n",
         "permission_denied", "can't create"),
        (("ERROR: Could not open '/data/local/tmp/missing.tflite'.\nERROR: Failed to mmap model "
          "/data/local/tmp/missing.tflite\nBenchmarking failed.\n"), "model_load_failed", "missing.tflite"),
        ("STARTING!\nERROR: Failed to allocate tensors!\nBenchmarking failed.\n",
         "benchmark_failed", "Failed to allocate tensors!"),
        ("Segmentation fault\n", "crashed", "Segmentation fault"),
        ("STARTING!\nLoaded model /data/local/tmp/x.tflite\n", "truncated", "Loaded model"),
        ("", "no_results", "empty output"),
    ],
)
def test_failures_become_a_status_and_one_line(output, status, fragment):
    r = parse_log(output).result
    assert r.status == status
    assert fragment in r.message and "\n" not in r.message
    assert r.mean_ms is None


def test_a_permission_warning_does_not_void_printed_timings():
    sample = "WARNING: open /sys/kernel/debug/x: Permission denied\n" \
             "count=3 first=10 curr=10 min=9 max=10 avg=9.6 std=0\n"
    assert parse_log(sample).result.status == "ok"


def test_thread_count_as_printed():
    assert parse_log("Num threads: [-1]\ncount=1 curr=5\n").result.threads == -1
    assert parse_log("Num threads: [-1]\n#threads used for CPU inference: [8]\n").result.threads == 8


def test_arguments_win_over_the_parameter_echo():
    r = parse_log(TF1_SAMPLE, model="m.tflite", threads=8, delegate="nnapi", device="Pixel 7").result
    assert (r.model, r.threads, r.delegate, r.device) == ("m.tflite", 8, "nnapi", "Pixel 7")


# ---- issue 15, part 6: logs read as they are (each test below failed before and passes now) ----

# file -> (threads, delegate) as each log states them, None where it does not: the short lp6m snippets echo no
# parameters; the op-profile snippets show NNAPI delegate kernels taking 92-94% of the time; the riscv64 run echoes
# its threads and its profile lists only built-in kernels.
STATED = {name: (None, None) for name in TIMED_FIXTURES}
STATED.update({name: (4, "nnapi") for name in DELEGATE_FAILURES})
STATED.update({"lp6m_mi11_nightly_04.txt": (None, "nnapi"), "lp6m_mi11_tf240_04.txt": (None, "nnapi"),
               "nobuo_qemuriscv64_01.txt": (4, "cpu")})


def test_every_shared_fixture_has_stated_threads_and_delegate(read_fixture):
    assert {p.name for p in FIXTURES.glob("*.txt")} == set(STATED)


@pytest.mark.parametrize("name", sorted(STATED))
def test_threads_and_delegate_only_as_the_log_states_them(read_fixture, name):
    r = parse_log(read_fixture(name)).result
    assert (r.threads, r.delegate) == STATED[name]


TF2_RUN = """\
STARTING!
Log parameter values verbosely: [0]
Num threads: [4]
Graph: [/data/local/tmp/tflkit/net.tflite]
#threads used for CPU inference: [4]
Use gpu: [1]
Loaded model /data/local/tmp/tflkit/net.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite delegate for GPU.
GPU delegate created.
INFO: Replacing 65 out of 68 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 2 partitions.
Initialized session in 245.1ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=3 first=9120 curr=6010 min=6010 max=9120 avg=7040 std=1466

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=5990 curr=5350 min=5201 max=6102 avg=5367.43 std=120 p5=5210 median=5344 p95=5990

Inference timings in us: Init: 245100, First inference: 9120, Warmup (avg): 7040, Inference (avg): 5367.43
Memory footprint delta from the start of the tool (MB): init=30.5 overall=41.25
"""
PREFIXES = {
    "threadtime": "11-30 12:00:00.123  1234  1234 I tflite  : ",
    "level_tag": "I tflite  : ",
    "brief_pid": "I/tflite ( 1234): ",
    "brief": "I/tflite: ",
}


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("style", sorted(PREFIXES))
def test_every_logcat_prefix_with_the_statistics_lines(style, newline):
    text = newline.join(PREFIXES[style] + line for line in TF2_RUN.splitlines()) + newline
    parsed = parse_log(text)
    r = parsed.result
    assert (r.status, parsed.family) == ("ok", "litert_percentiles")
    assert (r.model, r.threads, r.delegate, r.delegated_ops, r.cpu_ops) == ("net.tflite", 4, "gpu", 65, 3)
    assert (r.count, r.mean_ms, r.std_ms, r.min_ms, r.max_ms) == (50, 5.36743, 0.12, 5.201, 6.102)
    assert (r.p5_ms, r.median_ms, r.p95_ms) == (5.21, 5.344, 5.99)
    assert (r.init_ms, r.first_ms, r.warmup_mean_ms) == (245.1, 9.12, 7.04)
    assert (r.init_memory_mb, r.peak_memory_mb) == (30.5, 41.25)
    assert parse_log(TF2_RUN).result == r  # the prefix and line breaks change nothing


def _cut_after(marker: str, text: str = TF2_RUN) -> str:
    return text[: text.index(marker)] + text[text.index(marker):].split("\n", 1)[0] + "\n"


def test_output_cut_after_initialization_keeps_init_and_delegate_placement():
    r = parse_log(_cut_after("Initialized session in")).result
    assert r.status == "truncated" and "Initialized session in 245.1ms." in r.message
    assert (r.init_ms, r.delegate, r.delegated_ops, r.cpu_ops, r.threads) == (245.1, "gpu", 65, 3, 4)
    assert (r.mean_ms, r.median_ms, r.count, r.first_ms, r.peak_memory_mb) == (None, None, None, None, None)


def test_a_run_killed_during_its_timed_runs_does_not_pass_the_warmup_off_as_the_runs():
    text = _cut_after("Running benchmark for at least 50") + "Killed\n"
    r = parse_log(text).result
    assert r.status == "truncated" and r.message.endswith("last line: Killed")
    assert (r.first_ms, r.warmup_mean_ms, r.init_ms) == (9.12, 7.04, 245.1)  # the warm-up's count line
    assert (r.mean_ms, r.min_ms, r.count) == (None, None, None)


def test_a_delegate_that_fails_after_initialization_is_a_truncated_run():
    text = _cut_after("Running benchmark for at least 1 ") + \
        "ERROR: TfLiteGpuDelegate Invoke: GpuDelegate must run on the same thread where it was initialized.\n" \
        "ERROR: Node number 68 (TfLiteGpuDelegateV2) failed to invoke.\n"
    r = parse_log(text).result
    assert r.status == "truncated" and "failed to invoke" in r.message
    assert (r.init_ms, r.delegate, r.delegated_ops, r.cpu_ops) == (245.1, "gpu", 65, 3)


def test_op_profile_names_the_delegate_when_nothing_else_does():
    profile = """\
Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t   TfLiteXNNPackDelegate\t        2\t     4.210\t    91.000%\t    91.000%\t     0.000\t        2
\t             HARD_SWISH\t        1\t     0.416\t     9.000%\t   100.000%\t     0.000\t        1
"""
    r = parse_log("count=50 first=5 curr=5 min=4 max=6 avg=4.6 std=0.5\n" + profile).result
    assert (r.delegate, r.threads) == ("xnnpack", None)


@pytest.mark.parametrize(
    "line, threads",
    [
        ("#threads used for CPU inference: 4", 4),
        ("I tflite  : Num threads: [6]", 6),
        ("# adb -s X shell /data/local/tmp/tflkit/benchmark_model --graph=m.tflite --num_threads=2", 2),
        ("Number of threads: 3", 3),
    ],
)
def test_threads_from_any_line_that_states_them(line, threads):
    assert parse_log(f"{line}\ncount=3 first=10 curr=10 min=9 max=10 avg=9.6 std=0\n").result.threads == threads


@pytest.mark.parametrize(
    "lines, delegate",
    [
        (["INFO: Created TensorFlow Lite XNNPACK delegate for CPU."], "xnnpack"),
        (["Use NNAPI: [1]"], "nnapi"),
        (["Use xnnpack: [0]"], "cpu"),
        (["Replacing 12 out of 12 node(s) with delegate (TfLiteHexagonDelegate) node, yielding 1 partitions."],
         "hexagon"),
        # XNNPACK applies by default beside the delegate asked for: the one asked for is the run's delegate.
        (["INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "INFO: Created TensorFlow Lite delegate for GPU."],
         "gpu"),
        (["# adb shell benchmark_model --graph=m.tflite --num_threads=1 --use_nnapi=true"], "nnapi"),
        (["Loaded model /data/local/tmp/m.tflite"], None),
    ],
)
def test_delegate_from_what_the_log_shows(lines, delegate):
    text = "\n".join(lines) + "\ncount=3 first=10 curr=10 min=9 max=10 avg=9.6 std=0\n"
    assert parse_log(text).result.delegate == delegate


def test_the_model_from_the_loaded_model_line_without_a_graph_echo():
    assert parse_log("Loaded model /sdcard/Download/my model.tflite\n").result.model == "my model.tflite"


def test_read_log_text_refuses_a_binary_file_with_one_line(tmp_path):
    from android_bench.parser import read_log_text
    from tflkit.core.errors import TflkitError

    binary = tmp_path / "model.tflite"
    binary.write_bytes(b"\x1c\x00\x00\x00TFL3\x00\x00\x12\x00\x1c\x00\x04\x00\x08\x00" * 64)
    with pytest.raises(TflkitError, match=r"not a text file") as info:
        read_log_text(binary)
    assert "\n" not in str(info.value) and str(binary) in str(info.value)
    (tmp_path / "ps.log").write_bytes("I tflite  : Num threads: [4]\r\n".encode("utf-16"))  # PowerShell's `>`
    assert read_log_text(tmp_path / "ps.log") == "I tflite  : Num threads: [4]\r\n"
    (tmp_path / "bom.log").write_bytes(b"\xef\xbb\xbfNum threads: [4]\n")
    assert read_log_text(tmp_path / "bom.log") == "Num threads: [4]\n"


# ---- `tflkit android parse`: the file column, null where the log is silent, a binary file is one line ----


def _write_logs(tmp_path):
    (tmp_path / "a.log").write_text(TF2_RUN)
    (tmp_path / "b.log").write_text((FIXTURES / "lp6m_mi11_tf240_03.txt").read_text() if FIXTURES.is_dir()
                                    else "count=50 first=1 curr=1 min=1 max=1 avg=92571.2 std=1638\n")
    return [str(tmp_path / "a.log"), str(tmp_path / "b.log")]


def test_parse_several_logs_has_a_file_column_and_says_what_is_not_in_the_log(tmp_path, capsys):
    from android_bench.__main__ import main

    logs = _write_logs(tmp_path)
    assert main(["android", "parse", *logs]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["file", "model"]
    assert out[1].startswith(logs[0]) and " gpu " in out[1]
    assert out[2].startswith(logs[1]) and out[2].count("not in the log") == 2  # its threads and delegate
    assert out[3] == "(-: not in the log)"
    assert main(["android", "parse", logs[0]]) == 0
    assert capsys.readouterr().out.split()[0] == "model"  # one log: no file column


def test_parse_json_has_null_where_the_log_is_silent(tmp_path, capsys):
    from android_bench.__main__ import main

    logs = _write_logs(tmp_path)
    binary = tmp_path / "net.tflite"
    binary.write_bytes(bytes(range(256)) * 8)
    assert main(["android", "parse", "--json", *logs]) == 0
    envelope = json.loads(capsys.readouterr().out)
    assert (envelope["ok"], envelope["errors"]) == (True, [])
    rows = envelope["results"]
    assert [(row["raw_log"], row["threads"], row["delegate"]) for row in rows] == [
        (logs[0], 4, "gpu"), (logs[1], None, None)]
    assert rows[1]["median_ms"] is None and rows[1]["model"] == ""
    assert main(["android", "parse", "--json", str(binary), logs[0]]) == 1
    envelope = json.loads(capsys.readouterr().out)
    assert [row["raw_log"] for row in envelope["results"]] == [logs[0]] and envelope["ok"] is False
    assert envelope["errors"] == [
        {"item": str(binary), "message": f"{binary}: not a text file (binary data), not a benchmark_model log"}]


def test_parse_a_binary_file_is_one_line_and_the_rest_is_printed(tmp_path, capsys):
    from android_bench.__main__ import main

    logs = _write_logs(tmp_path)
    binary = tmp_path / "net.tflite"
    binary.write_bytes(bytes(range(256)) * 8)
    assert main(["android", "parse", logs[0], str(binary), logs[1]]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"tflkit: error: {binary}: not a text file (binary data), not a benchmark_model log\n"
    rows = [line for line in captured.out.splitlines() if line.startswith(str(tmp_path))]
    assert [row.split()[0] for row in rows] == logs
    assert "\x00" not in captured.out and "\ufffd" not in captured.out
    assert main(["android", "parse", str(binary)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1


def test_parse_a_missing_log_among_several_is_a_usage_error_before_any_output(tmp_path, capsys):
    from android_bench.__main__ import main

    logs = _write_logs(tmp_path)
    assert main(["android", "parse", logs[0], str(tmp_path / "nope.log")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == f"tflkit: error: log file not found: {tmp_path / 'nope.log'}\n"
