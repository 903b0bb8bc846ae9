"""Issue 15, part 2: image folders checked for real. One corrupt JPEG is a named file (skipped with a count, or with
--strict one line naming it), never a TensorFlow traceback; an empty class folder is an error naming it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

CLASSES = ("circle", "square", "triangle")


def _write_tree(root, per_class=(8, 4), corrupt: bool = True, empty_class: str | None = None):
    """folder:root with train/ and test/ of tiny seeded JPEGs; the first train image of 'square' is corrupt."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in zip(("train", "test"), per_class):
        for k, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(rng.normal(60 + 70 * k, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{name}_{i:02d}.jpg", quality=90)
    if corrupt:
        (root / "train" / "square" / "square_00.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    if empty_class:
        (root / "train" / empty_class).mkdir()
    return root


def test_data_check_lists_the_corrupt_file(tmp_path, capsys):
    from tflkit.cli import main

    root = _write_tree(tmp_path / "imgs")
    code = main(["data", f"folder:{root}", "--check"])
    out = capsys.readouterr().out
    assert code == 1
    assert "unreadable (train):" in out and "square_00.jpg" in out
    assert "empty class" not in out


def test_data_check_is_clean_on_a_good_tree(tmp_path, capsys):
    from tflkit.cli import main

    root = _write_tree(tmp_path / "imgs", corrupt=False)
    assert main(["data", f"folder:{root}", "--check"]) == 0
    assert "every image readable" in capsys.readouterr().out


def test_empty_class_folder_is_an_error_naming_it(tmp_path, capsys):
    from tflkit.cli import main
    from tflkit.core.errors import DatasetError
    from tflkit.data import load_dataset

    root = _write_tree(tmp_path / "imgs", corrupt=False, empty_class="star")
    with pytest.raises(DatasetError, match=r"train/star: empty class folder"):
        load_dataset(f"folder:{root}")
    assert main(["data", f"folder:{root}", "--check"]) == 1
    assert f"empty class: {root / 'train' / 'star'}" in capsys.readouterr().out


def test_train_skips_the_unreadable_image_with_a_count_or_stops_naming_it(tmp_path):
    from tflkit.core.errors import DatasetError
    from tflkit.core.trainconfig import TrainConfig
    from tflkit.data import load_dataset
    from tflkit.training.loop import train

    root = _write_tree(tmp_path / "imgs")
    config = TrainConfig(model="test_mobilenetv3", dataset=f"folder:{root}", epochs=1, batch_size=8, lr=1e-3)
    with pytest.raises(DatasetError, match=r"square_00\.jpg: not a readable image"):
        train(TrainConfig(**{**config.__dict__, "strict": True}), tmp_path / "strict", verbose=0,
              log=lambda *_: None)
    lines = []
    history = train(config, tmp_path / "run", verbose=0, log=lines.append)
    assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0])
    assert any("skipped 1 unreadable image(s) in train: square_00.jpg" in line for line in lines), lines
    assert load_dataset(f"folder:{root}").split("train").paths  # the tree itself is left as it was


def test_eval_skips_unreadable_test_images(tmp_path):
    from tflkit.core.errors import DatasetError
    from tflkit.data import load_dataset
    from tflkit.models import create_model
    from tflkit.training.evaluation import evaluate

    root = _write_tree(tmp_path / "imgs", corrupt=False)
    (root / "test" / "circle" / "circle_01.jpg").write_bytes(b"truncated")
    model = create_model("test_mobilenetv3", num_classes=3, image_size=32, small_input=True)
    model.save(tmp_path / "m.keras")
    lines = []
    result = evaluate(tmp_path / "m.keras", load_dataset(f"folder:{root}"), log=lines.append)
    assert result.count == 11
    assert any("skipped 1 unreadable image(s) in test: circle_01.jpg" in line for line in lines)
    with pytest.raises(DatasetError, match="circle_01.jpg"):
        evaluate(tmp_path / "m.keras", load_dataset(f"folder:{root}"), strict=True)


def test_one_huge_image_sorted_first_does_not_set_the_training_size(tmp_path, capsys):
    """Issue 26: the native size was the first readable image's longer side, so one 3,000-pixel photo sorted first
    made a tree of 32-pixel images train at 3,000. Now it is the most common size of a sample spread over train/."""
    from PIL import Image

    from tflkit.cli import main

    root = _write_tree(tmp_path / "imgs", corrupt=False)
    Image.new("RGB", (3000, 2000), (90, 90, 90)).save(root / "train" / "circle" / "a_huge.png")
    assert main(["data", f"folder:{root}"]) == 0
    out = capsys.readouterr().out
    assert "32x32 native" in out, out
    assert "the most common longer side of 25 sampled train images (32 to 3000 px)" in out, out


def test_a_tie_between_sizes_takes_the_smaller(tmp_path):
    from PIL import Image

    from tflkit.data.folder import read_folder

    for name, size in (("a", 640), ("b", 48)):
        (tmp_path / "train" / name).mkdir(parents=True)
        Image.new("RGB", (size, size)).save(tmp_path / "train" / name / "x.png")
    assert read_folder(tmp_path)["image_size"] == 48
