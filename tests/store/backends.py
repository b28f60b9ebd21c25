"""One store opened on either backend, for the tests that hold the SQLite and the PostgreSQL
implementation of a protocol (the accounts, the sensor registry) to the same behaviour."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import psycopg
import pytest

T = TypeVar("T")


class Backend(Generic[T]):
    """Opens stores of one kind on one database: several, as several processes would."""

    def __init__(self, kind: str, path: Path, url: str, make: Callable[..., T]) -> None:
        self.kind = kind
        self.path = path
        self.url = url
        self._make = make
        self.opened: list[T] = []

    def open(self, **kwargs: Any) -> T:
        store = self._make(self.path if self.kind == "sqlite" else self.url, **kwargs)
        store.open()  # type: ignore[attr-defined]
        self.opened.append(store)
        return store

    def stored(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows read straight from the database, past the store."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as con:
                return con.execute(sql).fetchall()
        with psycopg.connect(self.url) as con:
            return con.execute(sql).fetchall()  # type: ignore[arg-type]


def backend_of(request: pytest.FixtureRequest, path: Path, sqlite: Callable[..., T],
               postgresql: Callable[..., T]) -> Iterator[Backend[T]]:
    """The body of a `backend` fixture parametrised with "sqlite" and "postgresql"; closes what
    the test opened."""
    kind = str(request.param)
    url = request.getfixturevalue("postgres_server").new_database() if kind == "postgresql" else ""
    found = Backend(kind, path, url, sqlite if kind == "sqlite" else postgresql)
    yield found
    for store in found.opened:
        store.close()  # type: ignore[attr-defined]
