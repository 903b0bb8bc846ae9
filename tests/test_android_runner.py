"""android_bench.runner.bench against the fake phone (TEST DOUBLE), which runs the real host LiteRT interpreter."""

from __future__ import annotations

import pytest
from doubles.fake_phone import EM_X86_64, fake_binary, fake_phone, tiny_model, write_fake_elf  # noqa: F401

from android_bench.parser import parse_log
from android_bench.runner import bench, benchmark_command
from tflkit.core.errors import DeviceError, ModelFileError, UsageError

FAST = dict(runs=5, warmup=1, cooldown_s=0, timeout_s=60)


def _pushes(calls, name):
    return [c for c in calls if "push" in c and c[-1].endswith("/" + name)]


def test_bench_end_to_end_on_the_fake_phone(fake_phone, tiny_model, fake_binary, tmp_path):
    root = fake_phone.add("FAKE01")
    results = bench([tiny_model], threads=[1, 2], delegates=["cpu", "xnnpack"], logs_dir=tmp_path / "logs",
                    binary=fake_binary, **FAST)
    assert [(r.threads, r.delegate, r.status) for r in results] == [
        (1, "cpu", "ok"), (1, "xnnpack", "ok"), (2, "cpu", "ok"), (2, "xnnpack", "ok")
    ]
    for r in results:
        assert (r.model, r.target, r.runtime) == ("tiny_cnn16.tflite", "android:FAKE01", "benchmark_model")
        assert r.device == "Google Pixel 7 (GS201)"
        assert r.count == 5 and r.min_ms <= r.mean_ms <= r.max_ms and r.mean_ms > 0
        assert r.median_ms is None  # the 2.3+ format prints no median; none is invented
        assert r.init_ms is not None and r.peak_memory_mb is not None
        assert r.size_bytes == tiny_model.stat().st_size
        assert parse_log(open(r.raw_log).read()).result.mean_ms == r.mean_ms  # the saved log is the source
    commands = [c[-1] for c in fake_phone.calls() if "--graph=/data/local/tmp/tflkit/tiny_cnn16.tflite" in c[-1]]
    assert any("--num_threads=2" in c and "--use_xnnpack=false" in c and "--num_runs=5" in c for c in commands)
    assert all("--min_secs=0" in c and "--report_peak_memory_footprint=true" in c for c in commands)
    assert list((root / "data/local/tmp/tflkit").iterdir()) == []  # model and binary cleaned up


def test_a_model_already_on_the_phone_is_not_pushed_again(fake_phone, tiny_model, fake_binary):
    root = fake_phone.add("FAKE01")
    for _ in range(2):
        bench([tiny_model], threads=[1], keep=True, binary=fake_binary, **FAST)
    assert len(_pushes(fake_phone.calls(), "tiny_cnn16.tflite")) == 1
    assert len(_pushes(fake_phone.calls(), "benchmark_model")) == 1
    assert (root / "data/local/tmp/tflkit/tiny_cnn16.tflite").is_file()  # --keep leaves them


def test_gpu_placement_op_profile_and_taskset(fake_phone, tiny_model, fake_binary):
    fake_phone.add("FAKE01")
    (r,) = bench([tiny_model], threads=[4], delegates=["gpu"], op_profiling=True, taskset="0xF0",
                 binary=fake_binary, **FAST)
    assert r.status == "ok" and r.delegate == "gpu" and r.threads == 4
    assert r.delegated_ops >= 3 and r.cpu_ops == 0
    assert sum(row["count"] for row in r.op_profile) == r.delegated_ops
    run = next(c[-1] for c in fake_phone.calls() if "--graph=" in c[-1])
    assert run.startswith("echo __TFLKIT_PID=$$; exec taskset f0 /data/local/tmp/tflkit/benchmark_model")
    assert "--enable_op_profiling=true" in run and "--use_gpu=true" in run


def test_a_hanging_run_times_out_and_the_rest_go_on(fake_phone, tiny_model, fake_binary, tmp_path):
    fake_phone.add("FAKE01")
    fake_phone.fault("hang", delegate="gpu")
    results = bench([tiny_model], threads=[1], delegates=["gpu", "cpu"], logs_dir=tmp_path, binary=fake_binary,
                    **{**FAST, "timeout_s": 2.5})
    assert [(r.delegate, r.status) for r in results] == [("gpu", "timeout"), ("cpu", "ok")]
    assert results[0].message == "no result within 2.5 s; benchmark_model was killed"
    assert "STARTING!" in open(results[0].raw_log).read()
    assert fake_phone.running_device_processes() == []  # killed on the phone, not only the adb client


