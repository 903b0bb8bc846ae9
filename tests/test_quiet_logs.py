"""What a user sees: known noise filtered, progress bars only on a terminal."""

from __future__ import annotations


def test_the_quantizers_settings_echo_is_filtered_noise():
    from tflkit.core.tfenv import NOISE

    assert NOISE.match("fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8")
    assert not NOISE.match("convert  static_wi8_ai8            4.0s  m.tflite  (0.75 MB)")


def test_progress_bars_only_on_a_terminal(monkeypatch):
    import sys

    from tflkit.cli.run import progress_verbosity

    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert progress_verbosity(False) == 2 and progress_verbosity(True) == 2
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert progress_verbosity(False) == 1 and progress_verbosity(True) == 2


def test_a_graph_mostly_off_xnnpack_is_a_warning():
    from tflkit.bench.host import delegation_warning
    from tflkit.core.results import BenchResult

    slow = BenchResult(model="m.static_wi8_ai16.tflite", target="host", runtime="ai_edge_litert", delegate="xnnpack",
                       delegated_nodes=0, total_nodes=145, partitions=0)
    assert delegation_warning(slow).startswith("warning: m.static_wi8_ai16.tflite: XNNPACK runs only 0 of 145 nodes")
    fast = BenchResult(model="m.tflite", target="host", runtime="ai_edge_litert", delegate="xnnpack",
                       delegated_nodes=105, total_nodes=113, partitions=9)
    assert delegation_warning(fast) is None
    cpu = BenchResult(model="m.tflite", target="host", runtime="ai_edge_litert", delegate="cpu", total_nodes=10)
    assert delegation_warning(cpu) is None


def test_broken_yaml_names_its_line_and_column(tmp_path):
    import pytest

    from tflkit.core.config import read_yaml
    from tflkit.core.errors import UsageError

    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\n  lr: [\n")
    with pytest.raises(UsageError, match=r"c.yaml: not valid YAML \(line 2, column 5: mapping values are not allowed"):
        read_yaml(path)
