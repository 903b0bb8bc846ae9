"""Transfer learning: weights from another run (all layers but the classifier), two phases, SqueezeNet port."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tflkit.core.errors import UsageError
from tflkit.core.trainconfig import TrainConfig
from tflkit.training.loop import train

SQUEEZENET_H5 = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "weights" / "squeezenet"
                 / "squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5")


def test_run_to_run_transfer_freezes_then_finetunes(tmp_path, tiny_shapes):
    from tflkit.data.shapes import load_shapes

    base = TrainConfig(model="test_mobilenetv3", epochs=1, batch_size=64, bn_momentum=0.9)
    train(base, tmp_path / "src", verbose=0, source=tiny_shapes)
    # a different class count: the classifier cannot transfer, everything else must
    five = load_shapes(seed=1, sizes={"train": 256, "val": 64, "test": 32})
    five.class_names = five.class_names[:5]
    for split in five.splits.values():
        split.labels %= 5
    config = TrainConfig(model="test_mobilenetv3", epochs=1, finetune_epochs=1, batch_size=64,
                         pretrained=str(tmp_path / "src"))
    history = train(config, tmp_path / "dst", verbose=0, source=five)
    assert len(history["val_top1"]) == 2
    report = json.loads((tmp_path / "dst" / "pretrained.json").read_text())
    assert report["skipped_layers"] and len(report["loaded_layers"]) > 5
    # finetune_bn=frozen (the default): the pretrained BatchNorms keep their statistics through the fine-tune,
    # while the convolutions around them learn.
    import keras

    src = keras.models.load_model(tmp_path / "src" / "model.keras")
    dst = keras.models.load_model(tmp_path / "dst" / "checkpoints" / "last.keras")  # after the fine-tune epoch
    bns = [n for n in report["loaded_layers"] if hasattr(src.get_layer(n), "moving_mean")]
    convs = [n for n in report["loaded_layers"] if n.endswith("conv") and src.get_layer(n).weights]
    assert bns and convs
    for name in bns:
        for a, b in zip(src.get_layer(name).get_weights(), dst.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(src.get_layer(n).get_weights()[0], dst.get_layer(n).get_weights()[0]) for n in convs)


def test_imagenet_without_port_names_pretrained_path():
    from tflkit.training.transfer import imagenet_weights_path

    with pytest.raises(UsageError, match="--pretrained PATH"):
        imagenet_weights_path("test_mobilenetv3")


@pytest.mark.data
def test_squeezenet_imagenet_weights_port(tmp_path):
    if not SQUEEZENET_H5.is_file():
        pytest.skip("no shared SqueezeNet weights")
    from tflkit.models import create_model
    from tflkit.weights.load import load_weights_file

    model = create_model("squeezenet1_1", num_classes=10, image_size=64)
    loaded, skipped = load_weights_file(model, SQUEEZENET_H5)
    assert len(loaded) == 25 and skipped == []  # conv1 and 8 fire modules x 3
    assert sum(int(np.prod(w.shape)) for name in loaded for w in model.get_layer(name).weights) == 722_496
    # Caffe preprocessing: RGB mean subtracted, no scaling, in the model's normalization layer
    kernel, bias = model.get_layer("normalize").get_weights()
    assert np.allclose(kernel, 1) and np.allclose(bias, [-123.68, -116.779, -103.939])


def test_weights_that_cannot_be_had_leave_no_run_directory(tmp_path, tiny_shapes):
    """An offline `--pretrained imagenet` (or a missing file) fails before anything is written: no run directory
    holding only config.yaml that a later command would take for a run."""
    for spec in ("imagenet", str(tmp_path / "missing.h5")):
        with pytest.raises(UsageError):
            train(TrainConfig(model="test_mobilenetv3", epochs=1, batch_size=64, pretrained=spec),
                  tmp_path / "run", verbose=0, source=tiny_shapes)
        assert not (tmp_path / "run").exists()
