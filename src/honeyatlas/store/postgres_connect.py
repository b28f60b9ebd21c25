"""Connecting to PostgreSQL, for the store and the sensor registry alike.

Every session runs in UTC (date_trunc and the daily partitions depend on it) and every
failure becomes one `StoreError` line naming host, port and database: never the URL itself,
whose password libpq may echo back in its own messages (it is scrubbed from them too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from honeyatlas.errors import StoreError

_SESSION = {"options": "-c TimeZone=UTC", "connect_timeout": 10, "autocommit": True}


def describe(url: str) -> str:
    """`host:port/database` of a URL, for messages (no user, no password)."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "storage.url (unreadable)"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def scrub(message: str, url: str) -> str:
    """The message without the URL's password, wherever libpq echoed it."""
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.Error:
        password = url.partition("://")[2].partition("@")[0].partition(":")[2] or None
    return message.replace(str(password), "***") if password else message


def _failure(url: str, where: str, exc: psycopg.Error) -> StoreError:
    detail = scrub(" ".join(str(exc).split()), url)
    return StoreError(f"cannot connect to PostgreSQL at {where}: {detail}; check storage.url")


async def connect(url: str, where: str) -> psycopg.AsyncConnection[Any]:
    try:
        return await psycopg.AsyncConnection.connect(url, **_SESSION)  # type: ignore[arg-type]
    except psycopg.Error as exc:
        raise _failure(url, where, exc) from None


def connect_sync(url: str, where: str) -> psycopg.Connection[Any]:
    try:
        return psycopg.Connection.connect(url, **_SESSION)  # type: ignore[arg-type]
    except psycopg.Error as exc:
        raise _failure(url, where, exc) from None


def connect_with_schema(url: str, where: str, *, lock: int, schema: Sequence[str], what: str) -> psycopg.Connection[Any]:
    """A session on which `schema`'s DDL (idempotent: CREATE ... IF NOT EXISTS) has run, under
    advisory lock `lock`, since the processes of a cluster start together; `what` names the
    tables in the one-line error."""
    con = connect_sync(url, where)
    try:
        with con.transaction():
            con.execute("SELECT pg_advisory_xact_lock(%s)", [lock])
            for statement in schema:
                con.execute(statement)  # type: ignore[arg-type]  # DDL of our own
    except psycopg.Error as exc:
        con.close()
        raise StoreError(f"cannot create {what} at {where}: {exc}") from exc
    return con
