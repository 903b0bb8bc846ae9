"""A converter crash (a real one: TF 2.21's int8 quantizer segfaults on Softplus) is a failed recipe, not a dead
process; the next recipe converts in a fresh worker."""

import numpy as np
import pytest

from converters.convert import ConversionError, export_saved_model
from converters.isolated import IsolatedConverter


@pytest.fixture(scope="module")
def softplus_saved_model(tmp_path_factory):
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.Activation("softplus")(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    return export_saved_model(model, tmp_path_factory.mktemp("softplus") / "saved_model")


def test_crash_becomes_conversion_error_and_the_next_recipe_still_converts(softplus_saved_model):
    calib = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    with IsolatedConverter(softplus_saved_model, calib) as convert:
        with pytest.raises(ConversionError, match=r"static_wi8_ai8: the TFLite converter crashed \(killed by SIG"):
            convert("static_wi8_ai8", needs_calibration=True)
        data = convert("fp32")
    assert data[4:8] == b"TFL3"


@pytest.mark.integration
def test_pool_converts_in_parallel_and_a_crash_costs_only_its_recipe(softplus_saved_model):
    from converters.isolated import ConverterPool
    from converters.recipes import resolve_recipes

    calib = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    static, fp32, fp16 = resolve_recipes(["static_wi8_ai8", "fp32", "fp16"])
    with ConverterPool(softplus_saved_model, calib, workers=2).start() as pool:
        pool.prefetch([static, fp32, fp16])
        with pytest.raises(ConversionError, match=r"static_wi8_ai8: the TFLite converter crashed"):
            pool(static)
        pooled_fp32, pooled_fp16 = pool(fp32), pool(fp16)
        assert set(pool.seconds) == {"static_wi8_ai8", "fp32", "fp16"}
    with IsolatedConverter(softplus_saved_model) as convert:
        assert pooled_fp32 == convert("fp32")  # the same bytes as one worker converting alone
    assert pooled_fp16[4:8] == b"TFL3" and len(pooled_fp16) < len(pooled_fp32)
