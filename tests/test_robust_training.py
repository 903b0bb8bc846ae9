"""Issue 15, part 5 and issue 21: training that warns. Validation top-1 at chance while training top-1 rises is named
(with moving averages: BatchNorm statistics lagging; with recomputed statistics, the default: the weights); only a
run that keeps the moving averages gets the small-run BatchNorm momentum."""

from __future__ import annotations

import pytest

from tflkit.models import train_config

# Measured: MobileNetV3-Small 1.0 on a 1,500-image subset of shapes at the reference momentum 0.99 (5 epochs).
STUCK = {"val_top1": [0.1, 0.1, 0.1, 0.1, 0.1], "top1": [0.1067, 0.1284, 0.159, 0.1732, 0.2378]}
HEALTHY = {"val_top1": [0.1, 0.1083, 0.1517, 0.2083, 0.2533], "top1": [0.1067, 0.1284, 0.159, 0.1732, 0.2378]}


def _upto(history, epochs):
    return {k: v[:epochs] for k, v in history.items()}


def test_chance_warning_names_the_cause_after_two_epochs():
    from tflkit.core.trainconfig import TrainConfig
    from tflkit.training.loop import chance_warning

    moving = TrainConfig(model="m", bn_stats_batches=0)
    # epoch 1: training at chance too; epochs 2-3: training above chance and rising, validation at chance
    assert chance_warning(_upto(STUCK, 2), 10, moving) is None
    message = chance_warning(_upto(STUCK, 3), 10, moving)
    assert message and "sits at chance (10.00%, 10 classes)" in message
    assert "moving statistics" in message and "--bn-stats-batches 16" in message
    recomputed = chance_warning(_upto(STUCK, 3), 10, TrainConfig(model="m"))
    assert "does not generalize" in recomputed and "--lr" in recomputed
    for epochs in range(1, 6):  # validation follows: no warning at any epoch
        assert chance_warning(_upto(HEALTHY, epochs), 10, moving) is None
    assert chance_warning({"val_top1": [0.1, 0.1], "top1": [0.1, 0.1]}, 10, moving) is None  # nothing learns


def test_the_training_callback_logs_it_once():
    pytest.importorskip("keras")
    from tflkit.training.loop import _ChanceWarning

    lines = []
    from tflkit.core.trainconfig import TrainConfig

    callback = _ChanceWarning(10, TrainConfig(model="m", bn_momentum=0.99, bn_stats_batches=0), lines.append)
    for epoch, (val, top1) in enumerate(zip(STUCK["val_top1"], STUCK["top1"])):
        callback.on_epoch_end(epoch, {"val_top1": val, "top1": top1, "loss": 2.0})
    assert len(lines) == 1 and "momentum 0.99" in lines[0] and lines[0].startswith("warning:")


def test_only_moving_average_runs_get_the_small_run_momentum():
    from tflkit.core.trainconfig import TrainConfig
    from tflkit.data.shapes import load_shapes
    from tflkit.training.loop import _resolve

    demo_sized = load_shapes(seed=0, sizes={"train": 6000, "val": 8, "test": 8})  # the demo's 93 steps an epoch
    kw = dict(model="mobilenetv3_small_100", batch_size=64, bn_stats_batches=0)
    assert _resolve(TrainConfig(**kw), demo_sized).bn_momentum is None
    # the 1,500-image subset: 23 steps an epoch
    assert _resolve(TrainConfig(**kw, train_limit=1500), demo_sized).bn_momentum == 0.9
    assert _resolve(TrainConfig(**kw, bn_momentum=0.99, train_limit=1500), demo_sized).bn_momentum == 0.99  # kept
    # recomputed statistics (the default): the momentum never reaches an evaluated model, the reference stays
    recomputed = TrainConfig(model="mobilenetv3_small_100", batch_size=64, train_limit=1500)
    assert _resolve(recomputed, demo_sized).bn_momentum is None


def test_architecture_training_defaults_sit_under_every_explicit_setting(tmp_path):
    from tflkit.cli import build_parser
    from tflkit.cli.run import train_config_from_args
    from tflkit.core.trainconfig import TrainConfig
    from tflkit.study.spec import build_cells, load_study

    squeezenet = train_config("squeezenet1_1")
    assert squeezenet.lr == 5e-4 and squeezenet.warmup_epochs == 0.5
    assert train_config("squeezenet1_1", lr=2e-3).lr == 2e-3  # a given setting wins
    assert train_config("resnet18").lr == TrainConfig(model="resnet18").lr  # no defaults of its own
    args = build_parser().parse_args(["train", "--model", "squeezenet1_1", "--out", str(tmp_path / "r")])
    assert train_config_from_args(args).lr == 5e-4
    args = build_parser().parse_args(["train", "--model", "squeezenet1_1", "--lr", "1e-3", "--out", str(tmp_path)])
    assert train_config_from_args(args).lr == 1e-3
    (tmp_path / "s.yaml").write_text("name: s\nmodels: [squeezenet1_1, efficientnetv2_s]\ndatasets: [{spec: shapes}]\n"
                                     "training: {epochs: 1, warmup_epochs: 0.25}\n")
    cells = {c.model: c.config for c in build_cells(load_study(tmp_path / "s.yaml"))}
    assert cells["squeezenet1_1"]["lr"] == 5e-4 and cells["squeezenet1_1"]["warmup_epochs"] == 0.25
    assert cells["efficientnetv2_s"]["warmup_epochs"] == 0.25
