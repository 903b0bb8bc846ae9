"""Issue 26: the ports of downloaded ImageNet MobileNetV3-Small weights onto `mobilenetv3_small_100_tf`, fuzzed with
tests/test_fuzz_readers.py's harness: one outcome per input, a valid import or a TflkitError of one line; never
another exception, a hang or a dead process. A successful import leaves every weight of the model finite.

  .tflite   tflkit.weights.tflite, behind `tflkit weights import FILE.tflite --model mobilenetv3_small_100_tf` and
            `--pretrained FILE.tflite`: the TF-slim 8-bit file the model garden publishes (../shared/data/weights,
            2.6 MB), mutated where the importer trusts it (tests/tflite_mutants.py): shapes, buffer, opcode and
            tensor indices, types, offsets, names, and the quantization it dequantizes with (scales, zero points,
            their vectors' lengths), plus byte flips and truncations. A mutant whose input or output differs from
            the seed's also goes through model_from_tflite, which builds the model from them.
  .h5       tflkit.weights.load.port_keras_applications_mobilenetv3, behind `--pretrained imagenet` (after the
            download's MD5 is checked): keras.applications' Keras 2 `save_weights` layout written with h5py as
            tests/test_weights_imagenet.py writes it, mutated by tests/test_fuzz_weights_data.py's h5 edits.

Each .tflite mutant costs a child process (tflkit.tflite.check, about 0.7 s here), so the default suite runs 20 of
them and 150 .h5 files; `-m slow` runs 1,000 each; `FUZZ_EXAMPLES=N` overrides both. What a run found is kept in
$FUZZ_FOUND_DIR; tests/corpus/ holds the inputs kept (README.md there), replayed by tests/test_corpus_replay.py.
"""

from __future__ import annotations

import functools
import io
import itertools
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from conftest import SHARED_DATA  # noqa: E402
from test_fuzz_readers import examples, fuzz_settings, keep, one_outcome  # noqa: E402
from test_fuzz_weights_data import ATTR_VALUES, H5_DTYPES, fuzz_env, h5_edit  # noqa: E402, F401
from tflite_mutants import INTERESTING_32, INTERESTING_FLOATS, KINDS, QUANT_KINDS, field_sites, mutate  # noqa: E402

pytest.importorskip("tensorflow")
TF_SLIM = SHARED_DATA / "weights" / "mobilenet_v3_small" / "v3-small_224_1.0_uint8.tflite"
needs_tf_slim = pytest.mark.skipif(not TF_SLIM.is_file(), reason="no shared TF-slim MobileNetV3 file")
TARGET = "mobilenetv3_small_100_tf"
INTERESTING_64 = (0, 1, -1, 127, 128, 255, 256, -128, 2**31, -(2**31), 2**62, 2**63 - 1, -(2**63))


@functools.cache
def target_model(num_classes: int, image_size: int):
    from tflkit.models import create_model

    return create_model(TARGET, num_classes=num_classes, image_size=image_size)


class Mutant:
    """A mutant's bytes and what was done to the seed: Hypothesis prints a failing example, and these are MBs."""

    def __init__(self, data: bytes, how: list):
        self.data, self.how = data, how

    def __repr__(self) -> str:
        return f"Mutant({len(self.data):,} bytes: {'; '.join(map(str, self.how))})"


def assert_finite(model) -> None:
    bad = [w.path for w in model.weights if not np.isfinite(np.asarray(w)).all()]
    assert not bad, f"imported non-finite weights into {bad[:3]}"


# ------------------------------------------------------------------------------------------------------- .tflite

@functools.cache
def tflite_seed() -> tuple[bytes, dict]:
    data = TF_SLIM.read_bytes()
    return data, field_sites(data)


