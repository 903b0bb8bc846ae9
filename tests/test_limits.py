"""Issue 26, part 3: the stated limits (tflkit.core.limits), each refused fast and small, with the limit and its
variable named in one line. Each hostile input is read in a fresh process whose wall time and peak resident memory
(wait4's ru_maxrss) are measured and printed."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SEED = ROOT / "tests" / "corpus" / "tiny.seed.tflite"


def measured(code: str, *args, env=None) -> dict:
    """Run `code` (Python) in a fresh process: its stdout, stderr, exit code, wall seconds and peak RSS in MB."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    out, err = proc.communicate(timeout=120)  # reaps the child: its rusage comes from wait4 below instead
    return {"out": out, "err": err, "code": proc.returncode, "seconds": time.perf_counter() - start}


PEAK = ("import atexit, sys\n"
        "def _peak():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'): print('PEAK_KB', line.split()[1], file=sys.stderr, flush=True)\n"
        "atexit.register(_peak)\n")


def measured_rss(code: str, *args, env=None) -> dict:
    """As `measured`, with the child's own peak resident memory: VmHWM, read as it exits (ru_maxrss would not do:
    it survives exec, so a child of this TensorFlow-loaded pytest process would report pytest's figure)."""
    m = measured(PEAK + code, *args, env=env)
    peaks = [int(line.split()[1]) for line in m["err"].splitlines() if line.startswith("PEAK_KB")]
    m["err"] = "\n".join([m["out"].strip(), *(x for x in m["err"].splitlines() if not x.startswith("PEAK_KB"))])
    m["peak_mb"] = peaks[-1] / 1024 if peaks else float("inf")
    return m


def report(what: str, m: dict) -> None:
    print(f"\n{what}: refused in {m['seconds']:.2f} s, peak RSS {m.get('peak_mb', float('nan')):.0f} MB: "
          f"{m['err'].strip().splitlines()[-1] if m['err'].strip() else ''}")


def test_limit_values_and_the_variable_that_raises_them(monkeypatch):
    from tflkit.core.errors import UsageError
    from tflkit.core.limits import ALL, TFLITE_BYTES

    assert TFLITE_BYTES.value() == 2 << 30
    monkeypatch.setenv("TFLKIT_MAX_TFLITE_BYTES", "8G")
    assert TFLITE_BYTES.value() == 8 << 30
    monkeypatch.setenv("TFLKIT_MAX_TFLITE_BYTES", "lots")
    with pytest.raises(UsageError, match="TFLKIT_MAX_TFLITE_BYTES"):
        TFLITE_BYTES.value()
    assert len({limit.env for limit in ALL}) == len(ALL)


def test_a_10_gb_sparse_tflite_is_refused_in_seconds_and_megabytes(tmp_path):
    big = tmp_path / "huge.tflite"
    with open(big, "wb") as f:
        f.write(SEED.read_bytes())  # a real header: only the size gives it away
        f.truncate(10 * 10**9)
    for command in ("inspect", "bench"):
        m = measured_rss("import sys; from tflkit.cli import main; sys.exit(main(sys.argv[1:]))", command, big)
        report(f"tflkit {command} on a 10 GB sparse .tflite", m)
        assert m["code"] == 1 and m["seconds"] < 5 and m["peak_mb"] < 500
        assert "Traceback" not in m["err"]
        assert "over tflkit's limit" in m["err"] and "TFLKIT_MAX_TFLITE_BYTES" in m["err"]


def test_the_tflite_limit_is_raised_by_its_variable(tmp_path):
    code = ("import sys; from tflkit.tflite.runtime import check_tflite_file\n"
            "from tflkit.core.errors import TflkitError\n"
            "try: check_tflite_file(sys.argv[1]); print('ok')\n"
            "except TflkitError as e: print(e)")
    assert measured(code, SEED)["out"].strip() == "ok"
    low = measured(code, SEED, env={"TFLKIT_MAX_TFLITE_BYTES": "1K"})["out"]
    assert "2.2 KiB is over tflkit's limit" in low and "1.0 KiB" in low


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height 8-bit RGB pixels, with a few bytes of image data."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + \
        chunk(b"IEND", b"")


def test_a_decompression_bomb_png_is_refused_from_its_header(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(50_000, 50_000))
    code = ("import sys, time; from tflkit.data.check import image_header_problem\n"
            "print(image_header_problem(sys.argv[1]), file=sys.stderr)")
    m = measured_rss(code, bomb)
    report("a 50,000 x 50,000 PNG header (7.5 GB decoded)", m)
    assert m["code"] == 0 and m["seconds"] < 5 and m["peak_mb"] < 500
    assert "50000 x 50000" in m["err"] and "2,500,000,000 pixels" in m["err"] and "TFLKIT_MAX_IMAGE_PIXELS" in m["err"]
    small = tmp_path / "small.png"
    small.write_bytes(png_header(32, 32))
    from tflkit.data.check import image_header_problem, require_decodable

    assert image_header_problem(small) is None
    from tflkit.core.errors import DatasetError

    with pytest.raises(DatasetError, match="bomb.png: not decoded"):
        require_decodable([str(small), str(bomb)])


