"""What the cluster tests share: reading the shared PostgreSQL store directly."""

from __future__ import annotations

import psycopg


def stored(database: str, distinct: str = "id") -> tuple[int, int]:
    """(events, distinct values of `distinct`) in the store; (0, 0) before the first process
    has created the tables."""
    with psycopg.connect(database) as con:
        try:
            row = con.execute(f"SELECT count(*), count(DISTINCT {distinct}) FROM events").fetchone()
        except psycopg.errors.UndefinedTable:
            return 0, 0
    assert row is not None
    return int(row[0]), int(row[1])