@st.composite
def tflite_mutants(draw) -> Mutant:
    """One to three field edits (half of them in the quantization), or byte flips, or a truncation."""
    data, sites = tflite_seed()
    how = draw(st.sampled_from(("field", "field", "field", "field", "flip", "truncate")))
    if how == "truncate":
        at = draw(st.integers(0, len(data) - 1))
        return Mutant(data[:at], [f"truncated at {at}"])
    if how == "flip":
        out, edits = bytearray(data), []
        for _ in range(draw(st.integers(1, 8))):
            at, value = draw(st.integers(0, len(out) - 1)), draw(st.integers(0, 255))
            out[at] = value
            edits.append(f"byte {at}={value}")
        return Mutant(bytes(out), edits)
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        pool = QUANT_KINDS if draw(st.booleans()) else KINDS
        kind = draw(st.sampled_from([k for k in pool if sites[k]]))
        site = draw(st.sampled_from(sites[kind]))
        if kind in ("type", "string"):
            value = draw(st.integers(0, 255))
        elif kind == "scale":
            value = draw(st.one_of(st.sampled_from(INTERESTING_FLOATS), st.floats(width=32)))
        elif kind == "zero_point":
            value = draw(st.one_of(st.sampled_from(INTERESTING_64), st.integers(-(2**63), 2**63 - 1)))
        else:
            value = draw(st.one_of(st.sampled_from(INTERESTING_32), st.integers(-(1 << 31), (1 << 32) - 1)))
        data = mutate(data, kind, site, value)
        edits.append(f"{kind}@{site}={value}")
    return Mutant(data, edits)


def _io(path) -> tuple | None:
    from tflkit.tflite.runtime import load_interpreter

    interpreter = one_outcome(load_interpreter, path, xnnpack=False)
    if interpreter is None:
        return None
    return (tuple(interpreter.get_input_details()[0]["shape"]), tuple(interpreter.get_output_details()[0]["shape"]))


def _fuzz_tflite(folder: Path, n: int):
    from tflkit.weights.tflite import import_tflite_weights, model_from_tflite, read_tflite_weights

    model = target_model(1001, 224)
    seed_io = _io(TF_SLIM)
    tally = {"inputs": 0, "read": 0, "imported": 0, "built": 0}
    names = itertools.count()

    @fuzz_settings(n)
    @given(tflite_mutants())
    def check(mutant):
        data = mutant.data
        path = folder / f"m{next(names)}.tflite"  # a new name each: never another mutant's remembered check
        path.write_bytes(data)
        try:
            if one_outcome(read_tflite_weights, path) is not None:
                tally["read"] += 1
                if one_outcome(import_tflite_weights, model, path) is not None:
                    assert_finite(model)
                    tally["imported"] += 1
                if _io(path) != seed_io:  # the model is built from the file's own input size and classes
                    built = one_outcome(model_from_tflite, path, TARGET)
                    if built is not None:
                        assert_finite(built[0])
                        tally["built"] += 1
        except BaseException:
            keep(data, f"mobilenetv3_tflite_found_{path.name}")
            raise
        finally:
            path.unlink()
        tally["inputs"] += 1

    start = time.perf_counter()
    check()
    print(f"\nfuzz MobileNetV3 .tflite import: {tally['inputs']} files in {time.perf_counter() - start:.1f} s: "
          f"{tally['read']} read, {tally['imported']} imported onto {TARGET}, {tally['built']} built from their "
          f"own input and output, the rest refused in one line")
    assert tally["inputs"] >= min(examples(n), 10)


@needs_tf_slim
def test_fuzz_mobilenetv3_tflite_import(fuzz_env):
    _fuzz_tflite(fuzz_env, 20)


@pytest.mark.slow
@needs_tf_slim
def test_fuzz_mobilenetv3_tflite_import_slow(fuzz_env):
    _fuzz_tflite(fuzz_env, 1000)


# ------------------------------------------------------------------------------------------------------- .h5

@functools.cache
def h5_seed() -> tuple[bytes, dict]:
    """keras.applications MobileNetV3Small's layout (Keras 2 names, the head's Dense kernels stored as 1x1 convs)
    with seeded weights, and its datasets, groups and (object, attribute) pairs."""
    import h5py
    from test_weights_imagenet import _keras2_name

    source = target_model(1000, 32)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keras_applications.h5"
        with h5py.File(path, "w") as f:
            names = []
            for layer in source.layers:
                if not layer.weights or layer.name == "normalize":
                    continue
                name = _keras2_name(layer.name)
                names.append(name.encode())
                group = f.require_group(name)
                stored = [(rng.uniform(0.5, 1.5, tuple(w.shape)) if "variance" in w.path
                           else rng.normal(0, 0.1, tuple(w.shape))).astype(np.float32) for w in layer.weights]
                stored = [a.reshape(1, 1, *a.shape) if type(layer).__name__ == "Dense" and a.ndim == 2 else a
                          for a in stored]
                weight_names = [f"{name}/w{i}:0" for i in range(len(stored))]
                for weight_name, array in zip(weight_names, stored):
                    group.create_dataset(weight_name, data=array)
                group.attrs["weight_names"] = [w.encode() for w in weight_names]
            f.attrs["layer_names"] = names
        data = path.read_bytes()
    sites = {"dataset": [], "group": [], "attr": []}
    with h5py.File(io.BytesIO(data), "r") as f:
        sites["attr"] += [("/", a) for a in f.attrs]

        def visit(name, obj):
            sites["dataset" if isinstance(obj, h5py.Dataset) else "group"].append(name)
            sites["attr"].extend((name, a) for a in obj.attrs)

        f.visititems(visit)
    return data, sites


