"""`tflkit report` measures in a fresh process and shows XNNPACK partitions and the planned arena per recipe; on a
trained MobileNetV3 (the shared tiny run) every recipe, static_wi8_ai8 included, runs as one XNNPACK partition."""

from __future__ import annotations

import json

from tflkit.cli import main
from tflkit.core.results import load_results


def test_report_has_partitions_and_arena_for_every_recipe(tiny_run, capsys):
    # On the shared run itself: its exports.json names its own files, so a copy would measure the original's.
    # The other tests copy it without bench/, eval.json and report.*, so what this records does not leak to them.
    assert main(["report", str(tiny_run)]) == 0  # measures what is missing: eval, then bench in a fresh process
    markdown = capsys.readouterr().out
    rows = {r["recipe"]: r for r in json.loads((tiny_run / "report.json").read_text())}
    assert {"fp32", "static_wi8_ai8"} <= set(rows)
    for recipe, row in rows.items():
        # dynamic-range int8: XNNPACK has no hybrid depthwise kernel, which stays out (2 partitions)
        assert row["host_partitions_t1"] == (2 if recipe == "dynamic_wi8_afp32" else 1), (recipe, row)
        assert row["arena_bytes"] > 0
    # int8 activations: about a quarter of float32's arena
    assert rows["static_wi8_ai8"]["arena_bytes"] < 0.4 * rows["fp32"]["arena_bytes"]
    header = next(line for line in markdown.splitlines() if line.startswith("| recipe"))
    assert "host_partitions_t1" in header and "arena MB" in header
    host = [r for r in load_results(tiny_run / "bench" / "host.json")
            if r.model.endswith(".static_wi8_ai8.tflite") and r.delegate == "xnnpack"]
    assert host and all(r.reference_ops == {} and r.delegated_nodes == r.total_nodes for r in host)
    assert all(r.rss_delta_mb is not None and r.rss_delta_mb > 0 for r in host)
