"""`tflkit inspect`: ops by type and dtype, I/O quantization, size and MACs of a .tflite; clean errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory):
    from converters.convert import convert_model
    from tflkit.models import create_model

    model = create_model("test_squeezenet", num_classes=4, image_size=32, small_input=True)
    images = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype(np.float32)
    path = tmp_path_factory.mktemp("inspect") / "m.static_wi8_ai8.tflite"
    path.write_bytes(convert_model(model, "static_wi8_ai8", images))
    return path


def test_inspect_json(int8_model, capsys):
    from tflkit.cli import main

    assert main(["inspect", str(int8_model), "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)["results"]  # tflkit's JSON envelope
    assert info["inputs"][0]["dtype"] == "int8" and info["inputs"][0]["scale"] > 0
    assert info["outputs"][0]["dtype"] == "int8"
    assert {"op": "CONV_2D", "dtype": "int8"} in [{k: r[k] for k in ("op", "dtype")} for r in info["ops"]]
    assert "DELEGATE" not in {r["op"] for r in info["ops"]}  # op names, not XNNPACK's delegate nodes
    assert info["float_ops_in_integer_model"] == []
    assert info["macs"] > 0 and info["size_bytes"] > info["gzip_bytes"] > 0


def test_inspect_text_and_missing_file(int8_model, tmp_path, capsys):
    from tflkit.cli import main

    assert main(["inspect", str(int8_model)]) == 0
    out = capsys.readouterr().out
    assert "CONV_2D" in out and "zero_point" in out and "MACs" in out
    assert main(["inspect", str(tmp_path / "nope.tflite")]) == 2  # a missing input is a usage error
    assert "not found" in capsys.readouterr().err
