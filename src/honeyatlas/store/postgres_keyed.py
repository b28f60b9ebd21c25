"""The PostgreSQL store's keyed rollups and their exact top-N reads.

Two tables of one shape, `stats_hours` (one bucket per UTC hour) and `stats_days` (per UTC
day): `(dim, bucket, kind, outcome, honeypot, protocol, key, shard, label, n)`, the events
of a bucket with that kind, outcome, honeypot and protocol ('' for none) whose dimension `dim`
had the value `key` (KEYED_COLUMNS: the summary's nine
lists, and dim '' key '' for the total). `label` is an ASN's organisation, NULL elsewhere.
Keyed so, they answer a summary whose filter restricts at most those four (KEYED_FILTERS:
what a sensor's software and an event's type say, a handful of values each on a real
honeynet, so keying by them multiplies the rows little); any other filter is counted from the events (postgres_stats.window_summary).

Why both levels and how they are read (measured at 10M events over 30 days, synthetic
fill with 200,000 addresses: docs/performance.md "PostgreSQL"): summing one hour level over
30 days read 3.24M rows for the ASNs alone (7.1 s), and the addresses have about as many
(address, hour) rows as there are events. So a window is cut into whole days, whole hours
at both ends, and raw partial hours (`spans`); and a list is not summed over every key but
ranked by the threshold algorithm (Fagin et al.): each sorted list, one per (bucket, kind,
outcome, honeypot, protocol, shard), gives its `depth` largest keys through `stats_*_ranked`; those candidates
are summed exactly (the primary key starts with (dim, key)); a key that is no candidate has
at most the sum of every list's next count (`bound`). Once the N-th candidate is above the
bound the answer is final, otherwise the depth grows eightfold, until every list is read
whole (still exact, as slow as summing everything). Skewed lists (a few loud attackers)
end at the first depth.

Written by the writer's INSERT_EVENTS (postgres_stats.py) from the rows it inserted, in the
same transaction; `shard` is the writer's, so writers never wait on each other's rows.

What must not live here: the raw-event lists (window_sql.py), DDL other than these tables.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from honeyatlas.clock import ceil_to, floor_to
from honeyatlas.store import TopItem
from honeyatlas.store.filters import EventFilter
from honeyatlas.store.window_sql import WINDOW_COLUMNS

Read = Callable[[str, Any], Awaitable[list[tuple[Any, ...]]]]

# dim -> the column whose value is the key ('' : the total, key '').
KEYED_COLUMNS: dict[str, str] = {"": "''", **{dim: column for dim, (column, _) in WINDOW_COLUMNS.items()}}
# EventFilter dimension -> the rollups' column (NOT NULL: a NULL protocol is kept as '', which
# no filter value is).
KEYED_FILTERS: dict[str, str] = {"kinds": "kind", "outcomes": "outcome", "honeypots": "honeypot",
                                 "protocols": "protocol"}
_BY = ", ".join(KEYED_FILTERS.values())
TABLES = ("stats_hours", "stats_days")

_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_LATEST_LABEL = "(array_agg(label ORDER BY t DESC) FILTER (WHERE label IS NOT NULL))[1]"


def _table_sql(name: str) -> str:
    return (f'CREATE TABLE {name} (dim text COLLATE "C" NOT NULL, bucket timestamptz NOT NULL, '
            + "".join(f'{column} text COLLATE "C" NOT NULL, ' for column in KEYED_FILTERS.values())
            + 'key text COLLATE "C" NOT NULL, shard smallint NOT NULL, label text, n bigint NOT NULL)')


def _index_sql(name: str) -> list[str]:
    return [
        f"ALTER TABLE {name} ADD PRIMARY KEY (dim, key, bucket, {_BY}, shard)",
        # One sorted list per (dim, bucket, kind, outcome, honeypot, protocol, shard): the
        # threshold algorithm's sorted access.
        f"CREATE INDEX {name}_ranked ON {name} (dim, bucket, {_BY}, shard, n DESC)",
    ]


def _unpivoted(source: str, hour: str) -> str:
    """(dim, bucket, kind, outcome, honeypot, protocol, key, label, n) per hour of the rows of
    `source`. The ASNs apart: only they need the ordered aggregate for their label, which
    PostgreSQL 15 sorts per group (over every dimension, a 10M-event rebuild did not end in
    8 minutes)."""
    by = f"{hour} AS bucket, kind, outcome, honeypot, coalesce(protocol, '') AS protocol"
    values = ", ".join(f"('{dim}', {column}::text)" for dim, column in KEYED_COLUMNS.items() if dim != "asns")
    return (f"SELECT v.dim, {by}, v.key, NULL::text AS label, count(*) AS n FROM {source} "
            f"CROSS JOIN LATERAL (VALUES {values}) v(dim, key) WHERE v.key IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6, 7 "
            f"UNION ALL SELECT 'asns', {by}, src_asn::text, "
            "(array_agg(src_org ORDER BY ts DESC) FILTER (WHERE src_org IS NOT NULL))[1], count(*) "
            f"FROM {source} WHERE src_asn IS NOT NULL GROUP BY 2, 3, 4, 5, 6, 7")


_HOUR_OF_TS = "date_trunc('hour', ts, 'UTC')"
_DAYS_OF_HOURS = (f"SELECT dim, date_trunc('day', bucket, 'UTC') AS bucket, {_BY}, key, "
                  "(array_agg(label ORDER BY bucket DESC) FILTER (WHERE label IS NOT NULL))[1] AS label, "
                  "sum(n)::bigint AS n FROM {source} GROUP BY 1, 2, 3, 4, 5, 6, 7")
_UPSERT = (f"INSERT INTO {{table}} AS s (dim, bucket, {_BY}, key, shard, label, n) "
           f"SELECT dim, bucket, {_BY}, key, {{shard}}, label, n FROM {{rows}} ORDER BY dim, key, bucket, {_BY} "
           f"ON CONFLICT (dim, key, bucket, {_BY}, shard) DO UPDATE SET n = s.n + excluded.n, "
           "label = coalesce(excluded.label, s.label)")

# The writer's part of INSERT_EVENTS: CTEs over `inserted`, which must return ts, src_org,
# the columns of KEYED_FILTERS and those of KEYED_COLUMNS; `%(shard)s` is the writer's shard.
WRITER_CTES = (
    f"keyed AS ({_unpivoted('inserted', _HOUR_OF_TS)}), "
    f"keyed_hours AS ({_UPSERT.format(table='stats_hours', shard='%(shard)s', rows='keyed')}), "
    f"keyed_days AS ({_UPSERT.format(table='stats_days', shard='%(shard)s', rows='(' + _DAYS_OF_HOURS.format(source='keyed') + ') d')})"
)

# Migration 3: the per-hour rollup of five dimensions becomes these two keyed tables, filled
# from the events already stored (shard 0): one partition (a day) at a time, grouped in memory
# into a temporary table, the indexes built once at the end. A first version grouped every
# event in one upsert and had not ended after 8 minutes at 10M events (it sorted ~80M rows
# and spilled, an ordered aggregate per group); this one: docs/performance.md "PostgreSQL".
_REBUILD = f"""DO $rebuild$
DECLARE part regclass;
BEGIN
  FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'events'::regclass LOOP
    EXECUTE format($q$CREATE TEMPORARY TABLE keyed_rebuild AS {_unpivoted("%1$s", _HOUR_OF_TS)}$q$, part);
    INSERT INTO stats_hours (dim, bucket, {_BY}, key, shard, label, n)
      SELECT dim, bucket, {_BY}, key, 0, label, n FROM keyed_rebuild;
    INSERT INTO stats_days (dim, bucket, {_BY}, key, shard, label, n)
      SELECT dim, bucket, {_BY}, key, 0, label, n FROM ({_DAYS_OF_HOURS.format(source="keyed_rebuild")}) d;
    DROP TABLE keyed_rebuild;
  END LOOP;
