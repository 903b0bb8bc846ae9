"""A real PostgreSQL server for tests: its own data directory in a temporary folder, listening on a free port on
127.0.0.1 only (its unix socket in that folder), trust authentication, stopped and deleted on teardown.

Import the fixtures into a test module: `from postgres_server import postgres_server, postgres_url`.
`postgres_server` (one per session) is a PostgresServer (url(), create_database(), restart(), stop() and start()
again); `postgres_url` is a fresh database on it per test, as `postgresql+psycopg://tflkit@127.0.0.1:PORT/DB`.
benchmarks/tune_storage.py runs a PostgresServer of its own the same way.

PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user (Debian's postgresql
package creates it); without that user the fixtures skip, creating no user. They skip too when the server binaries
(`TFLKIT_PG_BIN`, else the newest /usr/lib/postgresql/*/bin) or psycopg are absent. A server that is there but does
not start fails the test with its log.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

USER = "tflkit"  # the database superuser initdb creates (a role, not a system user)
RUN_AS = "postgres"  # the system user the server runs as when the tests run as root


def find_bin_dir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: TFLKIT_PG_BIN, else the newest Debian install."""
    wanted = ("initdb", "pg_ctl", "postgres")
    candidates = [Path(os.environ["TFLKIT_PG_BIN"])] if os.environ.get("TFLKIT_PG_BIN") else sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _major(p.parent.name), reverse=True)
    return next((d for d in candidates if all((d / name).is_file() for name in wanted)), None)


def _major(name: str) -> int:
    return int(name) if name.isdigit() else -1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerError(RuntimeError):
    """initdb or pg_ctl failed; the message holds their output and the server log's tail."""


class PostgresServer:
    """One PostgreSQL cluster in `root` (data/, the socket, server.log), run by `pg_ctl` as `run_as` (None: this
    user). The port is chosen at the first start and kept, so URLs stay valid across stop() and start()."""

    def __init__(self, bin_dir: Path, root: Path, run_as: str | None):
        self.bin_dir, self.root, self.run_as = bin_dir, root, run_as
        self.data, self.log = root / "data", root / "server.log"
        self.port = 0
        self._names = itertools.count()

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "LC_ALL": "C"})

    def _check(self, done: subprocess.CompletedProcess, what: str) -> None:
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise ServerError(f"PostgreSQL {what} failed ({done.returncode}): {done.stderr.strip()[-2000:]}\n{log}")

    def _options(self) -> str:
        # fsync off: a test cluster need not survive a power cut, and fsync costs seconds on a shared disk
        return f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"

    def start(self) -> PostgresServer:
        """Create the cluster (first time) and start the server; again after stop(), on the same port."""
        if not self.data.exists():
            self._check(self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                                  "-E", "UTF8", "--no-sync"), "initdb")
        if self.port:
            self._check(self._pg_ctl("start"), "start")
            return self
        for _ in range(3):  # the free port may be taken between choosing and binding it
            self.port = free_port()
            done = self._pg_ctl("start")
            if done.returncode == 0:
                return self
        self._check(done, "start")
        return self

    @property
    def running(self) -> bool:
        return self._run(str(self.bin_dir / "pg_ctl"), "status", "-D", str(self.data)).returncode == 0

    def _pg_ctl(self, action: str, *extra: str) -> subprocess.CompletedProcess:
        return self._run(str(self.bin_dir / "pg_ctl"), action, "-D", str(self.data), "-l", str(self.log), "-w",
                         "-t", "60", *(["-o", self._options()] if action in ("start", "restart") else []), *extra)

    def restart(self) -> None:
        """Stop (fast: open connections are cut, as a crashed or rebooted server cuts them) and start again."""
        self._check(self._pg_ctl("restart", "-m", "fast"), "restart")

    def stop(self) -> None:
        """Stop the server (fast: open connections are cut); the cluster stays for start()."""
        if self._pg_ctl("stop", "-m", "fast").returncode != 0 and self.running:
            self._check(self._pg_ctl("stop", "-m", "immediate"), "stop")

    def url(self, database: str, driver: str | None = "psycopg") -> str:
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{USER}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=USER, dbname=database, autocommit=True)

    def create_database(self, name: str | None = None) -> str:
        name = name or f"test_{next(self._names)}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


@pytest.fixture(scope="session")
def postgres_server():
    pytest.importorskip("psycopg", reason="psycopg (the tune extra's PostgreSQL driver) is not installed")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin or "
                    "TFLKIT_PG_BIN; apt-get install postgresql")
    run_as = None
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam(RUN_AS)
        except KeyError:
            pytest.skip(f"running as root, and PostgreSQL refuses root: no {RUN_AS!r} system user to run the server "
                        f"as (Debian's postgresql package creates it)")
        run_as = RUN_AS
    # As root, in /tmp itself: pytest's own temporary folders are root's alone, and the server user must reach its
    # data directory and socket.
    root = Path(tempfile.mkdtemp(prefix="tflkit-pg-", dir="/tmp" if run_as else None))
    if run_as:
        os.chown(root, account.pw_uid, account.pw_gid)
    server = PostgresServer(bin_dir, root, run_as)
    try:
        try:
            server.start()
        except ServerError as exc:
            pytest.fail(str(exc))
        yield server
    finally:
        if server.data.exists() and server.running:
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A new database on the session's server, as a `postgresql+psycopg://` URL."""
    if not postgres_server.running:  # a test that stopped it failed before starting it again
        postgres_server.start()
    return postgres_server.url(postgres_server.create_database())
