"""Issue 26, parts 1 and 2: a .tflite LiteRT cannot describe (a tensor name that is not UTF-8) or that crashes it (a
segfault while it runs) is one line naming the file and a failed item in inspect, bench and eval, and the other
files are still measured: every load goes through one child process per file first (tflkit.tflite.check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CORPUS = ROOT / "tests" / "corpus"
SEED = CORPUS / "tiny.seed.tflite"
NOT_UTF8 = CORPUS / "tflite" / "name_not_utf8.tflite"  # made by tests/tflite_mutants.name_not_utf8 from the seed
SEGV = CORPUS / "tflite" / "segv_builtin_invoke_tensor_index.tflite"  # SIGSEGV in the built-in kernels' invoke


def tflkit(*args, env=None):
    return subprocess.run([sys.executable, "-m", "tflkit", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, env={**os.environ, **(env or {})})


def test_the_not_utf8_mutant_reproduces_the_bug_in_plain_litert():
    sys.path.insert(0, str(Path(__file__).parent))
    from tflite_mutants import name_not_utf8

    assert name_not_utf8(SEED.read_bytes(), b"arith.constant") == NOT_UTF8.read_bytes()
    code = ("import sys; from ai_edge_litert.interpreter import Interpreter, OpResolverType\n"
            "i = Interpreter(model_path=sys.argv[1], experimental_op_resolver_type="
            "OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)\n"
            "i.allocate_tensors(); i.get_input_details(); i._get_tensor_details(2, 0)")
    done = subprocess.run([sys.executable, "-c", code, str(NOT_UTF8)], capture_output=True, text=True)
    assert "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xf5" in done.stderr  # LiteRT's own behaviour


def test_inspect_names_the_file_and_the_problem_in_one_line():
    done = tflkit("inspect", NOT_UTF8)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"tflkit: error: cannot load {NOT_UTF8}: the name of tensor 2 is not UTF-8 "
                                   f"(byte f5 at position 2)")


def test_bench_fails_the_broken_files_and_measures_the_good_one():
    done = tflkit("bench", SEED, NOT_UTF8, SEGV, "--runs", "3", "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    reply = json.loads(done.stdout)
    assert [r["model"] for r in reply["results"] if r["status"] == "ok"] == [SEED.name]
    messages = {e["item"].split()[0]: e["message"] for e in reply["errors"]}
    assert "not UTF-8" in messages[NOT_UTF8.name]
    assert messages[SEGV.name] == (f"load_failed: the LiteRT interpreter crashed running {SEGV.name} "
                                   f"(signal 11, SIGSEGV)")


def three_class_folder(root: Path) -> Path:
    """train/ and test/ of 3 classes (the seed's 3 outputs), two 8x8 PNGs each."""
    from PIL import Image

    for split in ("train", "test"):
        for k, name in enumerate("abc"):
            (root / split / name).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (8, 8), (80 * k, 40 * i, 0)).save(root / split / name / f"{i}.png")
    return root


def test_eval_fails_the_broken_files_and_scores_the_good_one(tmp_path):
    pytest.importorskip("tensorflow")
    data = three_class_folder(tmp_path / "data")
    done = tflkit("eval", SEED, NOT_UTF8, SEGV, "--dataset", f"folder:{data}", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("tflkit: error:")]
    assert len(errors) == 2 and NOT_UTF8.name in errors[0] and "crashed running" in errors[1], done.stderr
    assert done.returncode == 1 and f"{SEED.name}: top1" in done.stdout


def test_one_child_per_file_per_command(monkeypatch):
    from tflkit.tflite import check as tflite_check
    from tflkit.tflite.describe import describe

    calls = []
    real = tflite_check.isolate.call

    def counted(func, *args, **kwargs):
        calls.append(func)
        return real(func, *args, **kwargs)

    monkeypatch.setattr(tflite_check.isolate, "call", counted)
    monkeypatch.setattr(tflite_check, "_OUTCOMES", {})
    describe(SEED, layers=True)  # nine loads of the file: op table, I/O, parameters, arena twice, MACs twice, ...
    assert len(calls) == 1
    monkeypatch.setenv("TFLKIT_TFLITE_CHILD_CHECK", "0")
    monkeypatch.setattr(tflite_check, "_OUTCOMES", {})
    describe(SEED)
    assert len(calls) == 1


def test_the_cost_of_the_check(tmp_path):
    """What the child costs a file: measured here on the 2 KB seed and on a registry-size model when one is at
    hand (printed; docs/reliability.md points here for the figures)."""
    from tflkit.tflite import check as tflite_check

    files = [SEED]
    shared = ROOT.parent / "shared" / "data"
    mobilenet = shared / "weights" / "mobilenet_v3_small" / "v3-small_224_1.0_uint8.tflite"  # 2.5 M params, 224 px
    files += [mobilenet] if mobilenet.is_file() else []
    for path in files:
        times = []
        for _ in range(3):
            tflite_check._OUTCOMES.clear()
            start = time.perf_counter()
            outcome = tflite_check.checked(path)
            times.append((time.perf_counter() - start) * 1e3)
        assert outcome["builtin"] is None, outcome
        print(f"\nchild check of {path.name} ({path.stat().st_size / 1e6:.2f} MB): median {sorted(times)[1]:.0f} ms "
              f"({', '.join(f'{t:.0f}' for t in times)} ms)")
        assert sorted(times)[1] < 30_000
