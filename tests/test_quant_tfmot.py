"""QAT and pruning through tfmot on the tf_keras twin: rows, sparsity read back from the .tflite, and Keras 3 still
working in the same process afterwards."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest
from quant_helpers import make_run, small_shapes

# find_spec, not importorskip: importing tfmot here would set TF_USE_LEGACY_KERAS before the code under test runs.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("tensorflow_model_optimization") is None,
                                reason="tensorflow-model-optimization is not installed")

TFMOT_RECIPES = ["qat_wi8_ai8", "prune50_static_wi8_ai8"]


def _export(run, source, recipes, steps=8):
    from converters.export import export_run
    from converters.recipes import FineTuneSettings

    return export_run(run, recipes, source=source, calib_samples=32, validate_samples=48, tensor_samples=2,
                      fine_tune=FineTuneSettings(steps=steps, batch_size=32), log=lambda *_: None)


def test_twin_carries_the_weights_and_hard_swish():
    import tf_keras

    from converters.twin import tf_keras_twin
    from tflkit.models import create_model

    model = create_model("test_mobilenetv3", num_classes=10, image_size=32, small_input=True)
    twin = tf_keras_twin(model, "test_mobilenetv3", 10, 32, True)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), twin.predict(x, verbose=0), atol=1e-4)
    assert any(type(layer).__name__ == "HardActivation" for layer in twin.layers)
    assert isinstance(twin, tf_keras.Model)


@pytest.mark.integration
def test_pruned_weights_are_half_zeros_in_the_tflite_and_keras3_still_works(tmp_path):
    source = make_run(tmp_path / "run", "test_resnet", source=small_shapes())
    fp32, pruned = _export(tmp_path / "run", source, ["fp32", "prune50_static_wi8_ai8"])
    assert pruned.status == "ok", pruned.message
    assert 0.49 <= pruned.weight_sparsity <= 0.52, pruned.weight_sparsity  # CONV_2D/FULLY_CONNECTED weights
    assert pruned.gzip_bytes < pruned.size_bytes
    assert pruned.validation["float_ops"] == ""
    # tfmot was imported in this process: the variable it sets must not leak, and Keras 3 must still export.
    assert os.environ.get("TF_USE_LEGACY_KERAS") is None
    from converters.convert import convert_model
    from tflkit.models import create_model

    assert len(convert_model(create_model("test_squeezenet", num_classes=3, image_size=32), "fp32")) > 1000


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["test_mobilenetv3", "test_resnet", "test_shufflenetv2", "test_squeezenet",
                                  "test_efficientnetv2"])
def test_tfmot_recipes_convert_or_fail_with_reason(tmp_path, arch):
    source = make_run(tmp_path / "run", arch)
    results = _export(tmp_path / "run", source, TFMOT_RECIPES)
    for r in results:
        assert r.status == "ok" or (r.status.endswith("_failed") and r.message), r
    if arch in ("test_mobilenetv3", "test_resnet", "test_shufflenetv2"):
        assert all(r.status == "ok" for r in results), results
        assert all(r.validation["float_ops"] == "" for r in results)
