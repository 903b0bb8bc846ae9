"""--labels reads the formats models ship with: plain names, TF-slim's `index:name`, ImageNet's `wnid name`."""

from __future__ import annotations

import numpy as np
import pytest

from tflkit.core.errors import UsageError
from tflkit.data.preprocess import class_outputs, read_labels


def test_tf_slim_indexed_labels_match_as_names(tmp_path):
    path = tmp_path / "labels_1001.txt"
    path.write_text("0:background\n1:tench, Tinca tinca\n2:goldfish, Carassius auratus\n3:great white shark\n")
    labels = read_labels(path)
    assert labels == ["background", "tench, Tinca tinca", "goldfish, Carassius auratus", "great white shark"]
    # a 4-output model, classes named as the dataset names them
    assert class_outputs(4, ["goldfish", "tench"], labels, "m", log=lambda *_: None).tolist() == [2, 1]


def test_wnid_lines_give_the_wnid_as_a_synonym(tmp_path):
    path = tmp_path / "synset_words.txt"
    path.write_text("n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n")
    labels = read_labels(path)
    assert class_outputs(2, ["n01443537", "tench"], labels, "m").tolist() == [1, 0]


def test_a_gap_in_the_numbering_and_an_unmatched_class_are_one_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("0:background\n2:tench\n")
    with pytest.raises(UsageError, match="count from 0 without gaps; line 2 is '2:tench'"):
        read_labels(path)
    plain = tmp_path / "plain.txt"
    plain.write_text("cat\ndog\n")
    assert read_labels(plain) == ["cat", "dog"]
    with pytest.raises(UsageError, match=r"1 dataset class\(es\) not in the labels file: bird; its first lines"):
        class_outputs(2, ["cat", "bird"], read_labels(plain), "m")
    assert isinstance(class_outputs(2, ["dog", "cat"], ["Cat", "DOG"], "m"), np.ndarray)