END $rebuild$"""

MIGRATION = [
    "DROP TABLE stats_hours",
    _table_sql("stats_hours"),
    _table_sql("stats_days"),
    "SET LOCAL work_mem = '256MB'",  # a day's grouping in memory, not spilled
    _REBUILD,
    *_index_sql("stats_hours"),
    *_index_sql("stats_days"),
    "ANALYZE stats_hours",
    "ANALYZE stats_days",
]


@dataclass(frozen=True)
class Spans:
    """A window `since <= ts < until` (until None: open) cut for reading: whole days from
    stats_days, whole hours from stats_hours, the partial hours at both ends from the events;
    each a list of [from, to) ranges, `to` None for open."""

    days: list[tuple[datetime, datetime | None]]
    hours: list[tuple[datetime, datetime | None]]
    raw: list[tuple[datetime, datetime | None]]




def spans(since: datetime, until: datetime | None) -> Spans:
    hour_from = ceil_to(since, _HOUR)
    hour_to = None if until is None else floor_to(until, _HOUR)
    if hour_to is not None and hour_from >= hour_to:
        return Spans([], [], [(since, until)])
    raw = [(since, hour_from)] + ([] if hour_to is None or until is None else [(hour_to, until)])
    day_from = ceil_to(hour_from, _DAY)
    day_to = None if hour_to is None else floor_to(hour_to, _DAY)
    if day_to is not None and day_from >= day_to:
        return Spans([], [(hour_from, hour_to)], raw)
    hours = [(hour_from, day_from)] + ([] if day_to is None else [(day_to, hour_to)])
    return Spans([(day_from, day_to)], [(a, b) for a, b in hours if b is None or a < b], raw)


class _Sql:
    """Bound parameters, named in order of appearance."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s"

    def ranges(self, column: str, ranges: list[tuple[datetime, datetime | None]]) -> str:
        if not ranges:
            return "false"
        parts = [f"{column} >= {self.bind(a)}" + ("" if b is None else f" AND {column} < {self.bind(b)}")
                 for a, b in ranges]
        return "(" + " OR ".join(f"({part})" for part in parts) + ")"

    def of(self, events: EventFilter) -> str:
        """The filter's conditions on KEYED_FILTERS (the same text for the rollups and the events)."""
        return "".join(f" AND {column} = ANY({self.bind([str(value) for value in values])})"
                       for name, column in KEYED_FILTERS.items() if (values := getattr(events, name)))


