"""Issue 26: every reader of a file tflkit did not write, fuzzed. One outcome per input: a valid result or a
TflkitError whose message is one line; never another exception, never a hang (each input under a wall-clock alarm),
never a dead process (a .tflite is loaded in a child first: tflkit.tflite.check).

Readers: the .tflite readers behind `tflkit inspect`, `bench` and `eval` (structure-aware mutants of a real 2 KB
model: uoffsets, shape dims, buffer / opcode / tensor indices, types, vector lengths and string bytes, from
tests/tflite_mutants.py, plus random byte flips and truncations), labels files (read_labels), study and tune YAML
(tflkit.core.config.read_yaml, as load_study and load_space read them), and benchmark_model logs (parse_log on mutated
copies of ../shared/fixtures/benchmark_model/).

Why Hypothesis rather than atheris: atheris does install here (`pip install atheris` takes a 35 MB manylinux
wheel, atheris 3.0.0 for CPython 3.11), but its coverage guidance sees only Python code unless the native library is
built with -fsanitize=fuzzer, and LiteRT's wheel is not: the crashes that matter are inside LiteRT, where atheris
would be a random mutator. It also runs as its own libFuzzer process that stops at the first native crash, which
is exactly what tflkit now isolates in a child. Hypothesis is already a test dependency, runs inside pytest with a
fixed, derandomized number of examples (the default suite stays bounded), generates structure (a flatbuffer field
and a value, a YAML token, a log line) rather than only bytes, and shrinks a failure to the smallest mutant.

Default settings run a few hundred inputs in all (about a minute on 2 busy cores); `-m slow` runs 1,000 a reader.
`FUZZ_EXAMPLES=N` overrides both. Inputs that found something are kept in tests/corpus/ and replayed through the
real CLI by tests/test_corpus_replay.py.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from tflite_mutants import INTERESTING_32, KINDS, field_sites, mutate  # noqa: E402

from tflkit.core.errors import TflkitError  # noqa: E402

CORPUS = Path(__file__).parent / "corpus"
SEED = CORPUS / "tiny.seed.tflite"  # Conv2D(4, 3) -> GlobalAveragePooling2D -> Dense(3) on 8x8x3, 2,248 bytes
LOGS = Path(__file__).parents[2] / "shared" / "fixtures" / "benchmark_model"
PER_INPUT_S = 60  # a hang is an input that takes longer than this
FOUND = Path(os.environ.get("FUZZ_FOUND_DIR", "/tmp/tflkit-fuzz-found"))  # where a slow run keeps what it found


def examples(default: int) -> int:
    return int(os.environ.get("FUZZ_EXAMPLES", default))


def fuzz_settings(n: int):
    return settings(max_examples=examples(n), deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: int = PER_INPUT_S):
    def alarm(*_):
        raise Hang(f"no outcome after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_outcome(read, *args, **kwargs):
    """`read(...)`'s result, or None for a TflkitError of one line; any other exception fails the test."""
    with time_limit():
        try:
            return read(*args, **kwargs)
        except TflkitError as exc:
            assert "\n" not in str(exc).strip(), f"a multi-line error: {exc!r}"
            return None


def keep(data: bytes | str, name: str) -> None:
    """Write an input that found something where the slow run collects them (for tests/corpus/)."""
    FOUND.mkdir(parents=True, exist_ok=True)
    (FOUND / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# ------------------------------------------------------------------------------------------------------- .tflite

SEED_BYTES = SEED.read_bytes()
SITES = field_sites(SEED_BYTES)


@st.composite
def tflite_mutants(draw) -> bytes:
    """One to three structural edits, or byte flips, or a truncation, of the seed model."""
    how = draw(st.sampled_from(("field", "field", "field", "flip", "truncate")))
    data = SEED_BYTES
    if how == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    if how == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        return bytes(out)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from([k for k in KINDS if SITES[k]]))
        site = draw(st.sampled_from(SITES[kind]))
        if kind in ("type", "string"):
            value = draw(st.integers(0, 255))
        else:
            value = draw(st.one_of(st.sampled_from(INTERESTING_32), st.integers(-(1 << 31), (1 << 32) - 1)))
        data = mutate(data, kind, site, value)
    return data


