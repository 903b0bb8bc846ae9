"""tflkit.core.isolate, the one way tflkit runs work in another process: typed values in and out, messages in order
as they happen, the child's exception as itself, a crash, a timeout or the memory cap as Crashed (naming the signal
and the last message), one reused child in a Worker, a child that dies with its parent, and a child that imports
only what its function needs (no TensorFlow for a benchmark)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tflkit.core import isolate
from tflkit.core.errors import UsageError

HERE = Path(__file__).parent
SEED = HERE / "corpus" / "tiny.seed.tflite"
# The child imports this module to unpickle its functions: it must find it as the tests do (tests/ on sys.path).
ENV = {"PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)}


@dataclass(frozen=True)
class Point:
    x: int
    y: float


def moved(point: Point, by: int = 1) -> Point:
    return Point(point.x + by, point.y * 2)


def count(n: int) -> int:
    for i in range(n):
        isolate.send(i)
    return n


def refuse(name: str) -> None:
    raise UsageError(f"unknown model {name!r}")


class Unsendable(Exception):
    def __init__(self, a, b):  # two arguments, one in args: pickle cannot rebuild it
        super().__init__(a)
        self.b = b


def refuse_unsendably() -> None:
    raise Unsendable("no way back", 2)


def segfault_after(stage: str) -> None:
    isolate.send(stage)
    os.kill(os.getpid(), signal.SIGSEGV)


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes << 20))


def tick_forever() -> None:
    for i in range(10**9):
        isolate.send(i)
        time.sleep(0.01)


def tensorflow_imported() -> bool:
    return "tensorflow" in sys.modules


def bench_without_tensorflow(path: str):
    """The study's host benchmark and the resident-memory probe, then whether either imported TensorFlow."""
    from tflkit.bench.host import BenchSettings, bench_files
    from tflkit.bench.memprobe import probe

    results = bench_files([path], [1], BenchSettings(runs=2, warmup=1))
    return results, probe(path), "tensorflow" in sys.modules


def call(func, *args, **kwargs):
    return isolate.call(func, *args, env=ENV, **kwargs)


def test_typed_values_in_and_out():
    assert call(moved, Point(1, 1.5), by=3) == Point(4, 3.0)


def test_messages_arrive_in_order_before_the_result():
    seen = []
    assert call(count, 5, on_message=seen.append) == 5
    assert seen == [0, 1, 2, 3, 4]


def test_the_exception_comes_back_as_itself():
    with pytest.raises(UsageError, match="unknown model 'x'") as raised:
        call(refuse, "x")
    assert raised.value.exit_code == 2


def test_an_exception_that_cannot_travel_is_a_remote_error_with_its_line():
    with pytest.raises(isolate.RemoteError, match="Unsendable: no way back"):
        call(refuse_unsendably)


def test_a_function_the_child_cannot_import_is_an_error_not_a_crash():
    with pytest.raises(ModuleNotFoundError, match="test_isolate"):
        isolate.call(count, 1, env={"PYTHONPATH": os.environ.get("PYTHONPATH", "")})


def test_a_segfault_is_crashed_naming_the_signal_and_the_last_message():
    with pytest.raises(isolate.Crashed, match=r"segfault_after crashed \(killed by SIGSEGV\)") as raised:
        call(segfault_after, "invoke")
    assert raised.value.code == -signal.SIGSEGV and raised.value.last_message == "invoke"


def test_the_memory_cap_is_a_memory_error():
    assert call(allocate, 8, memory_bytes=1 << 30) == 8 << 20
    with pytest.raises(MemoryError):
        call(allocate, 2048, memory_bytes=1 << 30)


def test_a_timeout_is_crashed_and_the_child_is_gone():
    start = time.monotonic()
    with pytest.raises(isolate.Crashed, match="timed out after 0.5 s") as raised:
        call(tick_forever, timeout=0.5)
    assert raised.value.code is None and isinstance(raised.value.last_message, int)
    assert time.monotonic() - start < 5


def test_a_worker_reuses_one_child_and_replaces_a_crashed_one():
    with isolate.Worker(env=ENV) as worker:
        first = worker.call(os.getpid)
        assert worker.call(os.getpid) == first == worker.pid
        with pytest.raises(isolate.Crashed, match="SIGSEGV"):
            worker.call(segfault_after, "x")
        assert worker.pid is None
        again = worker.call(os.getpid)
        assert again != first and worker.call(count, 2) == 2
    assert worker.pid is None and not _alive(again)


def test_an_abandoned_call_kills_the_child():
    def stop(i):
        if i == 3:
            raise KeyError("enough")

    worker = isolate.Worker(env=ENV)
    pid = worker.call(os.getpid)
    with pytest.raises(KeyError, match="enough"):
        worker.call(tick_forever, on_message=stop)
    assert worker.pid is None and not _alive(pid)
    worker.close()


PARENT = textwrap.dedent("""\
    import os, sys, time
    from tflkit.core import isolate
    worker = isolate.Worker()
    print(worker.call(os.getpid), flush=True)  # the child is set up (its parent-death signal armed) once it answers
    time.sleep(60)
""")


def test_the_child_dies_with_its_parent():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_tf_free_function_runs_without_tensorflow():
    assert call(tensorflow_imported) is False


def test_benchmarks_run_in_a_child_that_never_imported_tensorflow():
    results, memory, tensorflow = call(bench_without_tensorflow, str(SEED))
    assert [r.status for r in results] == ["ok"] and results[0].median_ms > 0
    assert memory.rss_delta_mb is not None and memory.model == SEED.name
    assert tensorflow is False


def test_what_the_function_starts_cannot_read_the_requests():
    done = call(subprocess.run, ["cat"], capture_output=True, timeout=10)  # stdin inherited: /dev/null, not the pipe
    assert done.returncode == 0 and done.stdout == b""


def test_outside_a_child_send_does_nothing():
    assert not isolate.in_child()
    isolate.send("nobody listens")


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (one reparented to an init that has not reaped it yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