def test_a_bomb_in_an_image_folder_is_an_unreadable_file_never_decoded(tmp_path, monkeypatch):
    pytest.importorskip("tensorflow")
    from PIL import Image

    from tflkit.data.check import find_unreadable

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    good = tmp_path / "good.png"
    Image.new("RGB", (8, 8)).save(good)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(50_000, 50_000))
    start = time.perf_counter()
    bad = find_unreadable([str(good), str(bomb)])
    assert [p for p, _ in bad] == [str(bomb)] and "TFLKIT_MAX_IMAGE_PIXELS" in bad[0][1]
    assert time.perf_counter() - start < 30


BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi"))


def test_a_billion_laughs_yaml_is_refused_fast(tmp_path):
    bomb = tmp_path / "study.yaml"
    bomb.write_text(BILLION_LAUGHS)
    code = ("import sys; from tflkit.core.config import read_yaml\nfrom tflkit.core.errors import UsageError\n"
            "try: read_yaml(sys.argv[1])\nexcept UsageError as e: print(e, file=sys.stderr); sys.exit(2)")
    m = measured_rss(code, bomb)
    report(f"a billion-laughs YAML ({len(BILLION_LAUGHS)} bytes, 81 aliases, 4.9e8 nodes expanded)", m)
    assert m["code"] == 2 and m["seconds"] < 5 and m["peak_mb"] < 500
    assert "TFLKIT_MAX_YAML_NODES" in m["err"]
    many = tmp_path / "aliases.yaml"
    many.write_text("a: &a 1\nb: [" + ", ".join(["*a"] * 1001) + "]\n")
    from tflkit.core.config import read_yaml
    from tflkit.core.errors import UsageError

    with pytest.raises(UsageError, match="1,001 aliases is over .*TFLKIT_MAX_YAML_ALIASES"):
        read_yaml(many)
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as f:
        f.truncate(5 << 20)
    with pytest.raises(UsageError, match="5.0 MiB is over .*TFLKIT_MAX_YAML_BYTES"):
        read_yaml(huge)
    deep = tmp_path / "deep.yaml"
    deep.write_text("k: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(UsageError, match="nested too deeply"):
        read_yaml(deep)


def test_a_zip_bomb_posing_as_a_pth_is_refused_before_inflating(tmp_path):
    bomb = tmp_path / "resnet18-f37072fd.pth"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("archive/data.pkl", b"\x80\x02}q\x00.")  # an empty dict
        with archive.open("archive/data/0", "w", force_zip64=True) as member:
            zeros = b"\0" * (1 << 20)
            for _ in range(256):  # 256 MiB of zeros, about 250 KB deflated
                member.write(zeros)
    code = ("import sys; from tflkit.weights.pth import load_state_dict\nfrom tflkit.core.errors import TflkitError\n"
            "try: load_state_dict(sys.argv[1])\nexcept TflkitError as e: print(e, file=sys.stderr); sys.exit(1)")
    m = measured_rss(code, bomb)
    report(f"a zip bomb posing as a .pth ({bomb.stat().st_size / 1e3:.0f} KB, 256 MiB inflated)", m)
    assert m["code"] == 1 and m["seconds"] < 5 and m["peak_mb"] < 200
    assert "compression ratio" in m["err"] and "TFLKIT_MAX_ZIP_RATIO" in m["err"]


def test_a_labels_file_over_the_limit_is_refused(tmp_path, monkeypatch):
    from tflkit.core.errors import UsageError
    from tflkit.data.preprocess import read_labels

    path = tmp_path / "labels.txt"
    path.write_text("cat\ndog\n" * 1000)
    monkeypatch.setenv("TFLKIT_MAX_LABELS_BYTES", "1K")
    with pytest.raises(UsageError, match="--labels .*over tflkit's limit.*TFLKIT_MAX_LABELS_BYTES"):
        read_labels(path)


def test_a_100_gb_cifar_batch_is_refused_from_its_size(tmp_path):
    """numpy's MemoryError before the limit (np.fromfile asked for 100 GiB); a 6 GB one was read, then refused."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_fuzz_cifar_binary import write_cifar_bin

    for layout, name in (("bin", "data_batch_1.bin"), ("py", "data_batch_1")):
        root = tmp_path / layout
        if layout == "bin":
            folder = write_cifar_bin(root)
        else:
            from test_fuzz_weights_data import write_cifar

            folder = write_cifar(root, "cifar10")
        with open(folder / name, "r+b") as f:
            f.truncate(100 << 30)  # sparse: no disk taken
        code = "import sys\nfrom tflkit.cli import main\nsys.exit(main(['data', 'cifar10', '--data-dir', sys.argv[1]]))"
        m = measured_rss(code, root)
        report(f"a 100 GB sparse CIFAR-10 batch ({layout})", m)
        assert m["code"] == 1 and m["seconds"] < 30 and m["peak_mb"] < 500, m
        assert f"{name}: 100.0 GiB is over" in m["err"] and "TFLKIT_MAX_CIFAR_FILE_BYTES" in m["err"]
        assert "Traceback" not in m["err"]


def test_limits_are_listed_once_in_json():
    from tflkit.core.limits import ALL

    json.dumps({limit.env: limit.default for limit in ALL})  # docs/reliability.md's table is written from these
