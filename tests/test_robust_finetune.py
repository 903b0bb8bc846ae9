"""Issue 15, part 4: QAT and pruning on the run's own terms. The fine-tune runs on the run's own training subset
(train_limit respected), one epoch of it by default (or --finetune-steps), with progress lines; the export record,
the model card and the report say how much extra training the recipe had."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from quant_helpers import small_shapes

from tflkit.core.run import Run

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow_model_optimization") is None,
                                reason="tensorflow-model-optimization is not installed")

TRAIN_LIMIT = 128


def test_default_fine_tune_is_one_epoch_of_the_runs_own_subset():
    from converters.recipes import MAX_AUTO_STEPS, FineTuneSettings

    assert FineTuneSettings().resolved(TRAIN_LIMIT).steps == 2  # 128 images, batch 64
    assert FineTuneSettings().resolved(1500).steps == 24
    assert FineTuneSettings().resolved(10**6).steps == MAX_AUTO_STEPS
    assert FineTuneSettings(steps=7).resolved(10**6).steps == 7


@pytest.mark.slow  # 1.5-5 min on the shared 2-core machine: tfmot twin, QAT graph, SavedModel, conversion
def test_qat_fine_tunes_on_the_train_limit_subset_and_says_so(tmp_path):
    from converters.export import export_run
    from tflkit.core.trainconfig import TrainConfig
    from tflkit.pipeline.report import write_report
    from tflkit.training.loop import train

    source = small_shapes()  # 512 training images; the run uses 128 of them
    run = tmp_path / "run"
    train(TrainConfig(model="test_mobilenetv3", dataset="shapes", image_size=32, epochs=1, batch_size=64, lr=3e-3,
                      bn_momentum=0.9, train_limit=TRAIN_LIMIT), run, verbose=0, source=source)
    lines = []
    result, = export_run(run, ["qat_wi8_ai8"], source=source, calib_samples=32, validate_samples=48,
                         tensor_samples=2, log=lines.append)
    assert result.status == "ok", result
    assert result.fine_tune["train_images"] == TRAIN_LIMIT  # not the 512 of the dataset
    assert result.fine_tune["steps"] == 2 and result.fine_tune["epochs"] == 1.0
    assert any(line.startswith("finetune qat      step 2/2") for line in lines), lines
    assert any("fine-tune 2 steps of batch 64 on the run's 128 training images" in line for line in lines)
    row, = Run(run).exports()
    assert row["fine_tune"]["steps"] == 2
    card = json.loads(Path(result.path).with_name(Path(result.path).name.replace(".tflite", ".card.json"))
                      .read_text())
    assert card["fine_tune"]["train_images"] == TRAIN_LIMIT
    rows, markdown = write_report(run)
    assert rows[0]["finetune_steps"] == 2 and rows[0]["finetune_epochs"] == 1.0
    assert "finetune_steps" in markdown and "extra training" in markdown

