"""Isolated work: a function run in a fresh Python process, typed values in and typed values out.

    from tflkit.core import isolate
    results = isolate.call(bench_models, [path], threads=[1])          # -> list[BenchResult], as in-process
    with isolate.Worker() as worker:                                   # one child for several calls
        data = worker.call(convert_recipe, saved_model, "fp16")

Why a fresh interpreter: native code that may crash on a hostile or unlucky input (the TFLite converter, an
interpreter's allocation, TFLite Micro) costs only the call, never the caller (a crash is `Crashed`, naming the signal);
TensorFlow's thread pools and memory never leak from one model to the next; a benchmark runs in a process that never
imported TensorFlow. Why not multiprocessing: its spawn re-imports the caller's __main__ (a CLI script, a test file)
in every child, and fork copies a process that may hold TensorFlow's threads.

The protocol, the one place it is written: the child is `python -m tflkit.core.isolate`, given a pipe's file
descriptor in TFLKIT_ISOLATE_FD. It reads requests from stdin, each a length-prefixed pickle of (function, args,
kwargs) (a function pickles as its module and name, so it must be importable: not defined in __main__ or a closure;
the child imports only what unpickling it and its arguments needs). For each it writes frames to the pipe:
("message", value) for every `isolate.send(value)` the function makes (progress, a record the moment it exists), then
("return", value) or ("raise", exception). stdout and stderr are the caller's choice (inherited, a log file, a
temporary file whose text the caller reads: C-level output included). The child dies with its parent (Linux
PR_SET_PDEATHSIG), and may have its address space capped (`memory_bytes`: a runaway allocation becomes a MemoryError
or a refusal instead of the OOM killer taking the machine). A call the caller abandons (its `on_message` raised, a
KeyboardInterrupt) kills the child: nobody will read what it goes on doing.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from tflkit.core.errors import TflkitError
from tflkit.core.process import die_with_parent

_HEADER = struct.Struct("!Q")
_CHILD_PIPE = "TFLKIT_ISOLATE_FD"
_MEMORY = "TFLKIT_ISOLATE_MEMORY"


class Crashed(TflkitError):
    """The child ended without an answer: killed by a signal (a native crash, the memory cap, a timeout) or exited.
    `last_message` is the last value it sent (e.g. the stage it had reached)."""

    def __init__(self, message: str, code: int | None = None, last_message=None):
        super().__init__(message)
        self.code, self.last_message = code, last_message

    def __reduce__(self):
        return type(self), (str(self), self.code, self.last_message)


class RemoteError(TflkitError):
    """An exception raised in the child whose type could not be sent back as itself."""


def describe_exit(code: int | None) -> str:
    """`killed by SIGSEGV`, `exit code 3`, `timed out`."""
    if code is None:
        return "timed out"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _write_frame(fd: int, value) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view):]


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    chunks, left = [], size
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int, deadline: float | None):
    """The next frame, or None at the end of the stream (the child is gone)."""
    header = _read_exact(fd, _HEADER.size, deadline)
    if header is None:
        return None
    body = _read_exact(fd, _HEADER.unpack(header)[0], deadline)
    return None if body is None else pickle.loads(body)


class Worker:
    """One child process that runs calls in turn (one at a time: a Worker is not shared between threads); a crashed
    child is replaced by a fresh one at the next call.

    `memory_bytes`: the child's address-space cap. `env`: extra environment variables. `stdout`/`stderr`: file
    objects, file descriptors or subprocess constants for the child's own output (default: inherited). `cwd`: the
    child's working directory."""

    def __init__(self, *, memory_bytes: int | None = None, env: dict | None = None, stdout=None, stderr=None,
                 cwd=None):
        self.memory_bytes, self.env, self.stdout, self.stderr, self.cwd = memory_bytes, env or {}, stdout, stderr, cwd
        self._process: subprocess.Popen | None = None
        self._frames: int | None = None

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> Worker:
        """Start the child now (its imports then overlap the caller's work instead of the first call)."""
        if self._process is None:
            read_fd, write_fd = os.pipe()
            env = {**os.environ, **{k: str(v) for k, v in self.env.items()}, _CHILD_PIPE: str(write_fd),
                   "TFLKIT_ISOLATE_PARENT": str(os.getpid())}
            if self.memory_bytes:
                env[_MEMORY] = str(int(self.memory_bytes))
            try:
                self._process = subprocess.Popen([sys.executable, "-m", "tflkit.core.isolate"], stdin=subprocess.PIPE,
                                                 stdout=self.stdout, stderr=self.stderr, env=env, cwd=self.cwd,
                                                 pass_fds=(write_fd,))
            finally:
                os.close(write_fd)
            self._frames = read_fd
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def call(self, func: Callable, *args, on_message: Callable | None = None, timeout: float | None = None,
             **kwargs):
        """`func(*args, **kwargs)` in the child; returns its value or raises its exception. `on_message` gets every
        value the function sends (tflkit.core.isolate.send) as it arrives. A child that dies or outlives `timeout`
        (seconds) raises Crashed; the next call starts a fresh one. A call abandoned midway (`on_message` raised, a
        KeyboardInterrupt) kills the child."""
        request = pickle.dumps((func, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)  # unpicklable: nothing started
        self.start()
        try:
            kind, value = self._exchange(func, request, on_message, timeout)
        except Crashed:
            raise
        except BaseException:
            self.kill()
            raise
        if kind == "return":
            return value
        raise value

    def _exchange(self, func, request: bytes, on_message, timeout) -> tuple[str, object]:
        try:
            self._process.stdin.write(_HEADER.pack(len(request)) + request)
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # the child is already gone: the read below says how
        deadline = None if timeout is None else time.monotonic() + timeout
        last = None
        while True:
            try:
                frame = _read_frame(self._frames, deadline)
            except TimeoutError:
                self.kill()
                raise Crashed(f"{_name(func)} timed out after {timeout:g} s", None, last) from None
            if frame is None:
                code = self._reap()
                raise Crashed(f"{_name(func)} crashed ({describe_exit(code)})", code, last)
            kind, value = frame
            if kind != "message":
                return kind, value
            last = value
            if on_message is not None:
                on_message(value)

    def _reap(self) -> int:
        process, frames = self._process, self._frames
        self._process, self._frames = None, None
        code = process.wait()
        try:
            process.stdin.close()
        except OSError:  # a request the dead child never read: BrokenPipeError on the flush
            pass
        os.close(frames)
        return code

    def close(self) -> None:
        """End the child between calls (it exits when its stdin closes) and wait for it."""
        if self._process is not None:
            try:
                self._process.stdin.close()
            except OSError:
                pass
            self._reap()

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._reap()


def call(func: Callable, *args, memory_bytes: int | None = None, env: dict | None = None, stdout=None, stderr=None,
         cwd=None, on_message: Callable | None = None, timeout: float | None = None, **kwargs):
    """`func(*args, **kwargs)` in a fresh child process (see Worker.call)."""
    with Worker(memory_bytes=memory_bytes, env=env, stdout=stdout, stderr=stderr, cwd=cwd) as worker:
        return worker.call(func, *args, on_message=on_message, timeout=timeout, **kwargs)


def send(value) -> None:
    """From a function running in a child: hand `value` to the caller's `on_message` now (from any thread). Outside a
    child: nothing."""
    if _pipe is not None:
        with _pipe_lock:  # a frame over PIPE_BUF is several writes: two threads' frames must not interleave
            _write_frame(_pipe, ("message", value))


def in_child() -> bool:
    return _pipe is not None


def _name(func) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)}"