def read_tflite_every_way(path: Path):
    """What inspect, bench and eval read of a file: describe() (every .tflite reader), a short benchmark, and the
    preprocessing eval would pick (TFLite metadata, input quantization)."""
    from tflkit.bench.host import BenchSettings, bench_model
    from tflkit.data.preprocess import for_model
    from tflkit.tflite.describe import describe

    outcomes = [one_outcome(describe, path, layers=True)]
    outcomes.append(one_outcome(bench_model, path, BenchSettings(runs=2, warmup=1, max_seconds=5)))
    outcomes.append(one_outcome(for_model, path, log=lambda *_: None))
    return outcomes


def _fuzz_tflite(tmp_path_factory, n: int):
    folder = tmp_path_factory.mktemp("tflite_fuzz")
    tally = {"inputs": 0, "refused": 0, "read": 0}
    start = time.perf_counter()

    names = itertools.count()

    @fuzz_settings(n)
    @given(tflite_mutants())
    def check(data):
        path = folder / f"m{next(names)}.tflite"  # a new name each: never another mutant's cached check
        path.write_bytes(data)
        from tflkit.tflite import check as tflite_check

        outcome = tflite_check.checked(path)
        if any(v and "crashed" in v for v in outcome.values()):
            keep(data, f"tflite_crash_{path.name}")
        try:
            describe_result = read_tflite_every_way(path)[0]
        except Exception:
            keep(data, f"tflite_found_{path.name}")
            raise
        tally["inputs"] += 1
        tally["read" if describe_result is not None else "refused"] += 1

    check()
    print(f"\nfuzz .tflite: {tally['inputs']} mutants in {time.perf_counter() - start:.1f} s: "
          f"{tally['read']} read, {tally['refused']} refused in one line")
    assert tally["inputs"] >= min(examples(n), 10)


@pytest.mark.integration
def test_fuzz_tflite_readers(tmp_path_factory):
    _fuzz_tflite(tmp_path_factory, 30)


@pytest.mark.slow
def test_fuzz_tflite_readers_slow(tmp_path_factory):
    _fuzz_tflite(tmp_path_factory, 1000)


# ------------------------------------------------------------------------------------------------------- labels

label_text = st.one_of(
    st.text(max_size=400),
    st.lists(st.one_of(st.from_regex(r"\A\d{1,4}\s*:\s*\w{0,12}\Z"), st.from_regex(r"\An\d{8} \w{1,12}\Z"),
                       st.text(max_size=30)), max_size=30).map("\n".join),
)


def _fuzz_labels(tmp_path_factory, n: int):
    from tflkit.data.preprocess import class_outputs, read_labels

    folder = tmp_path_factory.mktemp("labels_fuzz")
    count = {"n": 0}

    @fuzz_settings(n)
    @given(st.one_of(label_text.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=400)))
    def check(data):
        path = folder / "labels.txt"
        path.write_bytes(data)
        labels = one_outcome(read_labels, path)
        if labels is not None:
            assert isinstance(labels, list) and all(isinstance(x, str) for x in labels)
            one_outcome(class_outputs, len(labels) + 1, ["a", "b"], labels, "m.tflite", log=lambda *_: None)
        count["n"] += 1

    start = time.perf_counter()
    check()
    print(f"\nfuzz labels: {count['n']} files in {time.perf_counter() - start:.1f} s")


def test_fuzz_labels(tmp_path_factory):
    _fuzz_labels(tmp_path_factory, 100)


@pytest.mark.slow
def test_fuzz_labels_slow(tmp_path_factory):
    _fuzz_labels(tmp_path_factory, 1000)


# ------------------------------------------------------------------------------------------------------- YAML

STUDY = (Path(__file__).parents[1] / "benchmarks" / "studies" / "smoke.yaml").read_text()
SPACE = "lr: {low: 1e-4, high: 1e-2, log: true}\nbatch_size: {choices: [32, 64]}\nlabel_smoothing: 0.1\n"
YAML_PIECES = ("&a ", "*a", "<<: *a\n", "[", "]", "{", "}", ": ", "- ", "\n  ", "!!python/object:os.system ",
               "!!binary ", "~", "1e-3", "'", '"', "\t", "---\n", "...\n", "? ", "|\n", ">-\n", "\\x00", "\ufeff",
               "[*a, *a, *a, *a]", "&b [*a, *a, *a]")


