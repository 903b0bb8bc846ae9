"""`tflkit demo`, the README's main job, through the CLI: a tiny model for one epoch on the real embedded dataset,
so every stage (train, four conversions, eval, a benchmark in a fresh process, report) runs as `make demo` runs it."""

import json

from tflkit.cli import main


def test_demo_runs_every_stage_and_prints_the_table(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--model", "test_mobilenetv3", "--epochs", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = json.loads((out / "report.json").read_text())
    assert [r["recipe"] for r in rows] == ["fp32", "fp16", "dynamic_wi8_afp32", "static_wi8_ai8"]
    for row in rows:
        assert row["status"] == "ok", row
        assert 0.0 <= row["top1"] <= 1.0  # a fraction, measured on the 2000 test images
        assert row["host_median_ms_t1"] > 0 and row["host_median_ms_t2"] > 0 and row["size_bytes"] > 0
        assert f"| {row['recipe']} | ok |" in printed
    # the tiny model's int8 file is mostly per-channel parameters and names, so only "smaller" is a fair check here
    assert rows[0]["size_ratio"] == 1.0 and rows[3]["size_ratio"] < rows[1]["size_ratio"] < 1.0
    assert "time: data" in printed and f"written: {out / 'report.md'}" in printed