async def total(read: Read, cut: Spans, events: EventFilter) -> int:
    """The events of the window `cut` that `events` selects (it may restrict KEYED_FILTERS only)."""
    q = _Sql()
    of = q.of(events)
    parts = [f"SELECT sum(n) AS n FROM {table} WHERE dim = '' AND {q.ranges('bucket', ranges)}{of}"
             for table, ranges in (("stats_days", cut.days), ("stats_hours", cut.hours)) if ranges]
    if cut.raw:
        parts.append(f"SELECT count(*) AS n FROM events WHERE {q.ranges('ts', cut.raw)}{of}")
    rows = await read(f"SELECT coalesce(sum(n), 0)::bigint FROM ({' UNION ALL '.join(parts)}) p", q.params)
    return int(rows[0][0])


async def ranked(read: Read, dim: str, cut: Spans, top_n: int, events: EventFilter | None = None,
                 depth: int | None = None) -> list[TopItem]:
    """The `top_n` keys of `dim` in the window `cut` (of the events `events` selects, which may
    restrict KEYED_FILTERS only), most
    events first, ties by key (numerically for numeric dimensions), exact; `depth` is the
    first depth of the sorted lists (tests make it small to reach the deeper rounds)."""
    numeric = WINDOW_COLUMNS[dim][1]
    order = (lambda item: (-item[1], int(item[0]))) if numeric else (lambda item: (-item[1], item[0]))
    depth = depth or top_n * 4 + 20
    while True:
        sql, params = _round(dim, cut, events or EventFilter(), depth)
        rows = await read(sql, params)
        bound, more = next((int(n), int(more)) for key, n, _, more in rows if key is None)
        found = sorted(((key, int(n), label) for key, n, label, _ in rows if key is not None), key=order)[:top_n]
        if more == 0 or (len(found) == top_n and found[-1][1] > bound):
            return [TopItem(int(key) if numeric else key, n, label if dim == "asns" else None)
                    for key, n, label in found]
        depth *= 8


