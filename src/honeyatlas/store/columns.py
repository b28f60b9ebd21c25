"""The columns of the `events` table, which both store backends share.

What lives here: EVENT_COLUMNS, one (name, DuckDB type, Arrow type) per column in table
order (the PostgreSQL schema maps the DuckDB types, postgres_schema.py), the Arrow schema of
a batch, `row_to_event` (a row in that order back into an Event), and TOP_DIMENSIONS (the
column each dimension of the summary counts). What must not: DDL, queries, and any import
of a database driver: a PostgreSQL process must not need DuckDB, nor the reverse.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pyarrow as pa

from honeyatlas.event import Event, Flag, Geo, Kind, Outcome, Precision

_GEO_COLUMNS: list[tuple[str, str, pa.DataType]] = [
    ("country", "VARCHAR", pa.string()),
    ("city", "VARCHAR", pa.string()),
    ("lat", "DOUBLE", pa.float64()),
    ("lon", "DOUBLE", pa.float64()),
    ("asn", "BIGINT", pa.int64()),
    ("org", "VARCHAR", pa.string()),
    ("precision", "VARCHAR", pa.string()),
]
_EVENT_SCALARS: list[tuple[str, str, pa.DataType]] = [
    ("id", "VARCHAR NOT NULL", pa.string()),
    ("ts", "TIMESTAMP NOT NULL", pa.timestamp("us")),
    ("ingest_ts", "TIMESTAMP NOT NULL", pa.timestamp("us")),
    ("sensor", "VARCHAR NOT NULL", pa.string()),
    ("honeypot", "VARCHAR NOT NULL", pa.string()),
    ("kind", "VARCHAR NOT NULL", pa.string()),
    ("action", "VARCHAR", pa.string()),
    ("outcome", "VARCHAR NOT NULL", pa.string()),
    ("src_ip", "VARCHAR", pa.string()),
    ("src_port", "INTEGER", pa.int32()),
    ("dst_ip", "VARCHAR", pa.string()),
    ("dst_port", "INTEGER", pa.int32()),
    ("transport", "VARCHAR", pa.string()),
    ("protocol", "VARCHAR", pa.string()),
    ("session", "VARCHAR", pa.string()),
    ("username", "VARCHAR", pa.string()),
    ("password", "VARCHAR", pa.string()),
    ("command", "VARCHAR", pa.string()),
    ("url", "VARCHAR", pa.string()),
    ("sha256", "VARCHAR", pa.string()),
    ("md5", "VARCHAR", pa.string()),
    ("signature", "VARCHAR", pa.string()),
    ("severity", "SMALLINT", pa.int16()),
    ("user_agent", "VARCHAR", pa.string()),
    ("client_version", "VARCHAR", pa.string()),
]
_EVENT_TAIL: list[tuple[str, str, pa.DataType]] = [
    ("flags", "VARCHAR[]", pa.list_(pa.string())),
    ("warnings", "VARCHAR[]", pa.list_(pa.string())),
    ("raw", "VARCHAR", pa.string()),
    ("v", "SMALLINT NOT NULL", pa.int16()),
]
EVENT_COLUMNS: list[tuple[str, str, pa.DataType]] = [
    *_EVENT_SCALARS,
    *[(f"src_{n}", t, a) for n, t, a in _GEO_COLUMNS],
    *[(f"dst_{n}", t, a) for n, t, a in _GEO_COLUMNS],
    *_EVENT_TAIL,
]
EVENT_ARROW_SCHEMA = pa.schema([(name, arrow) for name, _, arrow in EVENT_COLUMNS])
COLUMN_NAMES = [name for name, _, _ in EVENT_COLUMNS]
SCALAR_NAMES = [name for name, _, _ in _EVENT_SCALARS]  # Event's fields stored as they are

# dimension -> (column, numeric key). `asns` carries a label: the organisation of the ASN.
TOP_DIMENSIONS: dict[str, tuple[str, bool]] = {
    "countries": ("src_country", False),
    "asns": ("src_asn", True),
    "ips": ("src_ip", False),
    "ports": ("dst_port", True),
    "sensors": ("sensor", False),
}


def row_to_event(row: tuple[Any, ...]) -> Event:
    """A row in EVENT_COLUMNS order as an Event; timestamps read as UTC (DuckDB's are naive UTC)."""
    values = dict(zip(COLUMN_NAMES, row, strict=True))
    geos: dict[str, Geo | None] = {}
    for side in ("src", "dst"):
        parts = {n: values.pop(f"{side}_{n}") for n, _, _ in _GEO_COLUMNS}
        if parts["precision"] is None:
            geos[side] = None
        else:
            parts["precision"] = Precision(parts["precision"])
            geos[side] = Geo(**{k: v for k, v in parts.items() if v is not None})
    for name in ("ts", "ingest_ts"):
        values[name] = values[name].replace(tzinfo=UTC)
    values["kind"] = Kind(values["kind"])
    values["outcome"] = Outcome(values["outcome"])
    values["flags"] = tuple(Flag(f) for f in values["flags"] or ())
    values["warnings"] = tuple(values["warnings"] or ())
    return Event(src_geo=geos["src"], dst_geo=geos["dst"], **{k: v for k, v in values.items() if v is not None})
