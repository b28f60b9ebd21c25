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
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from honeyatlas.cluster import LocalPostgres, free_port
from honeyatlas.errors import HoneyatlasError

_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


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


@contextlib.contextmanager
def running_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    """Start a throw-away server (honeyatlas.cluster.LocalPostgres, as `honeyatlas cluster`
    does); stop it and remove its directory on exit. `durable` keeps fsync and synchronous
    commits on (for benchmarks that must pay what production pays)."""
    root = Path(tempfile.mkdtemp(prefix="honeyatlas-pg-"))
    try:
        local = LocalPostgres(root, free_port(), fsync=durable)
    except HoneyatlasError as exc:  # no binaries: say what to run, never skip
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"{exc}", pytrace=False)
    try:
        local.start()
        server = PostgresServer(local.port)
        deadline = time.monotonic() + 30
        while True:  # the socket answers before the server accepts logins
            try:
                psycopg.connect(server.url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield server
    finally:
        local.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server
