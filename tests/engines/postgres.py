"""A real PostgreSQL server for tests: Debian's binaries, a temporary data directory, a free port.

`postgres_server` (pytest fixture, session scope) starts one server per test session (~2 s)
and yields a `PostgresServer`:

- `.url`: `postgresql://postgres@127.0.0.1:PORT/postgres` (trust authentication);
- `.new_database(name) -> url`: a fresh, empty database on that server (CREATE DATABASE, a
  few milliseconds), so each test gets its own without another `initdb`.

The newest `/usr/lib/postgresql/*/bin` is used; without it the fixture fails with one line
saying to run `scripts/test-deps` (which apt-installs postgresql): a missing engine is an
error, never a skip. PostgreSQL refuses to run as root, so as root the server runs as the
`postgres` user (created by Debian's package) in a directory it owns; as anyone else it runs
as that user. It listens on 127.0.0.1 and a socket in its own directory, never on 5432 (another
server may be there), with fsync off: test data need not survive a power cut
(`running_postgres(durable=True)` keeps it on, for benchmarks).

What must not live here: anything about honeyatlas's schema; stores migrate their own databases.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

_BIN_ROOT = Path("/usr/lib/postgresql")
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _binaries() -> Path:
    candidates = sorted(
        (p for p in _BIN_ROOT.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        pytest.fail("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin: run scripts/test-deps",
                    pytrace=False)
    return candidates[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._created = 0

    def new_database(self, name: str | None = None) -> str:
        """A new empty database (named `name`, or a fresh name); returns its URL."""
        self._created += 1
        name = name or f"test_{os.getpid()}_{self._created}"
        if not _DATABASE_NAME.match(name):
            raise ValueError(f"database name {name!r}: use lowercase letters, digits and '_'")
        with psycopg.connect(self.url, autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def running_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    """Start a throw-away server; stop it and remove its directory on exit. `durable` keeps
    fsync and synchronous commits on (for benchmarks that must pay what production pays)."""
    binaries = _binaries()
    root = Path(tempfile.mkdtemp(prefix="honeyatlas-pg-"))
    if os.geteuid() == 0:  # the server refuses root: hand the directory to the postgres user
        shutil.chown(root, "postgres", "postgres")
    data, log = root / "data", root / "log"
    port = _free_port()
    started = False
    try:
        subprocess.run(
            _as_postgres([str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                          "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
            check=True, capture_output=True, cwd=root,
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        result = subprocess.run(
            _as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                          "-o", options, "start"]),
            capture_output=True, cwd=root,
        )
        if result.returncode:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else result.stderr.decode()
            raise RuntimeError(f"PostgreSQL did not start on port {port}: {tail}")
        started = True
        server = PostgresServer(port)
        deadline = time.monotonic() + 30
        while True:  # pg_ctl -w waits for the socket; make sure TCP answers too
            try:
                psycopg.connect(server.url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield server
    finally:
        if started:
            subprocess.run(_as_postgres([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                           capture_output=True, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server
