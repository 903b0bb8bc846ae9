"""Issue 15, part 7: `eval --limit N` (a stratified subset, not recorded as the file's score) and progress lines while
a long file is evaluated."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def model_and_source(tmp_path_factory):
    from tflkit.data.shapes import load_shapes
    from tflkit.models import create_model

    path = tmp_path_factory.mktemp("eval") / "m.keras"
    create_model("test_mobilenetv3", num_classes=10, image_size=32, small_input=True).save(path)
    return path, load_shapes(seed=0, sizes={"train": 16, "val": 16, "test": 600})


def test_limit_scores_a_stratified_subset(model_and_source):
    from tflkit.training.evaluation import evaluate

    path, source = model_and_source
    result = evaluate(path, source, limit=100)
    assert result.count == 100 and result.limit == 100
    assert evaluate(path, source, limit=10_000).count == 600  # more than the split: all of it
    with pytest.raises(Exception, match="--limit must be 1 or more"):
        evaluate(path, source, limit=0)


def test_progress_lines_on_a_long_evaluation(model_and_source, monkeypatch):
    import tflkit.training.evaluation as evaluation

    path, source = model_and_source
    monkeypatch.setattr(evaluation, "PROGRESS_SECONDS", 0.0)  # a line after every batch of 256
    lines = []
    evaluation.evaluate(path, source, log=lines.append)
    progress = [line for line in lines if "images" in line]
    assert [line.split()[2] for line in progress] == ["256/600", "512/600"], lines


def test_cli_limit_is_not_recorded_as_the_files_score(tmp_path, capsys):
    from tflkit.cli import main
    from tflkit.data.shapes import load_shapes  # noqa: F401  (the CLI loads the embedded dataset itself)
    from tflkit.models import create_model

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: test_mobilenetv3\ndataset: shapes\n")
    create_model("test_mobilenetv3", num_classes=10, image_size=32, small_input=True).save(run / "model.keras")
    assert main(["eval", str(run / "model.keras"), "--dataset", "shapes", "--limit", "50", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert result["count"] == 50 and np.isfinite(result["top1"])
    assert not (run / "eval.json").exists()


def test_tied_scores_rank_by_class_index_as_argmax_does():
    import numpy as np

    from tflkit.training.evaluation import topk_accuracy

    logits = np.array([[3, 7, 7, 7, -128]] * 4, dtype=np.int8)  # a quantized output with a three-way tie
    assert topk_accuracy(logits, np.array([1, 1, 1, 1]), 1) == 1.0  # argmax's choice: the lowest index
    assert topk_accuracy(logits, np.array([2, 2, 2, 2]), 1) == 0.0
    assert topk_accuracy(logits, np.array([3, 3, 3, 3]), 3) == 1.0
    assert topk_accuracy(logits, np.array([4, 4, 4, 4]), 4) == 0.0  # -128 is the lowest score, not flipped to +128
