"""A window's summary counted from the raw events, written once for both backends.

The rollups answer what they are keyed by (duckdb_stats.py, postgres_stats.py); whatever a
filter asks beyond that is counted here from the events of the window, with the filter
compiled for the engine (filters.py). These are the exact answers the rollup paths must
agree with (tests/store/test_window_summary.py).

What must not live here: rollups, and anything only one engine understands beyond what the
`SqlDialect` and the `latest_org` expression carry.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from honeyatlas.store import TopItem
from honeyatlas.store.columns import TOP_DIMENSIONS
from honeyatlas.store.filters import EventFilter, SqlDialect, where

# dimension -> (column, numeric key): the summary's dimensions, then what only raw events carry.
WINDOW_COLUMNS: dict[str, tuple[str, bool]] = {
    **TOP_DIMENSIONS,
    "usernames": ("username", False),
    "passwords": ("password", False),
    "commands": ("command", False),
    "payloads": ("sha256", False),
}


def top_sql(events: EventFilter, dialect: SqlDialect, dim: str, top_n: int) -> tuple[str, list[Any]]:
    """(key, n, NULL) of a dimension's `top_n` keys, most events first, ties by key (an ASN's
    label: `asn_labels_sql`)."""
    column, _ = WINDOW_COLUMNS[dim]
    condition, params = where(events, dialect)
    return (f"SELECT {column}, count(*) AS n, NULL FROM events WHERE {condition} AND {column} IS NOT NULL "
            f"GROUP BY {column} ORDER BY n DESC, {column} LIMIT {dialect.param}", [*params, top_n])


def asn_labels_sql(events: EventFilter, dialect: SqlDialect, items: list[TopItem], latest_org: str
                   ) -> tuple[str, list[Any]]:
    """(asn, latest organisation) of the listed ASNs among the events `events` selects: read
    for these few ASNs only, not for every ASN of the window (`latest_org` is the aggregate in
    the engine's words). `items` must not be empty."""
    condition, params = where(events, dialect)
    listed = ", ".join([dialect.param] * len(items))
    return (f"SELECT src_asn, {latest_org} FROM events WHERE {condition} AND src_asn IN ({listed}) GROUP BY src_asn",
            [*params, *(item.key for item in items)])


def labelled(items: list[TopItem], rows: Iterable[tuple[Any, ...]]) -> list[TopItem]:
    """The ASN list with the labels `asn_labels_sql` read."""
    labels = dict(rows)
    return [TopItem(item.key, item.count, labels.get(item.key)) for item in items]


def top_items(dim: str, rows: Iterable[tuple[Any, ...]]) -> list[TopItem]:
    numeric = WINDOW_COLUMNS[dim][1]
    return [TopItem(int(key) if numeric else str(key), int(n), label if dim == "asns" else None)
            for key, n, label in rows]


def lists_sql(events: EventFilter, dialect: SqlDialect, dims: list[str], top_n: int) -> tuple[str, list[Any]]:
    """(one column per dimension of `dims`, n) rows of the events `events` selects, from one
    scan: a grouping set per dimension and one for the total, so the filter is tested once
    instead of once per list. Each dimension's `top_n` keys as top_sql ranks them (most events
    first, ties by key), without labels; `lists_of` reads the rows back."""
    condition, params = where(events, dialect)
    columns = [WINDOW_COLUMNS[dim][0] for dim in dims]
    keys = ", ".join(columns)
    sets = ", ".join(["()", *(f"({column})" for column in columns)])
    # In a dimension's set only its column is not NULL: a row is that column's key, or the
    # total when the set is `()` (GROUPING has every bit set); a NULL key is left out.
    total = (1 << len(columns)) - 1
    return (f"SELECT {keys}, n FROM (SELECT {keys}, count(*) AS n, GROUPING({keys}) AS grouped, "
            f"row_number() OVER (PARTITION BY GROUPING({keys}) ORDER BY count(*) DESC, {keys}) AS place "
            f"FROM events WHERE {condition} GROUP BY GROUPING SETS ({sets}) "
            f"HAVING {' OR '.join(f'{column} IS NOT NULL' for column in columns)} OR GROUPING({keys}) = {total}"
            f") ranked WHERE place <= {dialect.param} OR grouped = {total} ORDER BY grouped, place", [*params, top_n])


def lists_of(dims: list[str], rows: Iterable[tuple[Any, ...]]) -> tuple[int, dict[str, list[TopItem]]]:
    """(total, top lists of `dims`) from the rows of lists_sql, which come in each list's order
    (the engine's collation orders ties, as in top_sql)."""
    total = 0
    found: dict[str, list[tuple[Any, int, None]]] = {dim: [] for dim in dims}
    for *values, n in rows:
        listed = next((i for i, value in enumerate(values) if value is not None), None)
        if listed is None:
            total = int(n)
        else:
            found[dims[listed]].append((values[listed], n, None))
    return total, {dim: top_items(dim, items) for dim, items in found.items()}
