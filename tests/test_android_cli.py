"""`tflkit android ...` through `python -m android_bench` (register() without the main CLI), on the fake phone."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys

import pytest
from doubles.fake_phone import fake_binary, fake_phone, tiny_model  # noqa: F401

import android_bench.install
from android_bench.__main__ import main
from android_bench.cli import default_out_path
from tflkit.core.results import load_results

SAMPLE_LOG = """\
INFO: Num threads: [2]
INFO: Graph: [/data/local/tmp/tflkit/net.tflite]
INFO: count=20 first=1200 curr=1100 min=1000 max=1300 avg=1150 std=80 p5=1010 median=1140 p95=1290
INFO: Inference timings in us: Init: 900, First inference: 1500, Warmup (avg): 1500, Inference (avg): 1150
"""


def test_importing_the_android_side_pulls_no_heavy_module():
    code = (
        "import android_bench, android_bench.cli, android_bench.runner, android_bench.install, android_bench.adb\n"
        "import sys\n"
        "heavy = {'tensorflow', 'ai_edge_litert', 'numpy', 'keras'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_help_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "android_bench", "android", "bench", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--delegate" in out.stdout and "--taskset MASK" in out.stdout


def test_parse_table_and_json(tmp_path, capsys):
    log = tmp_path / "run.log"
    log.write_text(SAMPLE_LOG)
    assert main(["android", "parse", str(log)]) == 0
    table = capsys.readouterr().out
    assert "net.tflite" in table and "1.140" in table and "1.150" in table
    assert main(["android", "parse", str(log), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["results"]  # tflkit's JSON envelope
    assert (row["model"], row["threads"], row["median_ms"], row["mean_ms"], row["count"]) == (
        "net.tflite", 2, 1.14, 1.15, 20)
    assert row["raw_log"] == str(log)


def test_parse_of_a_log_without_results_exits_1(tmp_path, capsys):
    log = tmp_path / "garbage.log"
    log.write_text("adb: device offline\n")
    assert main(["android", "parse", str(log)]) == 1
    assert "no_results" in capsys.readouterr().out


def test_parse_missing_log_is_a_usage_error(tmp_path, capsys):
    assert main(["android", "parse", str(tmp_path / "nope.log")]) == 2
    assert capsys.readouterr().err == f"tflkit: error: log file not found: {tmp_path / 'nope.log'}\n"


def test_devices_table_and_json(fake_phone, capsys):
    fake_phone.add("FAKE01")
    fake_phone.add("FAKE02", state="unauthorized")
    assert main(["android", "devices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("FAKE01") and "Google Pixel 7 (GS201)" in lines[0]
    assert "2x2.85+2x2.35+4x1.80 GHz" in lines[0]
    assert lines[1].split() == ["FAKE02", "unauthorized"]
    assert main(["android", "devices", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]  # tflkit's JSON envelope
    assert rows[0]["abis"] == ["arm64-v8a", "armeabi-v7a", "armeabi"] and rows[0]["sdk"] == 34
    assert rows[1] == {"serial": "FAKE02", "state": "unauthorized"}


def test_setup_then_reuse(fake_phone, fake_binary, capsys, monkeypatch):
    fake_phone.add("FAKE01")
    assert main(["android", "setup", "--binary", str(fake_binary)]) == 0
    assert "FAKE01: benchmark_model ready at /data/local/tmp/tflkit/benchmark_model (pushed;" in capsys.readouterr().out
    assert main(["android", "setup", "--serial", "FAKE01"]) == 0
    assert "(already there; from already on the device)" in capsys.readouterr().out


def test_setup_offline_names_binary(fake_phone, tmp_path, capsys, monkeypatch):
    fake_phone.add("FAKE01")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Never the real release storage from a test: a closed local port stands for "no network".
    closed = f"http://127.0.0.1:{port}/android_{{abi}}_benchmark_model"
    monkeypatch.setattr(android_bench.install, "NIGHTLY_URL", closed)
    assert main(["android", "setup"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tflkit: error: could not download benchmark_model (")
    assert err.endswith("offline? pass --binary PATH to a benchmark_model built for android_aarch64\n")


def test_bench_saves_beside_the_run_and_merges(fake_phone, tiny_model, fake_binary, tmp_path, capsys):
    fake_phone.add("FAKE01")
    model = tmp_path / "run" / "tflite" / tiny_model.name
    model.parent.mkdir(parents=True)
    shutil.copy(tiny_model, model)
    args = ["android", "bench", str(model), "--runs", "3", "--cooldown", "0", "--binary", str(fake_binary)]
    assert main([*args, "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert "tiny_cnn16.tflite  android:FAKE01  cpu" in captured.out
    out = tmp_path / "run" / "bench" / "android.json"
    assert f"saved 1 results to {out}" in captured.err
    assert main([*args, "--threads", "2"]) == 0
    rows = load_results(out)
    assert [(r.threads, r.status, r.count) for r in rows] == [(1, "ok", 3), (2, "ok", 3)]
    assert all((tmp_path / "run" / "bench" / "android_logs" / "FAKE01").glob("*.log"))


def test_bench_with_no_phone_is_one_line(fake_phone, tiny_model, capsys):
    assert main(["android", "bench", str(tiny_model)]) == 1
    assert capsys.readouterr().err == "tflkit: error: no Android device attached (adb devices lists none)\n"


def test_default_out_path(tmp_path):
    assert default_out_path(tmp_path / "run" / "tflite" / "m.tflite") == tmp_path / "run" / "bench" / "android.json"
    assert default_out_path(tmp_path / "models" / "m.tflite") == tmp_path / "models" / "bench" / "android.json"


@pytest.mark.parametrize("bad", [["--delegate", "tpu"], ["--threads", "x"]])
def test_argparse_rejects_bad_choices(bad, tiny_model):
    with pytest.raises(SystemExit) as excinfo:
        main(["android", "bench", str(tiny_model), *bad])
    assert excinfo.value.code == 2


def test_default_out_path_finds_the_run_of_a_relative_model(tmp_path, monkeypatch):
    # `tflkit android bench m.tflite` inside RUN/tflite used to write RUN/tflite/bench/android.json, where
    # `tflkit report RUN` never looks
    run = tmp_path / "run"
    (run / "tflite").mkdir(parents=True)
    (run / "config.yaml").write_text("model: x\n")
    monkeypatch.chdir(run / "tflite")
    assert default_out_path("m.tflite") == run / "bench" / "android.json"
    monkeypatch.chdir(run)
    assert default_out_path("tflite/m.tflite") == run / "bench" / "android.json"