def _round(dim: str, cut: Spans, events: EventFilter, depth: int) -> tuple[str, dict[str, Any]]:
    """One round of the threshold algorithm at `depth`: the candidates' exact (key, n, label,
    NULL), then one row (NULL, bound, NULL, lists with more than `depth` keys)."""
    q = _Sql()
    of = q.of(events)
    the_dim, deeper = q.bind(dim), q.bind(depth + 1)
    column = KEYED_COLUMNS[dim]
    label = "src_org" if dim == "asns" else "NULL::text"
    ctes, heads, totals = [], [], []
    if cut.raw:  # the partial hours, grouped once
        ctes.append(f"edge AS MATERIALIZED (SELECT {column}::text AS key, count(*) AS n, "
                    f"(array_agg({label} ORDER BY ts DESC) FILTER (WHERE {label} IS NOT NULL))[1] AS label, "
                    f"max(ts) AS t FROM events WHERE {q.ranges('ts', cut.raw)}{of} AND {column} IS NOT NULL GROUP BY 1)")
        heads.append(f"SELECT key, n, row_number() OVER (ORDER BY n DESC) AS place FROM edge "
                     f"ORDER BY n DESC LIMIT {deeper}")
        totals.append("SELECT key, n, label, t FROM edge WHERE key IN (SELECT key FROM cands)")
    for table, ranges in (("stats_days", cut.days), ("stats_hours", cut.hours)):
        if not ranges:
            continue
        within = q.ranges("bucket", ranges)
        # The lists: (bucket, kind, outcome, honeypot, protocol, shard) of every event, from the
        # total's rows.
        ctes.append(f"{table}_lists AS (SELECT bucket, {_BY}, shard FROM {table} "
                    f"WHERE dim = '' AND key = '' AND {within}{of})")
        heads.append(f"SELECT r.key, r.n, r.place FROM {table}_lists l CROSS JOIN LATERAL ("
                     f"SELECT key, n, row_number() OVER (ORDER BY n DESC) AS place FROM {table} s "
                     f"WHERE s.dim = {the_dim} AND s.bucket = l.bucket AND s.shard = l.shard "
                     + "".join(f"AND s.{column} = l.{column} " for column in KEYED_FILTERS.values())
                     + f"ORDER BY n DESC LIMIT {deeper}) r")
        totals.append(f"SELECT key, n, label, bucket AS t FROM {table} WHERE dim = {the_dim} "
                      f"AND key IN (SELECT key FROM cands) AND {within}{of}")
    if not heads:
        return "SELECT NULL, 0, NULL, 0", {}
    ctes.append("heads AS (" + " UNION ALL ".join(f"({head})" for head in heads) + ")")
    ctes.append(f"cands AS (SELECT DISTINCT key FROM heads WHERE place < {deeper})")
    return (f"WITH {', '.join(ctes)} "
            f"SELECT key, sum(n)::bigint, {_LATEST_LABEL}, NULL::bigint FROM ("
            + " UNION ALL ".join(totals) + ") c GROUP BY key "
            f"UNION ALL SELECT NULL, coalesce(sum(n), 0)::bigint, NULL, count(*) FROM heads WHERE place = {deeper}",
            q.params)
