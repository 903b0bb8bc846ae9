"""Issue 26, part 5: every input the fuzzers (tests/test_fuzz_readers.py) or the crash scans found something with,
kept in tests/corpus/, replayed through the real CLI: each is a result or exactly one `tflkit: error:` line per file,
never a traceback, never a dead process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
CORPUS = ROOT / "tests" / "corpus"
TFLITES = sorted((CORPUS / "tflite").glob("*.tflite"))
# from tests/test_fuzz_weights_data.py: weights files, CIFAR batches (`<case>__<the file it replaces>`), images
WEIGHTS = sorted((CORPUS / "pth").glob("*.pth")) + sorted((CORPUS / "h5").glob("*.h5"))
CIFAR = sorted((CORPUS / "cifar").glob("*__*"))
CIFAR_BIN = sorted((CORPUS / "cifar_bin").glob("*__*"))  # tests/test_fuzz_cifar_binary.py, the same naming
# tests/test_fuzz_mobilenetv3.py: `<case>__<registry model>.tflite`, or `.json`: bytes to change in a file of
# ../shared/data (which is never copied into the repository)
WEIGHTS_TFLITE = sorted((CORPUS / "weights_tflite").glob("*__*"))
SHARED_DATA = ROOT.parent / "shared" / "data"
IMAGES = sorted((CORPUS / "images").glob("*"))


def tflkit(*args, env=None):
    return subprocess.run([sys.executable, "-m", "tflkit", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env={**os.environ, **(env or {})})


def assert_clean(done, files):
    assert done.returncode in (0, 1, 2), done.returncode  # a negative code is a signal: a crash
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("tflkit: error:")]
    for path in files:
        assert sum(path.name in line for line in errors) <= 1, errors


@pytest.mark.parametrize("path", TFLITES, ids=[p.name for p in TFLITES])
def test_inspect_replays_the_corpus(path):
    done = tflkit("inspect", path, "--layers")
    assert_clean(done, [path])
    errors = [line for line in done.stderr.splitlines() if line.startswith("tflkit: error:")]
    assert (done.returncode == 0 and not errors) or (done.returncode == 1 and len(errors) == 1), done.stderr


def test_bench_replays_the_corpus():
    done = tflkit("bench", *TFLITES, "--runs", "2", "--warmup", "1", "--json")
    assert_clean(done, TFLITES)
    reply = json.loads(done.stdout)
    named = {r["model"] for r in reply["results"]}
    assert named == {p.name for p in TFLITES}  # every file a row: measured or failed, none lost


def test_eval_replays_the_corpus(tmp_path):
    pytest.importorskip("tensorflow")
    from test_tflite_check import three_class_folder

    data = three_class_folder(tmp_path / "data")
    done = tflkit("eval", *TFLITES, "--dataset", f"folder:{data}", "--json", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert_clean(done, TFLITES)
    reply = json.loads(done.stdout)
    assert len(reply["results"]) + len(reply["errors"]) == len(TFLITES)
    # XNNPACK refuses it, the built-in kernels run it: scored on them (eval's output-shape and input-quantization
    # probes asked XNNPACK and ended the evaluation with its refusal)
    assert "oom_xnnpack_static_shape.tflite" in {r["model"] for r in reply["results"]}, done.stderr


def test_the_memory_probe_is_bounded_like_the_check():
    """`bench`'s resident-memory probe (tflkit.bench.memprobe, a fresh process) loaded the file with XNNPACK and no cap:
    the 4.5 GB static shape the child check refuses took 17 GB of resident memory there and 37 s. Now it is probed
    on the built-in kernels its row ran on, and the probe itself is capped as the check is."""
    path = CORPUS / "tflite" / "oom_xnnpack_static_shape.tflite"
    done = tflkit("bench", path, "--runs", "2", "--warmup", "1", "--json")
    assert_clean(done, [path])
    rows = {r["delegate"]: r for r in json.loads(done.stdout)["results"]}
    assert rows["xnnpack"]["status"] == "xnnpack_failed" and rows["cpu"]["status"] == "ok", rows
    assert rows["cpu"]["rss_delta_mb"] is not None and rows["cpu"]["rss_delta_mb"] < 200, rows["cpu"]
    probe = subprocess.run([sys.executable, "-m", "tflkit.bench.memprobe", str(path)], capture_output=True, text=True,
                           cwd=ROOT, timeout=60)
    assert probe.returncode == 1 and "XNNPACK refused" in probe.stderr and "Traceback" not in probe.stderr


def test_the_other_readers_replay_the_corpus():
    """Non-.tflite finds (YAML, labels, logs), each through the reader the CLI uses for it."""
    code = ("import sys\nfrom tflkit.core.errors import TflkitError\n"
            "from tflkit.core.config import read_yaml\nfrom tflkit.data.preprocess import read_labels\n"
            "from android_bench.parser import parse_log, read_log_text\n"
            "for p in sys.argv[1:]:\n"
            "    try:\n"
            "        if p.endswith('.yaml'): read_yaml(p)\n"
            "        elif p.endswith('.txt'): read_labels(p)\n"
            "        else: parse_log(read_log_text(p))\n"
            "    except TflkitError as e: print('tflkit: error:', e, file=sys.stderr)\n")
    files = sorted(p for p in CORPUS.glob("*/*")
                   if p.parent.name not in ("tflite", "pth", "h5", "cifar", "cifar_bin", "images"))
    done = subprocess.run([sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_a_space_file_with_a_number_for_a_field_name():
    """Found by the YAML fuzzer: tflkit/tune/space.py joined a non-string key into its message (TypeError)."""
    pytest.importorskip("tensorflow")
    from tflkit.core.errors import UsageError
    from tflkit.tune.space import load_space

    with pytest.raises(UsageError):
        load_space(CORPUS / "yaml" / "space_int_key.yaml", "test_mobilenetv3")


# Each (name, argv) through tflkit.cli.main in one process, TensorFlow imported once (a `tflkit weights import` is
# 8 s, most of it the import): what each printed on stderr between its markers, and its exit code.
RUN_EACH = ("import json, sys, traceback\nfrom tflkit.cli import main\n"
            "for name, argv in json.loads(sys.argv[1]):\n"
            "    print('@@ begin', name, file=sys.stderr, flush=True)\n"
            "    try:\n"
            "        code = main(argv)\n"
            "    except BaseException:\n"
            "        traceback.print_exc()\n"
            "        code = 'traceback'\n"
            "    sys.stderr.flush()\n"
            "    print('@@ end', name, code, file=sys.stderr, flush=True)\n")


def cli_each(runs) -> dict[str, tuple[str, list[str]]]:
    done = subprocess.run([sys.executable, "-c", RUN_EACH, json.dumps([(n, list(map(str, a))) for n, a in runs])],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]  # a signal or an exit mid-loop: a crash
    results, name, lines = {}, None, []
    for line in done.stderr.splitlines():
        if line.startswith("@@ begin "):
            name, lines = line[len("@@ begin "):], []
        elif line.startswith("@@ end "):
            results[name] = (line.rsplit(" ", 1)[1], lines)
            name = None
        elif name is not None:
            lines.append(line)
    assert len(results) == len(runs), done.stderr[-3000:]
    return results


def one_error_line(code: str, lines: list[str], names: str) -> str:
    errors = [line for line in lines if line.startswith("tflkit: error:")]
    assert code == "1" and len(errors) == 1 and names in errors[0], (code, lines)
    assert not any("Traceback" in line for line in lines), lines
    return errors[0]


def test_weights_import_refuses_the_corpus(tmp_path):
    """Every .pth and .h5 the fuzzer (or the reading that followed it) found a traceback, a multi-line error, an
    unbounded allocation or a silent success with: one line naming the file, exit 1, nothing written."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("h5py")
    runs = [(p.name, ["weights", "import", p, "--model", "test_resnet" if p.suffix == ".pth" else "test_squeezenet",
                      "--out", tmp_path / f"{p.name}.keras"]) for p in WEIGHTS]
    for path, (code, lines) in zip(WEIGHTS, cli_each(runs).values()):
        one_error_line(code, lines, path.name)
        assert not (tmp_path / f"{path.name}.keras").exists()


