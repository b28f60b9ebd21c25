"""Users, sessions and read tokens in PostgreSQL: the `SQLAccounts` rules (store/accounts.py)
over the database every process of a cluster shares, as postgres_registry.py does for sensors.

Tables are created when missing, under an advisory lock, so processes opening the database at
once are safe. Synchronous (psycopg's blocking connection, one per object, reopened if the
server dropped it). What must not live here: any rule about names, passwords, sessions or
tokens (store/accounts.py).
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from honeyatlas.errors import RegistryError, StoreError
from honeyatlas.store.accounts import DuplicateName, SQLAccounts
from honeyatlas.store.postgres_connect import connect_sync, connect_with_schema, describe

_LOCK = 0x6861_0011
_SCHEMA = [
    'CREATE TABLE IF NOT EXISTS users (name text COLLATE "C" PRIMARY KEY, role text NOT NULL, '
    "password_hash text NOT NULL, created_at timestamptz NOT NULL, last_login timestamptz)",
    "CREATE TABLE IF NOT EXISTS sessions (id_sha256 bytea PRIMARY KEY, user_name text NOT NULL, "
    "created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL, last_seen timestamptz NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_name)",
    "CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at)",
    'CREATE TABLE IF NOT EXISTS read_tokens (token_id text PRIMARY KEY, name text COLLATE "C" NOT NULL, '
    "role text NOT NULL, token_sha256 bytea NOT NULL, created_at timestamptz NOT NULL, last_used timestamptz, "
    "revoked_at timestamptz)",
    "CREATE UNIQUE INDEX IF NOT EXISTS read_tokens_active_name ON read_tokens (name) WHERE revoked_at IS NULL",
]


class PostgresAccounts(SQLAccounts):
    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._url = url
        self._where = describe(url)
        self._con: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        self._con = connect_with_schema(self._url, self._where, lock=_LOCK, schema=_SCHEMA, what="the accounts tables")

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._con is None:
            raise RegistryError("accounts database is not open")
        if self._con.broken or self._con.closed:
            self._con = connect_sync(self._url, self._where)
        return self._con

    def _failure(self, exc: psycopg.Error) -> StoreError:
        return StoreError(f"accounts at {self._where}: {' '.join(str(exc).split())}")

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._connection().execute(sql.replace("?", "%s"), params).fetchall()  # type: ignore[arg-type]
            except psycopg.Error as exc:
                raise self._failure(exc) from exc

    def _change(self, *statements: tuple[str, tuple[Any, ...]]) -> list[int]:
        with self._lock:
            con = self._connection()
            try:
                with con.transaction():
                    return [con.execute(sql.replace("?", "%s"), params).rowcount  # type: ignore[arg-type]
                            for sql, params in statements]
            except pg_errors.UniqueViolation:
                raise DuplicateName from None
            except psycopg.Error as exc:
                raise self._failure(exc) from exc
