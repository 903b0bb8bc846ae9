"""Issue 26: CIFAR-10's binary version (`cifar-10-batches-bin/`: data_batch_1..5.bin, test_batch.bin of 3,073-byte
records, one label byte then 1,024 R, G and B bytes; batches.meta.txt, the class names one a line), as
`load_dataset("cifar10", data_dir)` (`tflkit data cifar10 --data-dir`, `train`, `eval`) reads it, fuzzed with
tests/test_fuzz_readers.py's harness: one outcome per input, a dataset whose every label is one of its classes or a
TflkitError of one line naming the file; never another exception, a hang or a dead process.

One file of a tiny official layout (2 records a batch) is replaced by a mutant: batches.meta.txt edited as text
(names dropped, added, doubled, emptied, joined by other whitespace, bytes that are not UTF-8, a byte-order mark,
NULs) or replaced by random bytes; a batch file truncated, extended, its label bytes set to any value, its bytes
flipped, emptied, or a directory in its place. Defaults run 300 datasets (a few seconds); `-m slow` runs 1,000;
`FUZZ_EXAMPLES=N` overrides both. What a run found is kept in $FUZZ_FOUND_DIR; tests/corpus/cifar_bin/ holds the
inputs kept (tests/corpus/README.md), replayed through `tflkit data cifar10` by tests/test_corpus_replay.py.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from test_fuzz_readers import examples, fuzz_settings, keep, one_outcome  # noqa: E402

ROWS = 2  # records per batch file: 10 train, 2 test
RECORD = 1 + 3072
BATCHES = [*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin"]
META = "batches.meta.txt"
NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
META_TEXT = "\n".join(NAMES) + "\n\n"  # as the official file: ten lines, then an empty one


def batch_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    records = rng.integers(0, 256, (ROWS, RECORD), dtype=np.uint8)
    records[:, 0] = rng.integers(0, 10, ROWS)
    return records.tobytes()


def write_cifar_bin(root: Path) -> Path:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for i, name in enumerate(BATCHES):
        (folder / name).write_bytes(batch_bytes(i))
    (folder / META).write_text(META_TEXT)
    return folder


META_PIECES = ("\n", "\r\n", " ", "\t", "\x00", "\ufeff", "\u00e9", "cat", "truck\n", "a b", "\n\n\n", "#",
               "airplane\nairplane\n")


@st.composite
def meta_mutants(draw) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=200))
    lines = list(NAMES)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(("drop", "add", "dup", "empty", "join", "piece", "text")))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if action == "drop" and lines:
            del lines[i]
        elif action == "add":
            lines.insert(i, draw(st.text(max_size=12)))
        elif action == "dup" and lines:
            lines.insert(i, lines[i])
        elif action == "empty" and lines:
            lines[i] = ""
        elif action == "join" and len(lines) > i + 1:
            lines[i:i + 2] = [lines[i] + draw(st.sampled_from((" ", "\t", "", "\x00"))) + lines[i + 1]]
        elif action == "piece" and lines:
            at = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:at] + draw(st.sampled_from(META_PIECES)) + lines[i][at:]
        elif action == "text":
            lines = draw(st.text(max_size=120)).split("\n")
    data = "\n".join(lines).encode("utf-8", "surrogatepass") + draw(st.sampled_from((b"\n\n", b"\n", b"")))
    if draw(st.integers(0, 3)) == 0:
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            if out:
                out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        data = bytes(out)
    return data


@st.composite
def batch_mutants(draw) -> bytes | None:
    """A batch file's new bytes (None: a directory in its place)."""
    data = bytearray(batch_bytes(0))
    action = draw(st.sampled_from(("truncate", "extend", "label", "label", "flip", "empty", "records", "directory")))
    if action == "truncate":
        return bytes(data[:draw(st.integers(0, len(data) - 1))])
    if action == "extend":
        return bytes(data) + draw(st.binary(min_size=1, max_size=RECORD + 1))
    if action == "label":
        for _ in range(draw(st.integers(1, ROWS))):
            data[RECORD * draw(st.integers(0, ROWS - 1))] = draw(st.one_of(st.sampled_from((10, 11, 255, 128)),
                                                                          st.integers(0, 255)))
        return bytes(data)
    if action == "flip":
        for _ in range(draw(st.integers(1, 16))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if action == "records":  # whole records, but how many: none, one, many
        return bytes(data[:RECORD]) * draw(st.sampled_from((0, 1, 3, 64)))
    if action == "empty":
        return b""
    return None


@st.composite
def cifar_bin_mutants(draw) -> tuple[str, bytes | None]:
    name = draw(st.sampled_from((META, META, BATCHES[0], BATCHES[-1])))
    return name, draw(meta_mutants() if name == META else batch_mutants())


def _fuzz_cifar_bin(folder: Path, n: int):
    from tflkit.data import load_dataset

    tally = {"inputs": 0, "read": 0}
    names = itertools.count()

    @fuzz_settings(n)
    @given(cifar_bin_mutants())
    def check(mutant):
        name, data = mutant
        root = folder / f"d{next(names)}"
        target = write_cifar_bin(root) / name
        if data is None:
            target.unlink()
            target.mkdir()
        else:
            target.write_bytes(data)
        try:
            source = one_outcome(load_dataset, "cifar10", data_dir=root)
            if source is not None:
                assert len(source.class_names) == source.num_classes == 10, source.class_names
                classes = source.class_names
                assert all(isinstance(c, str) and c and c.strip() == c and c.isprintable() for c in classes)
                assert len(set(classes)) == len(classes), classes
                for split in source.splits.values():
                    assert split.images.dtype == np.uint8 and split.images.shape[1:] == (32, 32, 3)
                    assert split.labels.ndim == 1 and len(split.labels) == len(split.images)
                    assert ((0 <= split.labels) & (split.labels < source.num_classes)).all()
                tally["read"] += 1
        except BaseException:
            keep(data or b"", f"cifar_bin_found_{name}_{root.name}")
            raise
        tally["inputs"] += 1

    start = time.perf_counter()
    check()
    print(f"\nfuzz CIFAR-10 binary: {tally['inputs']} datasets in {time.perf_counter() - start:.1f} s: "
          f"{tally['read']} read, the rest refused in one line")
    assert tally["inputs"] >= min(examples(n), 10)


@pytest.fixture
def fuzz_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_fuzz_cifar_binary(fuzz_dir):
    _fuzz_cifar_bin(fuzz_dir, 300)


@pytest.mark.slow
def test_fuzz_cifar_binary_slow(fuzz_dir):
    _fuzz_cifar_bin(fuzz_dir, 1000)