def built_from_shared(recipe: Path, folder: Path) -> Path | None:
    """The mutant a .json entry describes, written into `folder`; None when its seed is not here as recorded."""
    import hashlib

    entry = json.loads(recipe.read_text())
    seed = SHARED_DATA / entry["seed"]
    if not seed.is_file() or hashlib.sha256(seed.read_bytes()).hexdigest() != entry["seed_sha256"]:
        return None
    data = bytearray(seed.read_bytes())
    for at, value in entry["bytes"].items():
        data[int(at)] = value
    path = folder / f"{recipe.stem}.tflite"
    path.write_bytes(bytes(data))
    return path


def test_weights_import_refuses_the_tflite_weights_corpus(tmp_path):
    """A weight tensor whose buffer holds no data (a buffer table's offset made 0): LiteRT's get_tensor raised
    ValueError out of `tflkit weights import FILE.tflite` (a traceback); one line naming the file now, exit 1."""
    pytest.importorskip("tensorflow")
    files = [p if p.suffix == ".tflite" else built_from_shared(p, tmp_path) for p in WEIGHTS_TFLITE]
    files = [p for p in files if p is not None]
    assert any(p.parent == CORPUS / "weights_tflite" for p in files)  # the one kept in the repository
    runs = [(p.name, ["weights", "import", p, "--model", p.stem.split("__")[1], "--out", tmp_path / f"{p.stem}.keras"])
            for p in files]
    for path, (code, lines) in zip(files, cli_each(runs).values()):
        assert "holds no data" in one_error_line(code, lines, path.name)
        assert not (tmp_path / f"{path.stem}.keras").exists()