@st.composite
def h5_mutants(draw) -> Mutant:
    import h5py

    data, sites = h5_seed()
    how = draw(st.sampled_from(("edit", "edit", "edit", "flip", "truncate")))
    if how == "truncate":
        at = draw(st.integers(0, len(data) - 1))
        return Mutant(data[:at], [f"truncated at {at}"])
    edits = []
    if how == "edit":
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as f:
            for _ in range(draw(st.integers(1, 3))):
                action = draw(st.sampled_from(("shape", "dtype", "huge", "delete", "swap", "link", "attr", "attr",
                                               "del_attr")))
                pool = sites["attr"] if action in ("attr", "del_attr") else sites["dataset"] if action in (
                    "shape", "dtype", "huge") else sites["dataset"] + sites["group"]
                target = draw(st.sampled_from(pool))
                choice = {
                    "shape": st.tuples(st.sampled_from(("drop", "add", 0, 1, 2, 3, 7, 64)), st.integers(0, 3)),
                    "dtype": st.sampled_from(H5_DTYPES),
                    "huge": st.sampled_from(((1 << 20, 1 << 20), (1 << 13, 1 << 13), (3, 3, 1 << 24, 8))),
                    "link": st.sampled_from(["/" + s for s in sites["dataset"][:4] + sites["group"][:4]]
                                            + ["/nowhere", "external"]),
                    "attr": st.sampled_from(ATTR_VALUES),
                }.get(action, st.none())
                value = draw(choice)
                edits.append(f"{action} {target} {value}")
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # complex to real, on purpose
                        h5_edit(f, action, target, value, sites)
                except (KeyError, ValueError, TypeError, OSError, RuntimeError, AttributeError):
                    pass  # the target went in an earlier edit, or h5py refuses this one: the file stays as it is
        data = buffer.getvalue()
        if draw(st.integers(0, 4)) != 0:
            return Mutant(data, edits)
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 16))):
        at, value = draw(st.integers(0, len(out) - 1)), draw(st.integers(0, 255))
        out[at] = value
        edits.append(f"byte {at}={value}")
    return Mutant(bytes(out), edits)


def _fuzz_h5(folder: Path, n: int):
    from tflkit.weights.load import port_keras_applications_mobilenetv3

    model = target_model(1000, 32)
    tally = {"inputs": 0, "ported": 0}
    names = itertools.count()

    @fuzz_settings(n)
    @given(h5_mutants())
    def check(mutant):
        data = mutant.data
        path = folder / f"m{next(names)}.h5"
        path.write_bytes(data)
        try:
            result = one_outcome(port_keras_applications_mobilenetv3, model, path)
            if result is not None:
                loaded, skipped = result
                assert loaded and all(isinstance(x, str) for x in loaded + skipped)
                assert_finite(model)
                tally["ported"] += 1
        except BaseException:
            keep(data, f"mobilenetv3_h5_found_{path.name}")
            raise
        finally:
            path.unlink()
        tally["inputs"] += 1

    start = time.perf_counter()
    check()
    print(f"\nfuzz keras.applications MobileNetV3 .h5 port: {tally['inputs']} files in "
          f"{time.perf_counter() - start:.1f} s: {tally['ported']} ported onto {TARGET}, the rest refused in one line")
    assert tally["inputs"] >= min(examples(n), 10)


@pytest.mark.integration
def test_fuzz_mobilenetv3_h5_port(fuzz_env):
    pytest.importorskip("h5py")
    _fuzz_h5(fuzz_env, 150)


@pytest.mark.slow
def test_fuzz_mobilenetv3_h5_port_slow(fuzz_env):
    pytest.importorskip("h5py")
    _fuzz_h5(fuzz_env, 1000)
