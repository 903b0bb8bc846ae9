"""The README's smoke study learns: both cells clearly above chance, and `tflkit pick` at the study's median
latency returns a non-empty feasible set with a Pareto front (issue 21's check; about a minute on 2 cores)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

STUDY = Path(__file__).resolve().parents[1] / "benchmarks" / "studies" / "smoke.yaml"


def _tflkit(*args):
    return subprocess.run([sys.executable, "-m", "tflkit", *map(str, args)], capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow  # about 1.5 min on 2 cores: .ci/run runs it beside the default suite
def test_the_smoke_study_learns_and_pick_finds_candidates(tmp_path):
    out = tmp_path / "smoke"
    run = _tflkit("study", "run", STUDY, "--out", out)
    assert run.returncode == 0, run.stderr[-2000:]
    from tflkit.study.report import load_study

    rows, _, _ = load_study(out)
    fp32 = [r for r in rows if r["recipe"] == "fp32"]
    assert len(fp32) == 2 and all(r["at_chance"] is False and r["top1_lo"] > 0.2 for r in fp32), fp32
    median = statistics.median(r["host_median_ms_t1"] for r in rows if r.get("host_median_ms_t1") is not None)
    pick = _tflkit("pick", out, "--max-latency-ms", f"{median:.6f}", "--json")
    assert pick.returncode == 0, pick.stderr
    result = json.loads(pick.stdout)
    assert result["feasible"] and result["pareto"]
