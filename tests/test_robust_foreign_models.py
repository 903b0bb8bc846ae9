"""Issue 15, part 3: any classifier .tflite. A public-MobileNet-style model (1001 outputs with a background class at 0,
input in [-1, 1]) evaluated with --labels and --input-range -1,1 scores exactly what plain LiteRT with the right
preprocessing scores; without them tflkit says what it assumed; TFLite metadata normalization is read; a model whose
output is not a class vector is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("tensorflow")

NUM_OUTPUTS = 1001


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """(tflite path, labels path, folder root, class names): a small conv net trained on shapes at [-1, 1] input, its
    10 classes scattered among 1001 outputs (0: background), the test split written as lossless PNGs."""
    import keras
    import tensorflow as tf
    from PIL import Image

    from tflkit.data.shapes import load_shapes

    tmp = tmp_path_factory.mktemp("foreign")
    source = load_shapes(seed=0, sizes={"train": 1280, "val": 16, "test": 160})
    names = list(source.class_names)
    rng = np.random.default_rng(0)
    positions = np.sort(rng.choice(np.arange(1, NUM_OUTPUTS), len(names), replace=False))  # output of class k
    labels = [f"imagenet thing {i}" for i in range(1, NUM_OUTPUTS)]
    for k, name in enumerate(names):
        labels[positions[k] - 1] = name.replace("_", " ").upper()  # matched case- and separator-insensitively
    (tmp / "labels.txt").write_text("\n".join(labels) + "\n")

    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(64, 3, strides=2, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(len(names)),
    ])
    classifier.compile(optimizer=keras.optimizers.Adam(3e-3),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    train = source.split("train")
    classifier.fit(train.images.astype(np.float32) / 127.5 - 1.0, train.labels, epochs=12, batch_size=64, verbose=0)
    # its 10 logits scattered over 1001 outputs, the others far below
    spread = keras.layers.Dense(NUM_OUTPUTS)
    model = keras.Sequential([keras.Input((32, 32, 3)), classifier, spread])
    weights, bias = np.zeros((len(names), NUM_OUTPUTS), np.float32), np.full(NUM_OUTPUTS, -30.0, np.float32)
    weights[np.arange(len(names)), positions] = 1.0
    bias[positions] = 0.0
    spread.set_weights([weights, bias])
    path = tmp / "mobilenet_like_1001.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())

    root = tmp / "imgs"
    for split_name, split in (("train", source.split("val")), ("test", source.split("test"))):
        for i, (image, label) in enumerate(zip(split.images, split.labels)):
            folder = root / split_name / names[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(folder / f"{i:04d}.png")
    return path, tmp / "labels.txt", root


def _plain_litert_top1(path, labels_path, root) -> float:
    """A few lines of plain LiteRT with the right preprocessing: [-1, 1] input, output 0 the background class."""
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    labels = labels_path.read_text().splitlines()
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    hits = total = 0
    for class_dir in sorted((root / "test").iterdir()):
        for file in sorted(class_dir.iterdir()):
            x = np.asarray(Image.open(file).convert("RGB"), np.float32) / 127.5 - 1.0
            interpreter.set_tensor(inp["index"], x[None])
            interpreter.invoke()
            predicted = int(np.argmax(interpreter.get_tensor(out["index"])[0]))
            name = labels[predicted - 1] if predicted > 0 else "background"
            hits += name.lower().replace(" ", "_") == class_dir.name
            total += 1
    return hits / total


def test_eval_with_labels_and_input_range_equals_plain_litert(foreign, capsys):
    from tflkit.cli import main

    path, labels, root = foreign
    expected = _plain_litert_top1(path, labels, root)
    code = main(["eval", str(path), "--dataset", f"folder:{root}", "--labels", str(labels), "--input-range", "-1,1",
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)["results"][0]
    print(f"tflkit eval top1 {result['top1']:.4f}, plain LiteRT {expected:.4f}")
    assert result["count"] == 160
    assert result["top1"] == pytest.approx(expected, abs=1e-9)
    assert expected > 0.25  # the model learned: an equality of two chance-level scores would prove little
    assert "background class" in captured.err
    assert result["preprocessing"] == "input range -1,1 (flags)"
    assert result["scoring"] == "1001-way top-1: all 1001 outputs compete, over the 10 dataset classes mapped to them"

    # --mean/--std say the same thing in other words
    capsys.readouterr()
    assert main(["eval", str(path), "--dataset", f"folder:{root}", "--labels", str(labels), "--mean", "127.5",
                 "--std", "127.5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["top1"] == pytest.approx(expected, abs=1e-9)


def test_without_flags_the_assumption_is_said_once_and_differs(foreign, capsys):
    from tflkit.cli import main

    path, labels, root = foreign
    assert main(["eval", str(path), "--dataset", f"folder:{root}", "--labels", str(labels), "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("preprocessing assumed") == 1
    wrong = json.loads(captured.out)["results"][0]
    assert wrong["preprocessing"] == "input range 0,255 (assumed)"
    assert wrong["top1"] < _plain_litert_top1(path, labels, root) - 0.1
    # 1001 outputs, 10 classes and no labels: no silent index-k-is-class-k, one line pointing at --labels
    assert main(["eval", str(path), "--dataset", f"folder:{root}"]) == 2
    assert "--labels" in capsys.readouterr().err


def test_metadata_normalization_is_read(foreign, tmp_path):
    from tflkit.data.preprocess import for_model
    from tflkit.tflite.metadata import read_metadata

    path, labels, _ = foreign
    with_metadata = tmp_path / "with_metadata.tflite"
    with_metadata.write_bytes(_with_metadata(path.read_bytes(), mean=127.5, std=127.5))
    metadata = read_metadata(with_metadata)
    assert metadata.mean == [127.5] and metadata.std == [127.5]
    prep = for_model(with_metadata, log=lambda *_: pytest.fail("nothing should be assumed"))
    assert prep.describe() == "input range -1,1 (metadata)"
    assert read_metadata(path) is None


def test_output_that_is_not_a_class_vector_is_one_line(tmp_path):
    import keras
    import tensorflow as tf

    from tflkit.core.errors import ModelFileError
    from tflkit.data.shapes import load_shapes
    from tflkit.training.evaluation import evaluate

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(21, 3, padding="same")])
    path = tmp_path / "segmenter.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    with pytest.raises(ModelFileError, match=r"segmenter.tflite is not a classifier: output shape \[1, 32, 32, 21\]"):
        evaluate(path, load_shapes(seed=0, sizes={"train": 10, "val": 10, "test": 10}))


def _with_metadata(model_bytes: bytes, mean: float, std: float) -> bytes:
    """The model with a TFLITE_METADATA buffer holding input NormalizationOptions, built as tflite-support's
    writer lays it out (metadata_schema.fbs), added through TensorFlow's own schema object API."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    b = flatbuffers.Builder(256)

    def floats(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(v)
        return b.EndVector()

    def table_vector(offsets):
        b.StartVector(4, len(offsets), 4)
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    mean_v, std_v = floats([mean]), floats([std])
    b.StartObject(2)  # NormalizationOptions {mean, std}
    b.PrependUOffsetTRelativeSlot(0, mean_v, 0)
    b.PrependUOffsetTRelativeSlot(1, std_v, 0)
    options = b.EndObject()
    b.StartObject(2)  # ProcessUnit {options_type, options}
    b.PrependUint8Slot(0, 1, 0)
    b.PrependUOffsetTRelativeSlot(1, options, 0)
    unit = b.EndObject()
    units = table_vector([unit])
    b.StartObject(7)  # TensorMetadata: process_units is slot 4
    b.PrependUOffsetTRelativeSlot(4, units, 0)
    tensor = b.EndObject()
    inputs = table_vector([tensor])
    b.StartObject(5)  # SubGraphMetadata: input_tensor_metadata is slot 2
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    subgraph = b.EndObject()
    subgraphs = table_vector([subgraph])
    name = b.CreateString("mobilenet-like")
    b.StartObject(8)  # ModelMetadata: name slot 0, subgraph_metadata slot 3
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.Finish(b.EndObject(), file_identifier=b"M001")
    metadata_bytes = bytes(b.Output())

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(model_bytes), 0))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(metadata_bytes, np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = "TFLITE_METADATA", len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    out = flatbuffers.Builder(1024)
    out.Finish(model.Pack(out), file_identifier=b"TFL3")
    return bytes(out.Output())
