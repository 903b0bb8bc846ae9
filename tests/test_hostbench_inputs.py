"""`tflkit bench` inputs: random (no TensorFlow import) or a dataset's test images, fed exactly as `tflkit eval`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tflkit.bench.host import BenchSettings, InputImages, bench_model, open_input_data
from tflkit.cli import main
from tflkit.core.results import BenchResult, load_results, save_results

FEW = BenchSettings(runs=5, warmup=1)


def _artifact(run_dir, recipe):
    return next((run_dir / "tflite").glob(f"*.{recipe}.tflite"))


class _Recording:
    """An interpreter that remembers every array set on it, in order."""

    def __init__(self, interpreter):
        self._interpreter = interpreter
        self.fed: list[np.ndarray] = []

    def set_tensor(self, index, array):
        self.fed.append(np.array(array, copy=True))
        self._interpreter.set_tensor(index, array)

    def __getattr__(self, name):
        return getattr(self._interpreter, name)


def _bench_recording(monkeypatch, path, images, settings=FEW):
    import tflkit.bench.host

    recorded = []

    def load(*args, **kwargs):
        recorded.append(_Recording(tflkit.tflite.runtime.load_interpreter(*args, **kwargs)))
        return recorded[-1]

    monkeypatch.setattr(tflkit.bench.host, "load_interpreter", load)
    result = bench_model(path, settings, images=images)
    return result, recorded[0]


def _what_eval_feeds(source, path, count):
    """The arrays `tflkit eval` gives this model for the first `count` test images (its own code path)."""
    from tflkit.data.pipeline import make_dataset
    from tflkit.tflite.model import TFLiteClassifier, quantize

    model = TFLiteClassifier(path)
    images = np.concatenate([x.numpy() for x, _ in make_dataset(source.split("test"), model.image_size, 256)])
    return [quantize(image[None], model.input) for image in images[:count]]


@pytest.mark.parametrize("recipe", ["static_wi8_ai8", "fp32"])
def test_dataset_inputs_are_the_eval_inputs_cycled(monkeypatch, tiny_run, tiny_shapes, recipe):
    path = _artifact(tiny_run, recipe)
    images = InputImages(tiny_shapes, spec="shapes", count=3)
    result, interpreter = _bench_recording(monkeypatch, path, images)
    assert result.ok and (result.inputs, result.input_images) == ("shapes", 3)
    # first inference, 1 warm-up, 5 timed runs: 7 invokes, each after setting the next image (0, 1, 2, 0, ...)
    assert len(interpreter.fed) == 7 and result.count == 5
    expected = _what_eval_feeds(tiny_shapes, path, 3)
    for i, array in enumerate(interpreter.fed):
        np.testing.assert_array_equal(array, expected[i % 3])
    detail = interpreter.get_input_details()[0]
    assert interpreter.fed[0].dtype == detail["dtype"]
    if recipe == "static_wi8_ai8":  # calibrated on 0..255 pixels: the int8 input is about the pixel minus 128
        pixels = tiny_shapes.split("test").images[:3].astype(np.int16)  # 32x32 model: no resize
        np.testing.assert_allclose(np.stack(interpreter.fed[:3])[:, 0].astype(np.int16), pixels - 128, atol=1)


def test_random_inputs_stay_the_default(monkeypatch, tiny_run):
    result, interpreter = _bench_recording(monkeypatch, _artifact(tiny_run, "static_wi8_ai8"), images=None)
    assert result.ok and (result.inputs, result.input_images) == ("random", None)
    assert len(interpreter.fed) == 1  # set once, before the first inference


def test_input_images_wrap_batches_and_reject_non_images(tiny_shapes):
    images = InputImages(tiny_shapes, spec="shapes", count=5)
    detail = {"name": "x", "shape": np.array([2, 16, 16, 3]), "dtype": np.float32, "quantization": (0.0, 0)}
    batches = images.batches(detail)
    assert [b.shape for b in batches] == [(2, 16, 16, 3)] * 2  # 5 images in batches of 2
    with pytest.raises(Exception, match="not a square RGB image batch"):
        images.batches({**detail, "shape": np.array([1, 8])})


def test_random_bench_imports_no_tensorflow(tiny_run, tmp_path):
    model = tmp_path / "m.tflite"
    shutil.copy(_artifact(tiny_run, "fp32"), model)
    code = (
        "import sys\n"
        "from tflkit.cli import main\n"
        f"assert main(['bench', {str(model)!r}, '--runs', '2', '--warmup', '0']) == 0\n"
        "heavy = {'tensorflow', 'keras'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_cli_bench_on_shapes_records_the_inputs(tiny_run, tmp_path, capsys):
    model = tmp_path / "m.tflite"  # outside the run directory: nothing is recorded into the shared tiny run
    shutil.copy(_artifact(tiny_run, "static_wi8_ai8"), model)
    code = main(["bench", str(model), "--input-data", "shapes", "--input-images", "4", "--runs", "3",
                 "--warmup", "1", "--json"])
    (row,) = json.loads(capsys.readouterr().out)["results"]  # tflkit's JSON envelope
    assert code == 0 and row["status"] == "ok"
    assert (row["inputs"], row["input_images"], row["count"]) == ("shapes", 4, 3)


@pytest.mark.parametrize("argv, code, message", [
    (["--input-data", "nosuch"], 2, "unknown input data 'nosuch'; choose from: auto, cifar10, cifar100, folder, "
                                    "random, shapes, tiny_imagenet"),
    (["--input-data", "shapes:bogus"], 2, "dataset option 'bogus' in 'shapes:bogus'"),
    (["--input-data", "shapes", "--input-images", "0"], 2, "--input-images must be 1 or more, got 0"),
    (["--data-dir", "/tmp"], 2, "--data-dir is only read with --input-data DATASET"),
    (["--input-images", "8"], 2, "--input-images is only read with --input-data DATASET"),
    (["--input-data", "tiny_imagenet"], 1, "tiny_imagenet needs tiny-imagenet-200/ (wnids.txt, train/, val/) in "
                                           "--data-dir, $TFLKIT_DATA or ~/.cache/tflkit-data"),
])
def test_bad_input_data_is_one_line(tiny_run, capsys, monkeypatch, tmp_path, argv, code, message):
    monkeypatch.setenv("TFLKIT_DATA", str(tmp_path / "no-data-here"))  # the machine's own data folder stays out
    got = main(["bench", str(_artifact(tiny_run, "fp32")), *argv])
    captured = capsys.readouterr()
    assert got == code and captured.out == ""
    assert captured.err.startswith("tflkit: error: ") and message in captured.err and captured.err.count("\n") == 1


def test_a_model_without_an_image_input_is_a_failed_row(tmp_path, tiny_shapes):
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((8,), batch_size=1), keras.layers.Dense(2)])
    path = tmp_path / "dense.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    result = bench_model(path, FEW, images=InputImages(tiny_shapes, spec="shapes", count=2))
    assert result.status == "inputs_mismatch" and "not a square RGB image batch" in result.message


def test_older_result_files_load_as_random_inputs(tmp_path):
    path = tmp_path / "host.json"
    old = {"model": "m.tflite", "target": "host", "runtime": "ai_edge_litert", "threads": 1, "median_ms": 1.5}
    path.write_text(json.dumps([old]))
    (result,) = load_results(path)
    assert (result.inputs, result.input_images, result.median_ms) == ("random", None, 1.5)
    save_results([BenchResult(model="m.tflite", target="host", runtime="x", inputs="shapes", input_images=4)], path)
    assert [(r.inputs, r.input_images) for r in load_results(path)] == [("shapes", 4)]


def test_open_input_data_random_is_none():
    assert open_input_data("random") is None and open_input_data(None) is None
