"""IPv4 source addresses as integers, in the DuckDB store: the key, its backfill, the top list.

Counting a 30-day window's events (10 million) per `src_ip` text, 200,000 addresses, cost
more than everything else of a summary together; per 4-byte integer it costs a fraction. So
`events.src_ip_v4` (migration 6, duckdb.py) holds the source address as a UINTEGER when
`src_ip` is a dotted quad as `ipaddress` writes it (no leading zeros: exactly the text the
integer prints back), and NULL otherwise (IPv6, no address, anything else).

- The writer computes it in its INSERT (`KEY`, an expression on `src_ip`, vectorised by
  DuckDB; benchmarks/fill.py may use it too).
- Rows written without it (a store filled before migration 6, or by an INSERT naming only
  the shared columns) get it when the store opens (`key_addresses`): every row with rowid up
  to `address_keys.keyed_rowid` is keyed, and the rows above are done in chunks.
- `top_addresses` counts IPv4 by the integer and the rest by the text, and merges the two
  exactly as `ORDER BY n DESC, src_ip` over the text would.

What must not live here: anything PostgreSQL reads (it has `inet`); the shared filter
language (filters.py, which turns an IPv4 prefix into a range of this column for DuckDB).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # filters.py reads COLUMN: a PostgreSQL process must not need the driver
    import duckdb

log = logging.getLogger(__name__)

COLUMN = "src_ip_v4"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
# The key of `src_ip`, NULL unless a canonical dotted quad (the regexp: split_part alone
# would accept "01.2.3.4", whose text the integer does not print back).
KEY = (
    f"CASE WHEN regexp_full_match(src_ip, '{_OCTET}\\.{_OCTET}\\.{_OCTET}\\.{_OCTET}') THEN "
    + " + ".join(f"(split_part(src_ip, '.', {i + 1})::UINTEGER << {24 - 8 * i})" for i in range(4))
    + " END"
)
# The key back as text, as `src_ip` holds it.
_TEXT = f"concat_ws('.', {COLUMN} >> 24, ({COLUMN} >> 16) & 255, ({COLUMN} >> 8) & 255, {COLUMN} & 255)"
# Rows keyed per statement when the store opens: each chunk commits (the work done survives
# an interrupted start) and logs its progress.
_CHUNK_ROWS = 1_000_000


def key_addresses(con: duckdb.DuckDBPyConnection) -> int:
    """Compute `src_ip_v4` of the rows above `address_keys.keyed_rowid` that lack it, and move
    the mark to the latest row. Runs when the store opens, before anything reads or writes;
    returns the rows looked at."""
    keyed = con.execute("SELECT keyed_rowid FROM address_keys").fetchall()[0][0]
    latest = con.execute("SELECT coalesce(max(rowid), -1) FROM events").fetchall()[0][0]
    if latest <= keyed:
        return 0
    began = time.monotonic()
    for low in range(keyed, latest, _CHUNK_ROWS):
        high = min(low + _CHUNK_ROWS, latest)
        con.begin()
        con.execute(f"UPDATE events SET {COLUMN} = {KEY} WHERE rowid > ? AND rowid <= ? AND {COLUMN} IS NULL "
                    "AND src_ip NOT LIKE '%:%'", [low, high])
        con.execute("UPDATE address_keys SET keyed_rowid = ?", [high])
        con.commit()
        if latest - keyed > _CHUNK_ROWS:
            log.info("address keys: rows up to %d of %d keyed (%.0f s)", high, latest, time.monotonic() - began)
    return latest - keyed


def mark_all_keyed(con: duckdb.DuckDBPyConnection) -> None:
    """After a delete that may renumber rowids: every row left is keyed, the mark follows them."""
    con.execute("UPDATE address_keys SET keyed_rowid = (SELECT coalesce(max(rowid), -1) FROM events)")


def top_addresses(condition: str, params: list[Any], top_n: int) -> tuple[str, list[Any]]:
    """(key, n, NULL) of the `top_n` source addresses of the events matching `condition`,
    most events first, ties by the text: as `top_sql` over `src_ip` answers.

    Each part (IPv4 by integer, the rest by text) keeps its keys ranked `top_n` or better,
    ties included (`rank()`): a key of the answer has fewer than `top_n` keys above it,
    hence in its own part too; the ties among them are then ordered by their text."""
    where = f"FROM events WHERE {condition}"
    sql = (
        f"SELECT key, n, NULL FROM ("
        f"SELECT {_TEXT} AS key, n FROM (SELECT {COLUMN}, count(*) AS n {where} AND {COLUMN} IS NOT NULL "
        f"GROUP BY {COLUMN} QUALIFY rank() OVER (ORDER BY n DESC) <= ?) "
        "UNION ALL "
        f"SELECT src_ip, count(*) AS n {where} AND {COLUMN} IS NULL AND src_ip IS NOT NULL GROUP BY src_ip "
        "QUALIFY rank() OVER (ORDER BY n DESC) <= ?"
        ") ORDER BY n DESC, key LIMIT ?"
    )
    return sql, [*params, top_n, *params, top_n, top_n]