def test_a_pth_cannot_change_how_later_files_decode(tmp_path):
    """storage_type_build.pth BUILDs on torch.FloatStorage; the stand-in was shared, so every later file this process
    read decoded its float32 tensors as int8."""
    from test_weights_pth import write_pth

    from tflkit.core.errors import ModelFileError
    from tflkit.weights.pth import load_state_dict

    with pytest.raises(ModelFileError, match="storage_type_build.pth"):
        load_state_dict(CORPUS / "pth" / "storage_type_build.pth")
    write_pth(tmp_path / "good.pth", {"fc.bias": np.arange(3, dtype=np.float32) + 0.5})
    bias = load_state_dict(tmp_path / "good.pth")["fc.bias"]
    assert bias.dtype == np.float32 and bias.tolist() == [0.5, 1.5, 2.5]


READABLE_CIFAR = {"dtype_flags_51__data_batch_1", "reconstruct_shape_2e40__data_batch_1"}  # plain arrays once rebuilt


def test_data_replays_the_cifar_corpus(tmp_path):
    """Each batch file put in place of the one it names in a tiny CIFAR-10 layout, read by `tflkit data cifar10`:
    refused in one line naming the file (two read: what numpy's reconstructors trusted is ignored now)."""
    from test_fuzz_weights_data import write_cifar

    runs = []
    for path in CIFAR:
        root = tmp_path / path.name
        (write_cifar(root, "cifar10") / path.name.split("__")[1]).write_bytes(path.read_bytes())
        runs.append((path.name, ["data", "cifar10", "--data-dir", root]))
    for path, (code, lines) in zip(CIFAR, cli_each(runs).values()):
        if path.name in READABLE_CIFAR:
            assert code == "0" and not any("Traceback" in line for line in lines), lines
        else:
            one_error_line(code, lines, path.name.split("__")[1])


def test_data_replays_the_cifar_binary_corpus(tmp_path):
    """Each file in place of the one it names in a tiny cifar-10-batches-bin/, read by `tflkit data cifar10`: an
    empty batches.meta.txt (a dataset of no classes, labels 0..9), one NUL (one class), bytes that are not UTF-8
    (UnicodeDecodeError): refused in one line naming the file."""
    from test_fuzz_cifar_binary import write_cifar_bin

    runs = []
    for path in CIFAR_BIN:
        root = tmp_path / path.name
        (write_cifar_bin(root) / path.name.split("__")[1]).write_bytes(path.read_bytes())
        runs.append((path.name, ["data", "cifar10", "--data-dir", root]))
    assert runs
    for path, (code, lines) in zip(CIFAR_BIN, cli_each(runs).values()):
        one_error_line(code, lines, path.name.split("__")[1])


def test_data_check_replays_the_image_corpus(tmp_path):
    """Each image first in train/ of a folder dataset (the one the native size is probed from), beside one good PNG:
    `tflkit data folder:... --check` names it unreadable; no traceback."""
    from PIL import Image

    runs = []
    for path in IMAGES:
        root = tmp_path / path.stem
        (root / "train" / "a").mkdir(parents=True)
        (root / "train" / "b").mkdir()
        (root / "train" / "a" / path.name).write_bytes(path.read_bytes())
        Image.new("RGB", (8, 8)).save(root / "train" / "b" / "ok.png")
        runs.append((path.name, ["data", f"folder:{root}", "--check"]))
    for path, (code, lines) in zip(IMAGES, cli_each(runs).values()):
        assert code == "1" and not any("Traceback" in line for line in lines), (path.name, code, lines)
