"""Delegation and memory made visible (issue 14) and `tflkit inspect`'s parameters (issue 15 part 8): partitions,
delegated nodes and leftover ops in every host benchmark, arena_bytes, rss_delta_mb from a fresh process, the
built-in kernels when XNNPACK refuses a model."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

pytest.importorskip("tensorflow")


def _tiny(keras, hard_swish_op: bool, units: int = 10, dense_width: int = 0):
    """conv -> hard-swish -> depthwise -> hard-swish -> pool -> (dense) -> logits. `hard_swish_op`: the single
    Activation layer the converter makes a HARD_SWISH op (XNNPACK leaves it out in int8)."""
    from tflkit.models.layers import hard_swish

    def act(x, name):
        return keras.layers.Activation("hard_swish", name=name)(x) if hard_swish_op else hard_swish(x, keras, name)

    inputs = keras.Input((32, 32, 3))
    x = act(keras.layers.Conv2D(16, 3, padding="same")(inputs), "a")
    x = act(keras.layers.DepthwiseConv2D(3, padding="same")(x), "b")
    x = keras.layers.GlobalAveragePooling2D()(x)
    if dense_width:
        x = keras.layers.Dense(dense_width)(x)
        x = keras.layers.Dense(dense_width)(x)
    return keras.Model(inputs, keras.layers.Dense(units)(x))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import keras

    from converters.convert import convert_model

    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    tmp = tmp_path_factory.mktemp("delegation")
    out = {}
    for key, model, recipe in (
        ("old_int8", _tiny(keras, True), "static_wi8_ai8"),
        ("new_int8", _tiny(keras, False), "static_wi8_ai8"),
        ("new_fp16", _tiny(keras, False), "fp16"),
        ("big_fp32", _tiny(keras, False, dense_width=2048), "fp32"),  # a 2048x2048 layer: 16 MB of weights
    ):
        out[key] = tmp / f"{key}.tflite"
        out[key].write_bytes(convert_model(model, recipe, images))
    return out


def test_bench_records_partitions_nodes_and_leftover_ops(files, tmp_path):
    from tflkit.bench.host import BenchSettings, bench_models
    from tflkit.core.results import load_results, save_results
    from tflkit.tflite.arena import arena_bytes

    lines = []
    results = bench_models([files["old_int8"], files["new_int8"]], threads=(1,), settings=BenchSettings(runs=5),
                           log=lines.append, with_memory=False)
    old, new = results
    assert (old.partitions, old.delegated_nodes, old.total_nodes, old.reference_ops) == (3, 4, 6, {"HARD_SWISH": 2})
    assert new.partitions == 1 and new.delegated_nodes == new.total_nodes > 6 and new.reference_ops == {}
    assert "xnnpack 4/6 nodes, 3 partitions (left: HARD_SWISH 2)" in lines[0]
    assert "1 partition" in lines[1] and "arena" in lines[1]
    assert new.arena_bytes == arena_bytes(files["new_int8"]) > 0
    save_results(results, tmp_path / "bench.json")
    again = load_results(tmp_path / "bench.json")
    assert again[0].reference_ops == {"HARD_SWISH": 2} and again[1].partitions == 1


def test_rss_delta_grows_with_the_model(files):
    from tflkit.bench.memprobe import rss_delta_mb

    small, big = rss_delta_mb(files["new_fp16"]), rss_delta_mb(files["big_fp32"])
    size_mb = files["big_fp32"].stat().st_size / 2**20
    assert small is not None and big is not None
    assert 0 < small < big, (small, big)
    # The big file's weights must be resident (measured: +41 MB for the 17 MB file, file pages plus XNNPACK's packed
    # copy, against +8.6 MB for a 5 KB one): at least its own size more.
    assert big - small >= 0.8 * size_mb, (small, big, size_mb)


def test_xnnpack_refusal_falls_back_to_the_builtin_kernels(files, monkeypatch):
    """TEST DOUBLE (labelled): no model at hand makes this XNNPACK fail to prepare, so the runtime module is
    wrapped to raise LiteRT's own wording whenever the default delegate is on; everything else is the real LiteRT."""
    import types

    import tflkit.tflite.runtime as runtime
    from tflkit.bench.host import BenchSettings, bench_models
    from tflkit.tflite.model import TFLiteClassifier

    real = runtime.interpreter_module()

    class RefusingInterpreter(real.Interpreter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._refuse = "experimental_op_resolver_type" not in kwargs

        def allocate_tensors(self):
            if self._refuse:
                raise RuntimeError("tensorflow/lite/core/subgraph.cc Node number 2 (TfLiteXNNPackDelegate) "
                                   "failed to prepare.")
            return super().allocate_tensors()

    fake = types.SimpleNamespace(Interpreter=RefusingInterpreter, OpResolverType=real.OpResolverType)
    monkeypatch.setattr(runtime, "interpreter_module", lambda runtime_name=None: fake)
    lines = []
    failed, builtin = bench_models([files["new_int8"]], settings=BenchSettings(runs=3), log=lines.append,
                                   with_memory=False)
    assert failed.status == "xnnpack_failed" and "TfLiteXNNPackDelegate" in failed.message
    assert builtin.ok and builtin.delegate == "cpu" and builtin.median_ms > 0 and builtin.partitions == 0
    assert "xnnpack_failed" in lines[0] and "built-in kernels" in lines[1]
    notes = []
    classifier = TFLiteClassifier(files["new_int8"], log=notes.append)
    assert classifier.xnnpack_refused and "built-in kernels" in notes[0]
    assert classifier.predict(np.zeros((2, 32, 32, 3), np.float32)).shape == (2, 10)


def test_inspect_parameters_dtypes_partitions_arena_and_layers(files, capsys):
    from tflkit.cli import main
    from tflkit.tflite.macs import count_macs

    assert main(["inspect", str(files["old_int8"]), "--json", "--layers"]) == 0
    (info,) = json.loads(capsys.readouterr().out)["results"]  # tflkit's JSON envelope
    # conv 3x3x3x16 + depthwise 3x3x16 + dense 16x10 int8 weights; int32 biases (the dense one folded away or not)
    assert info["weight_dtypes"]["int8"] == 3 * 3 * 3 * 16 + 3 * 3 * 16 + 16 * 10
    assert info["params"] == sum(info["weight_dtypes"].values())
    assert info["delegation"]["partitions"] == 3 and info["delegation"]["reference_ops"] == {"HARD_SWISH": 2}
    assert info["arena_bytes"] > 0 and info["builtin_arena_bytes"] >= info["arena_bytes"]
    assert sum(row["macs"] for row in info["layers"] if row["dense"]) == count_macs(files["old_int8"]).macs
    assert main(["inspect", str(files["new_fp16"])]) == 0
    text = capsys.readouterr().out
    assert "float16" in text.split("parameters", 1)[1].splitlines()[0]  # fp16 weights behind DEQUANTIZE
    assert "1 partition;" in text and "activation arena" in text
