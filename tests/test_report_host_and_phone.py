"""`tflkit report RUN` puts host and phone latency of the same .tflite files side by side.

End to end through the CLI: `tflkit bench` on the host, `tflkit android bench` through the fake adb TEST DOUBLE
(whose "phone" runs the real LiteRT interpreter and prints benchmark_model's TF 2.3+ text, which has a mean but no
median), then `tflkit report`; the numbers in the report must be the ones in bench/host.json and bench/android.json.
"""

from __future__ import annotations

import json
import shutil

import pytest
from doubles.fake_phone import fake_binary, fake_phone  # noqa: F401

from tflkit.cli import main
from tflkit.core.results import BenchResult, load_results, save_results

PHONE = "google_pixel_7_gs201"  # "Google Pixel 7 (GS201)", the fake phone's describe()


@pytest.fixture
def run(tiny_run, tmp_path):
    """A private copy of the shared tiny run, without any measurement other tests may have recorded in it."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("bench", "report.*", "eval.json", "checkpoints"))
    return copy


def _by_model(path):
    return {(r.model, r.delegate): r for r in load_results(path)}


def _report(run, capsys) -> tuple[dict, str]:
    capsys.readouterr()
    assert main(["report", str(run), "--no-measure"]) == 0
    markdown = capsys.readouterr().out
    return {r["recipe"]: r for r in json.loads((run / "report.json").read_text())}, markdown


def test_report_shows_host_and_phone_latency_side_by_side(run, fake_phone, fake_binary, capsys):
    models = sorted(str(p) for p in (run / "tflite").glob("*.tflite"))
    assert len(models) == 4
    assert main(["bench", *models, "--runs", "5", "--warmup", "1"]) == 0
    fake_phone.add("FAKE01")
    assert main(["android", "bench", *models, "--threads", "1", "--runs", "5", "--cooldown", "0",
                 "--binary", str(fake_binary)]) == 0
    host = _by_model(run / "bench" / "host.json")  # where `tflkit bench` records a model of a run
    phone = _by_model(run / "bench" / "android.json")  # the default --out of a model in RUN/tflite/
    rows, markdown = _report(run, capsys)

    assert set(rows) == {"fp32", "fp16", "dynamic_wi8_afp32", "static_wi8_ai8"}
    for recipe, row in rows.items():
        h, p = host[(row["file"], "xnnpack")], phone[(row["file"], "cpu")]
        assert row["status"] == "ok" and row["message"] == ""
        assert row["host_median_ms_t1"] == h.median_ms > 0 and row["host_p95_ms_t1"] == h.p95_ms
        # benchmark_model 2.3+ prints no median: the phone's column is its mean, named so
        assert p.median_ms is None and p.mean_ms > 0
        assert row[f"{PHONE}_cpu_mean_ms_t1"] == p.mean_ms
        assert f"{PHONE}_cpu_median_ms_t1" not in row
        line = next(line for line in markdown.splitlines() if line.startswith(f"| {recipe} | ok |"))
        assert f"| {h.median_ms:.3f} |" in line and f"| {p.mean_ms:.3f} |" in line
    assert rows["fp32"]["host_speedup_t1"] == 1.0 and rows["fp32"][f"{PHONE}_cpu_speedup_t1"] == 1.0
    int8 = rows["static_wi8_ai8"]
    assert int8[f"{PHONE}_cpu_speedup_t1"] == pytest.approx(
        phone[(rows["fp32"]["file"], "cpu")].mean_ms / phone[(int8["file"], "cpu")].mean_ms)
    header = markdown.splitlines()[2]
    assert "| host_median_ms_t1 |" in header and f"| {PHONE}_cpu_mean_ms_t1 |" in header
    csv_header = (run / "report.csv").read_text().splitlines()[0].split(",")
    assert {"host_median_ms_t1", f"{PHONE}_cpu_mean_ms_t1"} <= set(csv_header)


def test_two_delegates_are_two_columns_and_a_failed_phone_run_keeps_the_row(run, fake_phone, fake_binary, capsys):
    fp32, int8 = (str(next((run / "tflite").glob(f"*.{r}.tflite"))) for r in ("fp32", "static_wi8_ai8"))
    assert main(["bench", fp32, int8, "--runs", "3", "--warmup", "1"]) == 0
    fake_phone.add("FAKE01")
    android = ["android", "bench", "--threads", "1", "--runs", "3", "--cooldown", "0", "--binary", str(fake_binary)]
    assert main([*android, fp32, int8, "--delegate", "cpu", "xnnpack"]) == 0
    phone = _by_model(run / "bench" / "android.json")
    rows, _ = _report(run, capsys)
    for row in (rows["fp32"], rows["static_wi8_ai8"]):  # before: one column, the last delegate's number won
        assert row[f"{PHONE}_cpu_mean_ms_t1"] == phone[(row["file"], "cpu")].mean_ms
        assert row[f"{PHONE}_xnnpack_mean_ms_t1"] == phone[(row["file"], "xnnpack")].mean_ms

    fake_phone.fault("delegate_fail", delegate="xnnpack")
    assert main([*android, fp32, "--delegate", "xnnpack"]) == 1  # replaces the fp32 xnnpack row by a failed one
    rows, _ = _report(run, capsys)
    fp32_row = rows["fp32"]
    # before: the phone's failed run turned fp32's status into delegate_failed, and with no ok fp32 row every
    # ratio of the report (size, speed-up, top-1 drop) was gone
    assert fp32_row["status"] == "ok" and fp32_row["message"].startswith(f"{PHONE}_xnnpack t1: delegate_failed")
    assert f"{PHONE}_xnnpack_mean_ms_t1" not in fp32_row
    assert rows["static_wi8_ai8"]["size_ratio"] < 1 and rows["static_wi8_ai8"][f"{PHONE}_cpu_speedup_t1"] > 0


def test_columns_from_saved_results_median_first_and_host_delegate(run, capsys):
    name = next((run / "tflite").glob("*.fp32.tflite")).name
    common = dict(model=name, threads=2, count=10, mean_ms=2.0)
    save_results([BenchResult(target="host", runtime="ai_edge_litert", delegate="xnnpack", median_ms=1.0,
                              p95_ms=1.5, **common),
                  BenchResult(target="host", runtime="ai_edge_litert", delegate="cpu", median_ms=3.0, **common)],
                 run / "bench" / "host.json")
    # a LiteRT benchmark_model that prints percentiles: its median is used, not its mean
    save_results([BenchResult(target="android:R5CT", runtime="benchmark_model", device="Samsung SM-S911B (kalama)",
                              delegate="gpu", median_ms=0.75, p95_ms=0.9, **common)],
                 run / "bench" / "android.json")
    row = _report(run, capsys)[0]["fp32"]
    assert (row["host_median_ms_t2"], row["host_p95_ms_t2"], row["host_cpu_median_ms_t2"]) == (1.0, 1.5, 3.0)
    assert (row["samsung_sm_s911b_kalama_gpu_median_ms_t2"], row["samsung_sm_s911b_kalama_gpu_p95_ms_t2"]) == (
        0.75, 0.9)
    assert "samsung_sm_s911b_kalama_gpu_mean_ms_t2" not in row and "host_cpu_p95_ms_t2" not in row
