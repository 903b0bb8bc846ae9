"""Issue 15: `tflkit bench --input-data DATASET` takes the preprocessing a model needs, as `tflkit eval` does
(`--input-range`, `--mean`/`--std`, else the model's own, else assumed and said once), through eval's own code path:
a model built with [-1, 1] input conventions gets exactly the input tensors eval feeds it."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tflkit.bench.host import BenchSettings, InputImages, bench_model  # noqa: E402
from tflkit.cli import main  # noqa: E402

FEW = BenchSettings(runs=3, warmup=1)


@pytest.fixture(scope="module")
def minus_one_one_model(tmp_path_factory):
    """A small float classifier for [-1, 1] inputs (as public MobileNets are), no model card, no metadata."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
    path = tmp_path_factory.mktemp("minus_one_one") / "mobilenet_like.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def _what_eval_feeds(monkeypatch, path, source, count, **flags):
    """The arrays `tflkit.training.evaluation.evaluate` sets on the interpreter for the first `count` test images,
    recorded from eval itself (its TFLiteClassifier quantizes and sets one batch per invoke)."""
    import tflkit.tflite.model
    from tflkit.data.preprocess import from_flags
    from tflkit.training.evaluation import evaluate

    fed = []
    original = tflkit.tflite.model.TFLiteClassifier._invoke

    def recording(self, batch):
        fed.append(tflkit.tflite.model.quantize(batch, self.input))
        return original(self, batch)

    monkeypatch.setattr(tflkit.tflite.model.TFLiteClassifier, "_invoke", recording)
    evaluate(path, source, preprocessing=from_flags(**flags))
    monkeypatch.undo()
    return np.concatenate(fed)[:count]


def _what_bench_feeds(monkeypatch, path, images):
    import tflkit.bench.host
    import tflkit.tflite.runtime

    fed = []

    class Recording:
        def __init__(self, interpreter):
            self._interpreter = interpreter

        def set_tensor(self, index, array):
            fed.append(np.array(array, copy=True))
            self._interpreter.set_tensor(index, array)

        def __getattr__(self, name):
            return getattr(self._interpreter, name)

    monkeypatch.setattr(tflkit.bench.host, "load_interpreter",
                        lambda *a, **kw: Recording(tflkit.tflite.runtime.load_interpreter(*a, **kw)))
    result = bench_model(path, FEW, images=images)
    monkeypatch.undo()
    assert result.ok, result.message
    return np.concatenate(fed)


@pytest.mark.parametrize("flags", [{"input_range": "-1,1"}, {"mean": [127.5], "std": [127.5]}, {}])
def test_bench_feeds_what_eval_feeds(monkeypatch, minus_one_one_model, tiny_shapes, flags):
    from tflkit.data.preprocess import from_flags

    count = 4
    expected = _what_eval_feeds(monkeypatch, minus_one_one_model, tiny_shapes, count, **flags)
    images = InputImages(tiny_shapes, spec="shapes", count=count, preprocessing=from_flags(**flags))
    fed = _what_bench_feeds(monkeypatch, minus_one_one_model, images)
    assert len(fed) == 1 + 1 + 3  # first inference, 1 warm-up, 3 timed: images 0, 1, 2, 3, 0
    np.testing.assert_array_equal(fed, expected[np.arange(len(fed)) % count])
    if flags:  # the [-1, 1] convention: pixel / 127.5 - 1, not raw pixels
        pixels = tiny_shapes.split("test").images[:count].astype(np.float32)
        np.testing.assert_allclose(fed[:count], pixels / 127.5 - 1.0, atol=1e-6)
        assert fed.min() >= -1.0 and fed.max() <= 1.0


def test_cli_bench_input_range_is_said_and_an_assumption_once(minus_one_one_model, capsys):
    code = main(["bench", str(minus_one_one_model), "--input-data", "shapes", "--input-images", "4",
                 "--input-range", "-1,1", "--threads", "1", "2", "--runs", "2", "--warmup", "0"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.count("input range -1,1 (flags)") == 1 and "assumed" not in captured.err
    code = main(["bench", str(minus_one_one_model), "--input-data", "shapes", "--input-images", "4",
                 "--threads", "1", "2", "--runs", "2", "--warmup", "0", "--json"])
    captured = capsys.readouterr()
    assert code == 0 and len(json.loads(captured.out)["results"]) == 2
    assert captured.err.count("preprocessing assumed") == 1  # two thread counts, one note


@pytest.mark.parametrize("argv, message", [
    (["--input-data", "shapes", "--input-range", "0,2"], "--input-range '0,2'; choose one of 0,255, 0,1, -1,1"),
    (["--input-data", "shapes", "--input-range", "-1,1", "--mean", "127"], "give --input-range or --mean/--std"),
    (["--input-data", "shapes", "--std", "0"], "--std must not be 0"),
    (["--input-range", "-1,1"], "--input-range / --mean / --std is only read with --input-data DATASET"),
])
def test_bad_preprocessing_is_one_line(minus_one_one_model, capsys, argv, message):
    got = main(["bench", str(minus_one_one_model), *argv])
    captured = capsys.readouterr()
    assert got == 2 and captured.out == ""
    assert captured.err.startswith("tflkit: error: ") and message in captured.err and captured.err.count("\n") == 1