def test_a_failing_delegate_is_a_row_not_a_crash(fake_phone, tiny_model, fake_binary):
    fake_phone.add("FAKE01")
    fake_phone.fault("delegate_fail")
    results = bench([tiny_model], threads=[1], delegates=["nnapi", "cpu"], binary=fake_binary, **FAST)
    assert [(r.delegate, r.status) for r in results] == [("nnapi", "delegate_failed"), ("cpu", "ok")]
    assert results[0].message == (
        "Failed to apply NNAPI delegate: NNAPI delegate rejected the graph (fault injected by the fake phone)."
    )


def test_wrong_abi_on_the_phone(fake_phone, tiny_model, fake_binary):
    fake_phone.add("FAKE01")
    fake_phone.fault("wrong_abi")
    results = bench([tiny_model], threads=[1, 4], binary=fake_binary, **FAST)
    assert [r.status for r in results] == ["wrong_abi", "wrong_abi"]
    assert "wrong ABI" in results[0].message and "not executable: 64-bit ELF file" in results[0].message


def test_wrong_abi_binary_is_caught_before_pushing(fake_phone, tiny_model, tmp_path):
    fake_phone.add("FAKE01")
    x86_binary = write_fake_elf(tmp_path / "benchmark_model_x86_64", machine=EM_X86_64)
    (r,) = bench([tiny_model], threads=[1], binary=x86_binary, **FAST)
    assert r.status == "wrong_abi"
    assert r.message.endswith("is built for x86_64 but FAKE01 runs arm64-v8a, armeabi-v7a, armeabi (wrong ABI)")
    assert _pushes(fake_phone.calls(), "benchmark_model") == []


def test_one_phone_failing_keeps_the_others_results(fake_phone, tiny_model, fake_binary):
    fake_phone.add("FAKE01")
    fake_phone.add("FAKE02")
    fake_phone.fault("disconnect", serial="FAKE02")
    results = bench([tiny_model], threads=[1], binary=fake_binary, **FAST)
    assert [(r.target, r.status) for r in results] == [("android:FAKE01", "ok"), ("android:FAKE02", "device_error")]
    assert "device 'FAKE02' not found" in results[1].message


def test_every_ready_phone_by_default_and_unauthorized_ones_skipped(fake_phone, tiny_model, fake_binary):
    fake_phone.add("FAKE01")
    fake_phone.add("FAKE02", state="unauthorized")
    said = []
    results = bench([tiny_model], threads=[1], binary=fake_binary, progress=said.append, **FAST)
    assert [r.target for r in results] == ["android:FAKE01"]
    assert "skipping FAKE02: unauthorized" in said


@pytest.mark.parametrize(
    "devices, serials, message",
    [
        ([], None, "no Android device attached (adb devices lists none)"),
        ([("FAKE01", "device")], ["NOPE"], "device 'NOPE' is not attached; attached: FAKE01 (device)"),
        ([("FAKE01", "unauthorized")], ["FAKE01"], "device 'FAKE01' is unauthorized: unlock the phone"),
        ([("FAKE01", "unauthorized")], None, "no Android device ready: FAKE01 (unauthorized)"),
        ([("FAKE01", "offline")], ["FAKE01"], "device 'FAKE01' is offline, not ready"),
    ],
)
def test_device_selection_errors_are_one_line(fake_phone, tiny_model, fake_binary, devices, serials, message):
    for serial, state in devices:
        fake_phone.add(serial, state=state)
    with pytest.raises(DeviceError) as excinfo:
        bench([tiny_model], serials, binary=fake_binary, **FAST)
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


def test_bad_arguments(tmp_path, tiny_model):
    not_tflite = tmp_path / "x.tflite"
    not_tflite.write_bytes(b"not a model at all")
    with pytest.raises(ModelFileError, match="model file not found"):
        bench([tmp_path / "missing.tflite"])
    with pytest.raises(ModelFileError, match="not a TFLite model"):
        bench([not_tflite])
    with pytest.raises(UsageError, match="unknown delegate 'tpu'; choose from: cpu, gpu, nnapi, xnnpack"):
        bench([tiny_model], delegates=["tpu"])
    for mask in ("cores 4-7", "", "0"):
        with pytest.raises(UsageError, match="non-zero hexadecimal CPU mask"):
            bench([tiny_model], taskset=mask)
    with pytest.raises(UsageError, match="benchmark_model binary not found"):
        bench([tiny_model], binary=tmp_path / "nope")


def test_benchmark_command_quotes_paths():
    command = benchmark_command("/data/local/tmp/tflkit/benchmark_model", "/data/local/tmp/tflkit/my model.tflite",
                                2, "nnapi", runs=10, warmup=2)
    assert command == (
        "/data/local/tmp/tflkit/benchmark_model '--graph=/data/local/tmp/tflkit/my model.tflite' --num_threads=2 "
        "--num_runs=10 --warmup_runs=2 --min_secs=0 --warmup_min_secs=0 --use_nnapi=true "
        "--report_peak_memory_footprint=true"
    )
