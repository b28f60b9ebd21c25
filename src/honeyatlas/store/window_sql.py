"""A window's summary counted from the raw events, written once for both backends.

The rollups answer what they are keyed by (duckdb_stats.py, postgres_stats.py); whatever a
filter asks beyond that is counted here from the events of the window, with the filter
compiled for the engine (filters.py). These are the exact answers the rollup paths must
agree with (tests/store/test_window_summary.py).

What must not live here: rollups, and anything only one engine understands beyond what the
`SqlDialect` and the `latest_org` expression carry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from honeyatlas.store import TopItem
from honeyatlas.store.columns import TOP_DIMENSIONS
from honeyatlas.store.filters import EventFilter, SqlDialect, where

Read = Callable[[str, Any], Awaitable[list[tuple[Any, ...]]]]

# dimension -> (column, numeric key): the summary's dimensions, then what only raw events carry.
WINDOW_COLUMNS: dict[str, tuple[str, bool]] = {
    **TOP_DIMENSIONS,
    "usernames": ("username", False),
    "passwords": ("password", False),
    "commands": ("command", False),
    "payloads": ("sha256", False),
}


def count_sql(events: EventFilter, dialect: SqlDialect) -> tuple[str, list[Any]]:
    condition, params = where(events, dialect)
    return f"SELECT count(*) FROM events WHERE {condition}", params


def top_sql(events: EventFilter, dialect: SqlDialect, dim: str, top_n: int, latest_org: str) -> tuple[str, list[Any]]:
    """(key, n, label) of a dimension's `top_n` keys, most events first, ties by key; the
    label is an ASN's latest organisation (`latest_org`, an aggregate in the engine's words)."""
    column, _ = WINDOW_COLUMNS[dim]
    condition, params = where(events, dialect)
    label = latest_org if dim == "asns" else "NULL"
    return (f"SELECT {column}, count(*) AS n, {label} FROM events WHERE {condition} AND {column} IS NOT NULL "
            f"GROUP BY {column} ORDER BY n DESC, {column} LIMIT {dialect.param}", [*params, top_n])


def top_items(dim: str, rows: Iterable[tuple[Any, ...]]) -> list[TopItem]:
    numeric = WINDOW_COLUMNS[dim][1]
    return [TopItem(int(key) if numeric else str(key), int(n), label if dim == "asns" else None)
            for key, n, label in rows]


async def raw_top(read: Read, events: EventFilter, dialect: SqlDialect, dims: Iterable[str], top_n: int,
                  latest_org: str) -> dict[str, list[TopItem]]:
    top: dict[str, list[TopItem]] = {}
    for dim in dims:
        top[dim] = top_items(dim, await read(*top_sql(events, dialect, dim, top_n, latest_org)))
    return top


async def raw_total(read: Read, events: EventFilter, dialect: SqlDialect) -> int:
    rows = await read(*count_sql(events, dialect))
    return int(rows[0][0])
