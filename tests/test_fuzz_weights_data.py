"""Issue 26, the readers tests/test_fuzz_readers.py leaves out: weights and training data from files tflkit did not
write. Same rule, same harness (imported from there): one outcome per input, a valid result or a TflkitError whose
message is one line; never another exception, never a hang, never a dead process.

Readers, each fed structure-aware mutants of a small valid file built here (no torch, no download):
  .pth      tflkit.weights.load.load_weights_file (what `tflkit weights import FILE --model ...` calls): the state
            dict of the registry's test_resnet written as torch.save would (tests/test_weights_pth.py's writer), zip
            and legacy formats. Mutated: zip member names, sizes, byteorder, compression, the pickle's ints (tensor
            sizes, strides, offsets, element counts), strings (storage keys, names), GLOBALs (os.system, another
            storage type), opcodes dropped or doubled, plus byte flips and truncations of the whole file.
  .h5       load_weights_file on test_squeezenet's weights in the three layouts it reads: Keras 3 `.weights.h5`,
            Keras 2 `save_weights` .h5 and the Keras-1 SqueezeNet file. Mutated with h5py (datasets reshaped,
            retyped, declared huge, swapped for groups, deleted; attributes of the wrong type, names that point
            nowhere) and as bytes (flips, truncations).
  CIFAR     load_dataset("cifar10" / "cifar100", data_dir) on tiny official-layout python batches: one file
            replaced by a mutant (wrong shapes, dtypes, missing keys, labels out of range, class names that are not
            text, a pickle whose GLOBAL would run code: refused and never run), then its pickle bytes mutated.
  images    a folder dataset as `tflkit train` / `eval` read it: load_dataset("folder:..."), screen_images (skip,
            and strict), make_dataset batches. Mutants of small PNG, JPEG, BMP and GIF files: byte flips,
            truncations, and header dimensions set to interesting values (up to 4 billion pixels). With the pixel
            limit lowered for the test, every image that is decoded must be within it.

The limits (tflkit/core/limits.py) are lowered while fuzzing, so that an input that slips past a check costs megabytes,
not the machine. Defaults run 300 to 400 inputs per reader (100 images), about 30 s on 2 busy cores; `-m slow`
runs 1,000 each; `FUZZ_EXAMPLES=N` overrides both. Inputs that found something are kept in $FUZZ_FOUND_DIR
(/tmp/tflkit-fuzz-found); tests/corpus/ holds the ones kept, replayed through the CLI by tests/test_corpus_replay.py.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import pickle
import pickletools
import struct
import sys
import tempfile
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from test_fuzz_readers import examples, fuzz_settings, keep, one_outcome  # noqa: E402

# Lowered for the fuzz run (restored after each test): what a mutant may make a reader allocate.
FUZZ_LIMITS = {"TFLKIT_MAX_PTH_MEMBER_BYTES": "64M", "TFLKIT_MAX_H5_DATASET_BYTES": "64M",
               "TFLKIT_MAX_IMAGE_PIXELS": "65536"}
RESULT_BYTES = 64 << 20  # nothing a reader returns from these few-KB seeds is larger


@pytest.fixture
def fuzz_env(monkeypatch, tmp_path):
    for name, value in FUZZ_LIMITS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # screen_images' cache of unreadable files
    return tmp_path


# ------------------------------------------------------------------------------------------------------- pickles

INTERESTING_INTS = (0, 1, -1, 2, 3, 7, 8, 255, 256, 3072, 65535, 65536, 2**31 - 1, -(2**31), 2**32, 2**40, 2**62,
                    2**63 - 1, -(2**63), 2**64, 2**70, 10**9, -(10**9))
INTERESTING_STRS = ("", "0", "1", "99", "-1", "0\n1", "../../etc/passwd", "data", "storage", "cpu", "cuda:0", "\x00",
                    "\u00e9", "\udcff", "latin1", "latin2", "utf-8", "hex", "zlib", "big", "FloatStorage",
                    "fc.weight", "layer1.0.conv1.weight", "stem.weight", "x" * 300, "labels", "data\n")
GLOBALS = (("os", "system"), ("posix", "system"), ("builtins", "eval"), ("builtins", "getattr"),
           ("subprocess", "Popen"), ("torch", "DoubleStorage"), ("torch", "HalfStorage"),
           ("torch", "BFloat16Storage"), ("torch", "BoolStorage"), ("torch", "ByteStorage"), ("torch", "NoStorage"),
           ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_parameter"),
           ("torch._utils", "_rebuild_tensor_v2"), ("collections", "OrderedDict"), ("collections", "defaultdict"),
           ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
           ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"), ("codecs", "decode"), ("numpy", "load"),
           ("__builtin__", "set"), ("copy_reg", "_reconstructor"))
INT_OPS = {"BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG"}
STR_OPS = {"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING",
           "SHORT_BINBYTES", "BINBYTES"}


def pickle_sites(data: bytes) -> dict[str, list[tuple[int, int]]]:
    """(start, end) of every opcode with its argument, by kind (int, str, global, any), in a stream of one or more
    pickles (stops where the bytes stop being pickle: the legacy .pth's raw storages)."""
    sites = {"int": [], "str": [], "global": [], "any": []}
    stream = io.BytesIO(data)
    try:
        while stream.tell() < len(data):
            for op, _arg, pos in pickletools.genops(stream):
                end = stream.tell()
                sites["any"].append((pos, end))
                if op.name in INT_OPS:
                    sites["int"].append((pos, end))
                elif op.name in STR_OPS:
                    sites["str"].append((pos, end))
                elif op.name == "GLOBAL":
                    sites["global"].append((pos, end))
    except ValueError:  # not (or no longer) a pickle
        pass
    return sites


def encode_int(v: int) -> bytes:
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    if -(2**31) <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    raw = pickle.encode_long(v)
    return b"\x8a" + bytes([len(raw)]) + raw


def encode_str(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogatepass")
    return b"X" + struct.pack("<I", len(raw)) + raw


@st.composite
def pickle_mutants(draw, data: bytes) -> bytes:
    """One to four edits of a pickle stream: an int, a string or a GLOBAL replaced, an opcode dropped or doubled,
    bytes flipped, or the stream cut."""
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        sites = pickle_sites(data)
        kinds = [k for k in ("int", "int", "str", "global", "any") if sites[k]] + ["flip", "truncate"]
        kind = draw(st.sampled_from(kinds))
        if kind == "flip":
            out = bytearray(data)
            for _ in range(draw(st.integers(1, 4))):
                out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
            data = bytes(out)
            continue
        if kind == "truncate":
            data = data[:draw(st.integers(0, len(data) - 1))]
            continue
        start, end = draw(st.sampled_from(sites[kind]))
        if kind == "int":
            new = encode_int(draw(st.one_of(st.sampled_from(INTERESTING_INTS), st.integers(-300, 300))))
        elif kind == "str":
            new = encode_str(draw(st.one_of(st.sampled_from(INTERESTING_STRS), st.text(max_size=6))))
        elif kind == "global":
            module, name = draw(st.sampled_from(GLOBALS))
            new = f"c{module}\n{name}\n".encode()
        else:
            new = draw(st.sampled_from((b"", data[start:end] * 2, b"\x93", b"(", b")", b".", b"N", b"0", b"R")))
        data = data[:start] + new + data[end:]
    return data


class RunsCode:
    """What a hostile pickle holds: a call that would leave a marker file if it ran."""

    def __init__(self, call, marker: Path):
        self.call, self.marker = call, marker

    def __reduce__(self):
        return {"system": (os.system, (f"touch {self.marker}",)),
                "eval": (eval, (f"open({str(self.marker)!r}, 'w')",)),
                "popen": (__import__("subprocess").Popen, (["touch", str(self.marker)],))}[self.call]


MARKER = Path(tempfile.gettempdir()) / f"tflkit-fuzz-ran-code-{os.getpid()}"


def stack_global_pickle(module: str, name: str) -> bytes:
    """A protocol-4 pickle naming module.name by STACK_GLOBAL (names may hold any character, newlines too)."""
    return b"\x80\x04" + encode_str(module) + encode_str(name) + b"\x93)R."


# ------------------------------------------------------------------------------------------------------- .pth

@functools.cache
def resnet():
    from tflkit.models import create_model

    return create_model("test_resnet", num_classes=3, image_size=32, small_input=True)


@functools.cache
def pth_seeds() -> dict[str, bytes]:
    """test_resnet's torchvision state dict as torch.save writes it: zip (torch >= 1.6) and legacy; 22 KB each."""
    from test_weights_pth import torchvision_state, write_pth

    state = torchvision_state(resnet())
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("zip", "legacy"):
            path = Path(tmp) / f"{fmt}.pth"
            write_pth(path, state, legacy=fmt == "legacy")
            out[fmt] = path.read_bytes()
    return out


def zip_members(data: bytes) -> list[tuple[str, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info.filename, archive.read(info)) for info in archive.infolist()]


def build_zip(members, compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": a mutant on purpose
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for name, body in members:
                archive.writestr(name, body)
    return buffer.getvalue()


MEMBER_NAMES = ("archive/data.pkl", "data.pkl", "x/y/data.pkl", "archive/data/0", "archive/data/00", "archive/data/",
                "archive/data/-1", "archive/data/0\n", "archive/byteorder", "archive/version", "archive/data/99",
                "archive/data/../data/0", "ARCHIVE/data.pkl")


@st.composite
def pth_zip_mutants(draw) -> bytes:
    members = zip_members(pth_seeds()["zip"])
    compression = zipfile.ZIP_STORED
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(("pickle", "pickle", "pickle", "rename", "drop", "dup", "resize", "byteorder",
                                       "deflate", "root", "attack")))
        i = draw(st.integers(0, len(members) - 1))
        name, body = members[i]
        if action == "pickle":
            j = next(k for k, (n, _) in enumerate(members) if n.endswith("data.pkl")) if any(
                n.endswith("data.pkl") for n, _ in members) else i
            members[j] = (members[j][0], draw(pickle_mutants(members[j][1])))
        elif action == "rename":
            members[i] = (draw(st.sampled_from(MEMBER_NAMES)), body)
        elif action == "drop" and len(members) > 1:
            del members[i]
        elif action == "dup":
            members.insert(i, (name, draw(st.sampled_from((body, body[: len(body) // 2], b"")))))
        elif action == "resize":
            size = draw(st.one_of(st.integers(0, len(body) + 64), st.sampled_from((0, 1, 3, 4, 7))))
            members[i] = (name, (body + bytes(64))[:size])
        elif action == "byteorder":
            value = draw(st.sampled_from((b"big", b"little", b"", b"big\n", b"\xff")))
            members = [m for m in members if not m[0].endswith("byteorder")] + [("archive/byteorder", value)]
        elif action == "deflate":
            compression = draw(st.sampled_from((zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)))
        elif action == "root":
            prefix = draw(st.sampled_from(("", "a/b/", "resnet18/", "archive/archive/")))
            members = [(prefix + n.split("/", 1)[-1], b) for n, b in members]
        else:  # a hostile pickle: refused, and what it names never runs
            attack = draw(st.sampled_from(("system", "eval", "popen", "stack_global")))
            if attack == "stack_global":
                body = stack_global_pickle(*draw(st.sampled_from((("os", "system"), ("torch\nx", "FloatStorage"),
                                                                 ("collections", "OrderedDict\nos.system")))))
            else:
                body = pickle.dumps({"fc.weight": RunsCode(attack, MARKER)}, protocol=2)
            members = [(n, body if n.endswith("data.pkl") else b) for n, b in members]
    data = build_zip(members, compression)
    if draw(st.integers(0, 3)) == 0:  # and the container itself: zip headers, sizes, CRCs, method fields
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 6))):
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        data = bytes(out)
    return data


@st.composite
def pth_mutants(draw) -> bytes:
    how = draw(st.sampled_from(("zip", "zip", "zip", "legacy", "flip", "truncate")))
    if how == "zip":
        return draw(pth_zip_mutants())
    if how == "legacy":
        data = pth_seeds()["legacy"]
        if draw(st.booleans()):
            return draw(pickle_mutants(data))
        out = bytearray(data)  # the storages after the pickles: element counts and raw bytes
        at = draw(st.integers(len(data) // 2, len(data) - 8))
        out[at:at + 8] = struct.pack("<q", draw(st.sampled_from([v for v in INTERESTING_INTS if abs(v) < 2**63])))
        return bytes(out)
    data = pth_seeds()[draw(st.sampled_from(("zip", "legacy")))]
    if how == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 16))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


def _fuzz_pth(folder: Path, n: int):
    from tflkit.weights.load import load_weights_file
    from tflkit.weights.pth import load_state_dict

    model = resnet()
    tally = {"inputs": 0, "read": 0, "ported": 0}
    names = itertools.count()

    @fuzz_settings(n)
    @given(pth_mutants())
    def check(data):
        path = folder / f"m{next(names)}.pth"
        path.write_bytes(data)
        try:
            state = one_outcome(load_state_dict, path)
            if state is not None:
                assert all(isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items())
                assert sum(v.nbytes for v in state.values()) <= RESULT_BYTES
                tally["read"] += 1
                tally["ported"] += one_outcome(load_weights_file, model, path) is not None
            assert not MARKER.exists(), "a pickle ran code"
        except BaseException:
            keep(data, f"pth_found_{path.name}")
            raise
        tally["inputs"] += 1

    start = time.perf_counter()
    check()
    print(f"\nfuzz .pth: {tally['inputs']} files in {time.perf_counter() - start:.1f} s: {tally['read']} read, "
          f"{tally['ported']} ported onto test_resnet, the rest refused in one line")
    assert tally["inputs"] >= min(examples(n), 10)


def test_fuzz_pth(fuzz_env):
    _fuzz_pth(fuzz_env, 300)


@pytest.mark.slow
def test_fuzz_pth_slow(fuzz_env):
    _fuzz_pth(fuzz_env, 1000)


# ------------------------------------------------------------------------------------------------------- .h5

@functools.cache
def squeezenet():
    from tflkit.models import create_model

    return create_model("test_squeezenet", num_classes=3, image_size=32, small_input=True)


@functools.cache
def h5_seeds() -> dict[str, bytes]:
    """test_squeezenet's weights as Keras 3 `save_weights` (.weights.h5), Keras 2 `save_weights` (.h5: layer_names,
    weight_names, a group per layer) and the Keras-1 SqueezeNet file (.h5: fire2/squeeze1x1 ..., generated dataset
    names); 20 to 60 KB each."""
    import h5py

    model = squeezenet()
    layers = [layer for layer in model.layers if layer.weights and layer.name != "normalize"]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.weights.h5"
        model.save_weights(path)
        out["keras3.weights.h5"] = path.read_bytes()
        path = Path(tmp) / "keras2.h5"
        with h5py.File(path, "w") as f:
            for layer in layers:
                group = f.create_group(layer.name)
                weight_names = [f"{layer.name}/{w.path.split('/')[-1]}:0" for w in layer.weights]
                for weight_name, w in zip(weight_names, layer.weights):
                    group.create_dataset(weight_name, data=w.numpy())
                group.attrs["weight_names"] = [w.encode() for w in weight_names]
            f.attrs["layer_names"] = [layer.name.encode() for layer in layers]
            f.attrs["backend"] = b"tensorflow"
        out["keras2.h5"] = path.read_bytes()
        path = Path(tmp) / "keras1.h5"
        with h5py.File(path, "w") as f:
            names = []
            for i, layer in enumerate(layers):
                name = layer.name.replace("_", "/", 1) if layer.name.startswith("fire") else layer.name
                names += [name, f"{name}_relu"]
                group = f.require_group(name)
                f.require_group(f"{name}_relu")
                kernel, bias = (w.numpy() for w in layer.weights)
                group.create_dataset(f"uniform{i}", data=kernel)
                group.create_dataset(f"{name}_b", data=bias)  # nested, as the real file's fire2/expand1x1_b is
                group.attrs["weight_names"] = [f"uniform{i}".encode(), f"{name}_b".encode()]
            f.attrs["layer_names"] = [n.encode() for n in names]
        out["keras1.h5"] = path.read_bytes()
    return out


@functools.cache
def h5_sites(kind: str) -> dict[str, list]:
    """The datasets, groups and (object, attribute) pairs of a seed."""
    import h5py

    sites = {"dataset": [], "group": [], "attr": []}
    with h5py.File(io.BytesIO(h5_seeds()[kind]), "r") as f:
        sites["attr"] += [("/", a) for a in f.attrs]

        def visit(name, obj):
            sites["dataset" if isinstance(obj, h5py.Dataset) else "group"].append(name)
            sites["attr"].extend((name, a) for a in obj.attrs)

        f.visititems(visit)
    return sites


H5_DTYPES = ("int8", "int64", "uint8", "float16", "float64", "bool", "complex64", "S4", "vlen_str", "compound",
             "empty")
ATTR_VALUES = ("int", "float", "str", "ints", "bytes_bad_utf8", "empty", "2d", "nowhere", "duplicate", "dataset",
               "reversed")


def _replace(f, name, make):
    attrs = dict(f[name].attrs)
    del f[name]
    obj = make(name)
    if obj is not None:
        for k, v in attrs.items():
            obj.attrs[k] = v


def h5_edit(f, action: str, target, choice, sites) -> None:
    """One structural edit of an open h5py file."""
    import h5py

    if action in ("shape", "dtype") and getattr(f[target], "size", 0) > 1 << 16:
        return  # a dataset an earlier edit declared huge: never read here (the seeds' largest holds 9,216 numbers)
    if action == "shape":
        old = f[target][()]
        shape = list(old.shape) or [1]
        how, value = choice
        if how == "drop":
            shape = shape[:-1]
        elif how == "add":
            shape = [*shape, 1]
        else:
            shape[value % len(shape)] = how
        _replace(f, target, lambda n: f.create_dataset(n, data=np.resize(old, shape).astype(old.dtype)))
    elif action == "dtype":
        old = f[target][()]
        if choice == "vlen_str":
            make = lambda n: f.create_dataset(n, data=np.full(old.shape, "w", dtype=object),  # noqa: E731
                                              dtype=h5py.string_dtype())
        elif choice == "compound":
            make = lambda n: f.create_dataset(n, data=np.zeros(old.shape, [("a", "f4"), ("b", "i2")]))  # noqa: E731
        elif choice == "empty":
            make = lambda n: f.create_dataset(n, data=h5py.Empty("f4"))  # noqa: E731
        else:
            make = lambda n: f.create_dataset(n, data=old.astype(choice))  # noqa: E731
        _replace(f, target, make)
    elif action == "huge":  # declared terabytes, stored nothing: a fill value until read
        shape = choice
        _replace(f, target, lambda n: f.create_dataset(n, shape=shape, dtype="f4", chunks=(1,) * len(shape)))
    elif action == "delete":
        del f[target]
    elif action == "swap":  # a dataset where a group was, or a group where a dataset was
        if isinstance(f[target], h5py.Dataset):
            _replace(f, target, lambda n: f.create_group(n))
        else:
            _replace(f, target, lambda n: f.create_dataset(n, data=np.zeros(3, "f4")))
    elif action == "link":
        del f[target]
        f[target] = h5py.SoftLink(choice) if choice.startswith("/") else h5py.ExternalLink("missing.h5", "/x")
    elif action == "attr":
        obj, attr = target
        value = {
            "int": np.int64(3), "float": 3.5, "str": "conv1", "ints": np.arange(3),
            "bytes_bad_utf8": np.array([b"\xff\xfe", b"conv1"]), "empty": np.array([], dtype="S1"),
            "2d": np.array([[b"conv1", b"fire2"]]), "nowhere": np.array([b"no/such/layer", b"conv1\n"]),
            "duplicate": np.array([b"conv1", b"conv1"]),
            "dataset": np.array([s.encode() for s in sites["dataset"][:3]]),
            "reversed": None,
        }[choice]
        if value is None:
            value = f[obj].attrs[attr][::-1] if np.ndim(f[obj].attrs[attr]) else f[obj].attrs[attr]
        f[obj].attrs[attr] = value
    elif action == "del_attr":
        obj, attr = target
        del f[obj].attrs[attr]


@st.composite
def h5_mutants(draw) -> tuple[str, bytes]:
    import h5py

    kind = draw(st.sampled_from(sorted(h5_seeds())))
    data = h5_seeds()[kind]
    sites = h5_sites(kind)
    how = draw(st.sampled_from(("edit", "edit", "edit", "flip", "truncate")))
    if how == "truncate":
        return kind, data[:draw(st.integers(0, len(data) - 1))]
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
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # complex to real, on purpose
                        h5_edit(f, action, target, draw(choice), sites)
                except (KeyError, ValueError, TypeError, OSError, RuntimeError, AttributeError):
                    pass  # the target went in an earlier edit, or h5py refuses this one: the file stays as it is
        data = buffer.getvalue()
        if not draw(st.integers(0, 4)) == 0:
            return kind, data
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 16))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return kind, bytes(out)


def _fuzz_h5(folder: Path, n: int):
    from tflkit.weights.load import load_weights_file

    model = squeezenet()
    tally = {"inputs": 0, "loaded": 0}
    names = itertools.count()

    @fuzz_settings(n)
    @given(h5_mutants())
    def check(mutant):
        kind, data = mutant
        path = folder / f"m{next(names)}.{kind.split('.', 1)[1]}"
        path.write_bytes(data)
        try:
            result = one_outcome(load_weights_file, model, path)
            if result is not None:
                loaded, skipped = result
                assert loaded and all(isinstance(x, str) for x in loaded + skipped)
                tally["loaded"] += 1
        except BaseException:
            keep(data, f"h5_found_{path.name}")
            raise
        tally["inputs"] += 1

    start = time.perf_counter()
    check()
    print(f"\nfuzz .h5: {tally['inputs']} files in {time.perf_counter() - start:.1f} s: {tally['loaded']} loaded "
          f"onto test_squeezenet, the rest refused in one line")
    assert tally["inputs"] >= min(examples(n), 10)


def test_fuzz_h5_weights(fuzz_env):
    pytest.importorskip("h5py")
    _fuzz_h5(fuzz_env, 300)


@pytest.mark.slow
def test_fuzz_h5_weights_slow(fuzz_env):
    pytest.importorskip("h5py")
    _fuzz_h5(fuzz_env, 1000)


# ------------------------------------------------------------------------------------------------------- CIFAR

ROWS = 2  # images per batch file: 10 train, 2 test
CIFAR_FILES = {"cifar10": ("cifar-10-batches-py", [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"],
                           "batches.meta"),
               "cifar100": ("cifar-100-python", ["train", "test"], "meta")}


def cifar_batch(layout: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, (ROWS, 3072), dtype=np.uint8), b"batch_label": b"training batch",
             b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(ROWS)]}
    if layout == "cifar10":
        batch[b"labels"] = [int(v) for v in rng.integers(0, 10, ROWS)]
    else:
        batch[b"fine_labels"] = [int(v) for v in rng.integers(0, 100, ROWS)]
        batch[b"coarse_labels"] = [int(v) for v in rng.integers(0, 20, ROWS)]
    return batch


def cifar_meta(layout: str) -> dict:
    if layout == "cifar10":
        return {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_cases_per_batch": ROWS}
    return {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}


def write_cifar(root: Path, layout: str) -> Path:
    dirname, batches, meta = CIFAR_FILES[layout]
    folder = root / dirname
    folder.mkdir(parents=True)
    for i, name in enumerate(batches):
        (folder / name).write_bytes(pickle.dumps(cifar_batch(layout, i), protocol=2))
    (folder / meta).write_bytes(pickle.dumps(cifar_meta(layout), protocol=2))
    return folder


BAD_DATA = ("shape_3071", "flat", "empty", "hwc", "3d", "int64", "float32", "bool", "object", "str_array", "list",
            "bytes", "none", "str", "dict", "scalar", "huge_values")
BAD_LABELS = ("out_of_range", "negative", "huge", "very_huge", "true", "float", "str", "none_item", "nested", "short",
              "long", "array_int64", "array_uint8", "array_float", "array_2d", "tuple", "none", "dict", "empty")
BAD_NAMES = ("few", "many", "ints", "bad_utf8", "none", "str", "nested", "empty")


def bad_data(how: str, rows: np.ndarray):
    return {"shape_3071": rows[:, :3071], "flat": rows.reshape(-1), "empty": rows[:0],
            "hwc": rows.reshape(-1, 32, 32, 3), "3d": rows.reshape(-1, 3072, 1), "int64": rows.astype(np.int64) * 3,
            "float32": rows.astype(np.float32) / 3,
            "bool": rows.astype(bool), "object": rows.astype(object), "str_array": rows.astype(str),
            "list": rows.tolist(), "bytes": rows.tobytes(), "none": None, "str": "data", "dict": {b"data": rows},
            "scalar": np.uint8(3), "huge_values": rows.astype(np.int64) + 2**40}[how]


def bad_labels(how: str, labels: list):
    return {"out_of_range": [*labels[:-1], 100], "negative": [-1, *labels[1:]], "huge": [2**40, *labels[1:]],
            "very_huge": [2**70, *labels[1:]], "true": [True, *labels[1:]], "float": [1.5, *labels[1:]],
            "str": ["1", *labels[1:]], "none_item": [None, *labels[1:]], "nested": [[1], *labels[1:]],
            "short": labels[:-1], "long": [*labels, 0], "array_int64": np.array(labels),
            "array_uint8": np.array(labels, np.uint8), "array_float": np.array(labels, np.float32) + 0.5,
            "array_2d": np.array(labels)[:, None], "tuple": tuple(labels), "none": None, "dict": {0: 1},
            "empty": []}[how]


def bad_names(how: str, names: list):
    return {"few": names[:3], "many": [*names, b"extra"], "ints": list(range(len(names))),
            "bad_utf8": [b"\xff\xfe", *names[1:]], "none": None, "str": "names", "nested": [names],
            "empty": []}[how]


@st.composite
def cifar_mutants(draw) -> tuple[str, str, bytes]:
    """(layout, file name, bytes): one file of a tiny official layout replaced by a mutant."""
    layout = draw(st.sampled_from(sorted(CIFAR_FILES)))
    _, batches, meta_name = CIFAR_FILES[layout]
    name = draw(st.sampled_from([*batches[:1], batches[-1], meta_name]))
    valid = cifar_meta(layout) if name == meta_name else cifar_batch(layout, 0)
    value = dict(valid)
    label_keys = [b"labels"] if layout == "cifar10" else [b"fine_labels", b"coarse_labels"]
    name_keys = [b"label_names"] if layout == "cifar10" else [b"fine_label_names", b"coarse_label_names"]
    for _ in range(draw(st.integers(0, 2))):
        action = draw(st.sampled_from(("data", "labels", "names", "drop_key", "str_keys", "top", "attack")))
        if not isinstance(value, dict):
            break
        if action == "data" and name != meta_name:
            value[b"data"] = bad_data(draw(st.sampled_from(BAD_DATA)), valid[b"data"])
        elif action == "labels" and name != meta_name:
            key = draw(st.sampled_from(label_keys))
            value[key] = bad_labels(draw(st.sampled_from(BAD_LABELS)), valid[key])
        elif action == "names" and name == meta_name:
            key = draw(st.sampled_from(name_keys))
            value[key] = bad_names(draw(st.sampled_from(BAD_NAMES)), valid[key])
        elif action == "drop_key" and value:
            del value[draw(st.sampled_from(sorted(value, key=str)))]
        elif action == "str_keys":
            value = {k.decode() if isinstance(k, bytes) else k: v for k, v in value.items()}
        elif action == "top":
            value = draw(st.sampled_from((None, 3, "batch", [1, 2], (1,), np.zeros(3, np.uint8))))
        elif action == "attack":
            value = {b"data": RunsCode(draw(st.sampled_from(("system", "eval", "popen"))), MARKER)}
    data = pickle.dumps(value, protocol=draw(st.sampled_from((2, 2, 4))))
    if draw(st.sampled_from(("stack_global", "pickle", "pickle", "none"))) == "stack_global":
        data = stack_global_pickle(*draw(st.sampled_from((("os", "system"), ("numpy\nos", "ndarray"),
                                                         ("builtins", "eval\nx")))))
    elif draw(st.booleans()):
        data = draw(pickle_mutants(data))
    return layout, name, data


def _fuzz_cifar(folder: Path, n: int):
    from tflkit.data import load_dataset

    tally = {"inputs": 0, "read": 0}
    names = itertools.count()

    @fuzz_settings(n)
    @given(cifar_mutants())
    def check(mutant):
        layout, name, data = mutant
        root = folder / f"d{next(names)}"
        target = write_cifar(root, layout) / name
        target.write_bytes(data)
        try:
            source = one_outcome(load_dataset, layout, data_dir=root)
            if source is not None:
                assert all(isinstance(c, str) for c in source.class_names)
                for split in source.splits.values():
                    assert split.images.dtype == np.uint8 and split.images.shape[1:] == (32, 32, 3)
                    assert split.labels.ndim == 1 and len(split.labels) == len(split.images)
                    assert ((0 <= split.labels) & (split.labels < source.num_classes)).all(), \
                        f"labels {split.labels.tolist()} for {source.num_classes} classes"
                tally["read"] += 1
            assert not MARKER.exists(), "a pickle ran code"
        except BaseException:
            keep(data, f"cifar_found_{layout}_{name}_{root.name}")
            raise
        tally["inputs"] += 1

    start = time.perf_counter()
    check()
    print(f"\nfuzz CIFAR pickles: {tally['inputs']} datasets in {time.perf_counter() - start:.1f} s: "
          f"{tally['read']} read, the rest refused in one line")
    assert tally["inputs"] >= min(examples(n), 10)


def test_fuzz_cifar_pickles(fuzz_env):
    _fuzz_cifar(fuzz_env, 400)


@pytest.mark.slow
def test_fuzz_cifar_pickles_slow(fuzz_env):
    _fuzz_cifar(fuzz_env, 1000)


# ------------------------------------------------------------------------------------------------------- images

@functools.cache
def image_seeds() -> dict[str, bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    out = {}
    for fmt, ext in (("PNG", ".png"), ("JPEG", ".jpg"), ("BMP", ".bmp"), ("GIF", ".gif")):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)).save(buffer, fmt)
        out[ext] = buffer.getvalue()
    return out


INTERESTING_DIMS = (0, 1, 2, 7, 8, 12, 255, 256, 257, 1000, 4096, 8192, 50000, 65535, 2**31 - 1, 2**32 - 1)


def set_dims(ext: str, data: bytes, width: int, height: int, consistent: bool) -> bytes:
    """The image's header claiming width x height (as far as its fields hold them); `consistent`: PNG's IHDR CRC
    recomputed, GIF's first frame given the same size as its screen."""
    out = bytearray(data)
    if ext == ".png":  # IHDR: width, height big-endian at 16 and 20, its CRC at 29
        out[16:24] = struct.pack(">II", width, height)
        if consistent:
            out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    elif ext == ".jpg":  # SOF0/SOF2: height, width big-endian 16-bit after the precision byte
        for marker in (b"\xff\xc0", b"\xff\xc2"):
            at = out.find(marker)
            if at >= 0:
                out[at + 5:at + 9] = struct.pack(">HH", height & 0xFFFF, width & 0xFFFF)
    elif ext == ".bmp":  # BITMAPINFOHEADER: signed 32-bit width and height at 18 and 22
        out[18:26] = struct.pack("<II", width & 0xFFFFFFFF, height & 0xFFFFFFFF)
    else:  # GIF: the logical screen at 6, the first image descriptor after the colour table
        out[6:10] = struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
        at = out.find(b"\x2c", 13)
        if at >= 0 and consistent:
            out[at + 5:at + 9] = struct.pack("<HH", width & 0xFFFF, height & 0xFFFF)
    return bytes(out)


@st.composite
def image_mutants(draw) -> tuple[str, bytes]:
    ext = draw(st.sampled_from(sorted(image_seeds())))
    data = image_seeds()[ext]
    for _ in range(draw(st.integers(1, 3))):
        if not data:
            break
        how = draw(st.sampled_from(("dims", "dims", "flip", "truncate", "header_flip")))
        if how == "dims":
            dims = st.one_of(st.sampled_from(INTERESTING_DIMS), st.integers(0, 600))
            data = set_dims(ext, data, draw(dims), draw(dims), draw(st.booleans()))
        elif how == "truncate":
            data = data[:draw(st.integers(0, len(data) - 1))]
        else:
            out = bytearray(data)
            span = min(len(out), 64) if how == "header_flip" else len(out)
            for _ in range(draw(st.integers(1, 8))):
                if span:
                    out[draw(st.integers(0, span - 1))] = draw(st.integers(0, 255))
            data = bytes(out)
    return ext, data


def _fuzz_images(folder: Path, n: int):
    from tflkit.core.limits import IMAGE_PIXELS
    from tflkit.data import load_dataset
    from tflkit.data.check import screen_images
    from tflkit.data.pipeline import _decode_file, make_dataset

    limit = IMAGE_PIXELS.value()
    tally = {"inputs": 0, "kept": 0, "skipped": 0}
    names = itertools.count()

    def batches(split):
        return [(x.shape, y.shape) for x, y in make_dataset(split, 32, batch_size=4)]

    @fuzz_settings(n)
    @given(image_mutants())
    def check(mutant):
        ext, data = mutant
        root = folder / f"d{next(names)}"
        (root / "train" / "a").mkdir(parents=True)
        (root / "train" / "b").mkdir()
        path = root / "train" / "a" / f"mutant{ext}"  # first in train/: the one the native size is probed from
        path.write_bytes(data)
        (root / "train" / "b" / "ok.png").write_bytes(image_seeds()[".png"])
        try:
            source = one_outcome(load_dataset, f"folder:{root}", val=0)
            if source is None:
                return
            logs = []
            one_outcome(screen_images, source, strict=False, log=logs.append)
            kept = str(path) in source.split("train").paths
            if kept:  # decoded by the pipeline: within the pixel limit
                shape = _decode_file(str(path)).shape
                assert shape[0] * shape[1] <= limit, f"decoded {shape} past a limit of {limit} pixels"
            else:
                assert any("skipped 1 unreadable" in line and path.name in line for line in logs), logs
            assert one_outcome(batches, source.split("train")) is not None
            strict = one_outcome(load_dataset, f"folder:{root}", val=0)
            assert (one_outcome(screen_images, strict, strict=True) is not None) == kept
        except BaseException:
            keep(data, f"image_found_{root.name}{ext}")
            raise
        tally["inputs"] += 1
        tally["kept" if kept else "skipped"] += 1

    start = time.perf_counter()
    check()
    print(f"\nfuzz image folder: {tally['inputs']} images in {time.perf_counter() - start:.1f} s: "
          f"{tally['kept']} decoded, {tally['skipped']} skipped as unreadable (strict: refused in one line)")
    assert tally["inputs"] >= min(examples(n), 10)


@pytest.mark.integration
def test_fuzz_image_folder(fuzz_env):
    pytest.importorskip("tensorflow")
    _fuzz_images(fuzz_env, 100)


@pytest.mark.slow
def test_fuzz_image_folder_slow(fuzz_env):
    pytest.importorskip("tensorflow")
    _fuzz_images(fuzz_env, 1000)