_pipe: int | None = None  # in a child: the frames' pipe
_pipe_lock = threading.Lock()


def _sendable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # an exception whose type cannot make the trip comes back as its one line
        text = str(exc).strip().splitlines()
        return RemoteError(f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": "))


def _child() -> int:
    global _pipe

    parent = os.environ.pop("TFLKIT_ISOLATE_PARENT", None)
    die_with_parent(int(parent) if parent else None)
    fd = _pipe = int(os.environ.pop(_CHILD_PIPE))  # not for grandchildren: the fd is not theirs
    memory = os.environ.pop(_MEMORY, None)
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (int(memory), int(memory)))
    # The requests' pipe stays private to this process: fd 0 becomes /dev/null, so nothing the function starts (a
    # tool that reads its stdin) can wait on the pipe or take a later request's bytes.
    stdin = os.fdopen(os.dup(0), "rb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    while True:
        header = stdin.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return 0
        request = stdin.read(_HEADER.unpack(header)[0])
        func = None
        try:
            func, args, kwargs = pickle.loads(request)  # imports the function's module (ImportError: not importable)
            frame = ("return", func(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the caller, KeyboardInterrupt too
            frame = ("raise", _sendable(exc))
        sys.stdout.flush()
        sys.stderr.flush()
        with _pipe_lock:
            try:
                _write_frame(fd, frame)
            except (pickle.PicklingError, TypeError, AttributeError) as exc:  # a return value that cannot be sent
                _write_frame(fd, ("raise", RemoteError(f"{_name(func)} returned an unsendable value: {exc}")))


if __name__ == "__main__":  # run as the real module, so `send` and the exception types are the ones callers import
    from tflkit.core import isolate

    sys.exit(isolate._child())