@st.composite
def yaml_mutants(draw) -> str:
    text = draw(st.sampled_from((STUDY, SPACE)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(("insert", "delete", "replace")))
        piece = draw(st.one_of(st.sampled_from(YAML_PIECES), st.text(max_size=8)))
        if action == "insert":
            text = text[:at] + piece + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        else:
            text = text[:at] + piece + text[at + len(piece):]
    return text


def _fuzz_yaml(tmp_path_factory, n: int):
    from tflkit.core.config import read_yaml
    from tflkit.study.spec import load_study
    from tflkit.tune.space import load_space

    folder = tmp_path_factory.mktemp("yaml_fuzz")
    count = {"n": 0, "study_ok": 0, "space_ok": 0}

    @fuzz_settings(n)
    @given(st.one_of(yaml_mutants().map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=300)))
    def check(data):
        path = folder / "file.yaml"
        path.write_bytes(data)
        if one_outcome(read_yaml, path) is not None:
            count["study_ok"] += one_outcome(load_study, path) is not None
            count["space_ok"] += one_outcome(load_space, path, "test_mobilenetv3") is not None
        count["n"] += 1

    start = time.perf_counter()
    check()
    print(f"\nfuzz YAML: {count['n']} files in {time.perf_counter() - start:.1f} s ({count['study_ok']} valid studies, "
          f"{count['space_ok']} valid spaces)")


def test_fuzz_study_and_tune_yaml(tmp_path_factory):
    _fuzz_yaml(tmp_path_factory, 100)


@pytest.mark.slow
def test_fuzz_study_and_tune_yaml_slow(tmp_path_factory):
    _fuzz_yaml(tmp_path_factory, 1000)


# ------------------------------------------------------------------------------------------------------- logs

LOG_FILES = sorted(LOGS.glob("*.txt")) if LOGS.is_dir() else []
LOG_PIECES = ("Inference timings in us: ", "count=", "avg=", "std=", "min=", "max=", "Init: ", "First inference: ",
              "Warmup (avg): ", "Memory footprint delta from the start of the tool (MB): ", "Replacing ",
              " out of ", " node(s) with delegate", "nan", "inf", "-1", "1e309", "99999999999999999999",
              "============================== Summary by node type ==============================\n",
              "\t", "\x00", "\r", "\n", "ERROR: ", "Segmentation fault", "[", "]", "%")


@st.composite
def log_mutants(draw) -> bytes:
    text = draw(st.sampled_from(LOG_FILES)).read_text(errors="replace")
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 10))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(("digits", "piece", "drop", "dup", "cut")))
        line = lines[i]
        if action == "digits":
            lines[i] = "".join(draw(st.sampled_from("0123456789-.e")) if c.isdigit() else c for c in line)
        elif action == "piece":
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(st.one_of(st.sampled_from(LOG_PIECES), st.text(max_size=10))) + line[at:]
        elif action == "drop":
            del lines[i]
        elif action == "dup":
            lines[i:i] = [line] * draw(st.integers(1, 50))
        else:
            lines = lines[:i]
    data = "".join(lines).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 5))):
            if out:
                out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        data = bytes(out)
    return data


def _fuzz_logs(tmp_path_factory, n: int):
    from android_bench.parser import parse_log, read_log_text

    folder = tmp_path_factory.mktemp("log_fuzz")
    count = {"n": 0, "parsed": 0}

    @fuzz_settings(n)
    @given(log_mutants())
    def check(data):
        path = folder / "run.log"
        path.write_bytes(data)
        text = one_outcome(read_log_text, path)
        if text is not None:
            parsed = one_outcome(parse_log, text)
            if parsed is not None:
                parsed.result.to_dict()  # the row is written as JSON/CSV: it must be one
                count["parsed"] += 1
        count["n"] += 1

    start = time.perf_counter()
    check()
    print(f"\nfuzz benchmark_model logs: {count['n']} logs in {time.perf_counter() - start:.1f} s "
          f"({count['parsed']} parsed)")


@pytest.mark.skipif(not LOG_FILES, reason="needs ../shared/fixtures/benchmark_model")
def test_fuzz_benchmark_model_logs(tmp_path_factory):
    _fuzz_logs(tmp_path_factory, 100)


@pytest.mark.slow
@pytest.mark.skipif(not LOG_FILES, reason="needs ../shared/fixtures/benchmark_model")
def test_fuzz_benchmark_model_logs_slow(tmp_path_factory):
    _fuzz_logs(tmp_path_factory, 1000)
