"""Issue 26, part 5: every input the fuzzers (tests/test_fuzz_readers.py) or the crash scans found something with,
kept in tests/corpus/, replayed through the real CLI: each is a result or exactly one `tflkit: error:` line per file,
never a traceback, never a dead process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CORPUS = ROOT / "tests" / "corpus"
TFLITES = sorted((CORPUS / "tflite").glob("*.tflite"))


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


def test_the_other_readers_replay_the_corpus():
    """Non-.tflite finds (YAML, labels, logs), each through the reader the CLI uses for it."""
    code = ("import sys\nfrom tflkit.errors import TflkitError\n"
            "from tflkit.config import read_yaml\nfrom tflkit.data.preprocess import read_labels\n"
            "from android_bench.parser import parse_log, read_log_text\n"
            "for p in sys.argv[1:]:\n"
            "    try:\n"
            "        if p.endswith('.yaml'): read_yaml(p)\n"
            "        elif p.endswith('.txt'): read_labels(p)\n"
            "        else: parse_log(read_log_text(p))\n"
            "    except TflkitError as e: print('tflkit: error:', e, file=sys.stderr)\n")
    files = sorted(p for p in CORPUS.glob("*/*") if p.suffix != ".tflite")
    done = subprocess.run([sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_a_space_file_with_a_number_for_a_field_name():
    """Found by the YAML fuzzer: tflkit/tune/space.py joined a non-string key into its message (TypeError)."""
    pytest.importorskip("tensorflow")
    from tflkit.errors import UsageError
    from tflkit.tune.space import load_space

    with pytest.raises(UsageError):
        load_space(CORPUS / "yaml" / "space_int_key.yaml", "test_mobilenetv3")
