"""The PostgreSQL store's keyed rollups and their exact top-N reads.

Two tables of one shape, `stats_hours` (one bucket per UTC hour) and `stats_days` (per UTC
day): `(dim, bucket, kind, outcome, honeypot, protocol, key, shard, label, n)`, the events
of a bucket with that kind, outcome, honeypot and protocol ('' for none) whose dimension
`dim` had the value `key` (KEYED_COLUMNS: the summary's nine lists, and dim '' key '' for
the total). `label` is an ASN's organisation, NULL elsewhere. Keyed so, they answer a
summary whose filter restricts at most those four (KEYED_FILTERS: what a sensor's software
and an event's type say, a handful of values each on a real honeynet, so keying by them
multiplies the rows little); any other filter is counted from the events
(postgres_stats.window_summary).

Why both levels and how they are read (measured at 10M events over 30 days, synthetic fill
with 200,000 addresses: docs/performance.md "PostgreSQL with keyed rollups"): summing one
hour level over 30 days read 3.24M rows for the ASNs alone (7.1 s), and the addresses have
about as many (address, kind, hour) rows as there are events. So a window is cut into whole
days, whole hours and raw partial hours (`spans`, a day mostly covered read as the day less
its other hours), and a list is not summed over every key but ranked by the threshold
algorithm (Fagin et al.): each sorted list, one per (bucket, kind, outcome, honeypot,
protocol, shard), gives its first keys through `stats_*_ranked`; a key no list showed has
at most the sum of every list's next count (the bound); the candidates are pruned by their
own bounds and the survivors summed exactly through the primary key, which starts with
(dim, key). Once the N-th sum is above the bound the answer is final, otherwise the lists
deepen eightfold; a flat list (too many candidates survive, or still open after ROUNDS) is
summed whole instead, which is cheaper there. Every path is exact.

Written by the writer's INSERT_EVENTS (postgres_stats.py) from the rows it inserted, in the
same transaction; `shard` is the writer's, so writers never wait on each other's rows.

What must not live here: the raw-event lists (window_sql.py), DDL other than these tables.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
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

_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)
_LATEST_LABEL = "(array_agg(label ORDER BY t DESC) FILTER (WHERE label IS NOT NULL))[1]"
# An ASN's organisation among events: the latest one known (the raw-event paths use it too).
LATEST_ORG = "(array_agg(src_org ORDER BY ts DESC) FILTER (WHERE src_org IS NOT NULL))[1]"


def _table_sql(name: str) -> str:
    return (f'CREATE TABLE {name} (dim text COLLATE "C" NOT NULL, bucket timestamptz NOT NULL, '
            + "".join(f'{column} text COLLATE "C" NOT NULL, ' for column in KEYED_FILTERS.values())
            + 'key text COLLATE "C" NOT NULL, shard smallint NOT NULL, label text, n bigint NOT NULL)')


def _index_sql(name: str) -> list[str]:
    return [
        # Both indexes carry what the reads need (INCLUDE), so they read the index alone where
        # the visibility map allows: a dimension's rows are scattered over the heap (the
        # writer appends them batch by batch), and 30 days of passwords summed whole took
        # 702 ms through the heap, 257 ms from a covering index (10M events).
        f"ALTER TABLE {name} ADD PRIMARY KEY (dim, key, bucket, {_BY}, shard) INCLUDE (n, label)",
        # One sorted list per (dim, bucket, kind, outcome, honeypot, protocol, shard): the
        # threshold algorithm's sorted access, and a dimension's rows of a range in order.
        f"CREATE INDEX {name}_ranked ON {name} (dim, bucket, {_BY}, shard, n DESC) INCLUDE (key, label)",
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
            f"{LATEST_ORG}, count(*) "
            f"FROM {source} WHERE src_asn IS NOT NULL GROUP BY 2, 3, 4, 5, 6, 7")


_HOUR_OF_TS = "date_trunc('hour', ts, 'UTC')"
# The day rows of hour rows; again the ASNs' label apart.
_DAYS_OF_HOURS = (f"SELECT dim, date_trunc('day', bucket, 'UTC') AS bucket, {_BY}, key, NULL::text AS label, "
                  "sum(n)::bigint AS n FROM {source} WHERE dim <> 'asns' GROUP BY 1, 2, 3, 4, 5, 6, 7 "
                  f"UNION ALL SELECT dim, date_trunc('day', bucket, 'UTC'), {_BY}, key, "
                  "(array_agg(label ORDER BY bucket DESC) FILTER (WHERE label IS NOT NULL))[1], "
                  "sum(n)::bigint FROM {source} WHERE dim = 'asns' GROUP BY 1, 2, 3, 4, 5, 6, 7")
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
    # An ASN filter (a click on an ASN of a list) is read from the events: 2,166 of 10M
    # events at 30 days took a 4.7 s scan without an index. (A prefix filter would want an
    # index on `src_ip::inet`, but one src_ip that is not an address, which nothing but the
    # adapters prevents, would then fail its whole batch: not added.)
    "CREATE INDEX events_src_asn ON events (src_asn, ts)",
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
    stats_days, whole hours from stats_hours, hours to subtract from a day (`minus`), and the
    partial hours at both ends from the events; each a list of [from, to) ranges, `to` None
    for open.

    A day the window covers for more than half (a 24-hour window ending at 15:12 covers
    today's 00:00-15:00) is read as the day less the hours it does not cover (15:00-24:00,
    where only the current hour has events yet) rather than as its hours: 23 hourly lists
    per (kind, outcome, ...) became a day's list, 8 hours and one hour subtracted."""

    days: list[tuple[datetime, datetime | None]]
    hours: list[tuple[datetime, datetime | None]]
    raw: list[tuple[datetime, datetime | None]]
    minus: list[tuple[datetime, datetime | None]] = field(default_factory=list)


def spans(since: datetime, until: datetime | None) -> Spans:
    hour_from = ceil_to(since, _HOUR)
    hour_to = None if until is None else floor_to(until, _HOUR)
    if hour_to is not None and hour_from >= hour_to:
        return Spans([], [], [(since, until)])
    cut = Spans([], [], [(since, hour_from)] + ([] if hour_to is None else [(hour_to, until)]))
    start, first_day = hour_from, floor_to(hour_from, _DAY)
    if start != first_day:  # the first day in part
        end = first_day + _DAY if hour_to is None else min(first_day + _DAY, hour_to)
        _partial(cut, first_day, start, end)
        start = end
    if hour_to is None:
        cut.days.append((start, None))
        return cut
    last_day = floor_to(hour_to, _DAY)
    if start < last_day:
        cut.days.append((start, last_day))
    if max(start, last_day) < hour_to:  # the last day in part
        _partial(cut, last_day, max(start, last_day), hour_to)
    return cut


def _partial(cut: Spans, day: datetime, start: datetime, end: datetime) -> None:
    """Whole hours [start, end) of `day`: as hours, or as the day less its other hours when
    those are fewer."""
    if (end - start) * 2 <= _DAY:
        cut.hours.append((start, end))
        return
    cut.days.append((day, day + _DAY))
    cut.minus.extend(r for r in ((day, start), (end, day + _DAY)) if r[0] < r[1])


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


Edge = tuple[list[str], list[int], list[str | None], list[datetime]]  # keys, counts, labels, latest ts


async def edges(read: Read, cut: Spans, events: EventFilter, dims: Iterable[str] = KEYED_COLUMNS
                ) -> dict[str, Edge]:
    """Per dimension of `dims` ('' the total), the (key, n, label, t) of the window's partial
    hours, from one scan of their events: each list's rounds then read them as a parameter
    instead of grouping the events again (nine groupings of the same hour, one per list, were
    ~10-50 ms each at 10M events)."""
    found: dict[str, Edge] = {dim: ([], [], [], []) for dim in dims}
    if not cut.raw:
        return found
    q = _Sql()
    where = f"{q.ranges('ts', cut.raw)}{q.of(events)}"
    values = ", ".join(f"('{dim}', {KEYED_COLUMNS[dim]}::text)" for dim in found if dim != "asns")
    parts = [f"SELECT v.dim, v.key, count(*), NULL, max(ts) FROM events CROSS JOIN LATERAL (VALUES {values}) "
             f"v(dim, key) WHERE {where} AND v.key IS NOT NULL GROUP BY 1, 2"] if values else []
    if "asns" in found:
        parts.append(f"SELECT 'asns', src_asn::text, count(*), {LATEST_ORG}, "
                     f"coalesce(max(ts) FILTER (WHERE src_org IS NOT NULL), max(ts)) FROM events WHERE {where} "
                     "AND src_asn IS NOT NULL GROUP BY 2")
    rows = await read(" UNION ALL ".join(parts), q.params)
    for dim, key, n, label, t in rows:
        keys, counts, labels, moments = found[dim]
        keys.append(key)
        counts.append(int(n))
        labels.append(label)
        moments.append(t)
    return found


async def total(read: Read, cut: Spans, events: EventFilter, edge: Edge) -> int:
    """The events of the window `cut` that `events` selects (it may restrict KEYED_FILTERS
    only); `edge`: the partial hours' total (edges()[''])."""
    q = _Sql()
    of = q.of(events)
    parts = [f"SELECT {sign}sum(n) AS n FROM {table} WHERE dim = '' AND {q.ranges('bucket', ranges)}{of}"
             for sign, table, ranges in (("", "stats_days", cut.days), ("", "stats_hours", cut.hours),
                                         ("-", "stats_hours", cut.minus)) if ranges]
    rolled = int((await read(f"SELECT coalesce(sum(n), 0)::bigint FROM ({' UNION ALL '.join(parts)}) p", q.params)
                  )[0][0]) if parts else 0
    return rolled + sum(edge[1])


# Rounds of the threshold algorithm before a list is summed whole: on a flat list (5,000
# passwords of about equal counts) every round deepens, and at 30 days the third round
# (depth 3,840 of 313 lists) took 19 s where one sum of the rollup rows takes ~0.3 s.
ROUNDS = 2


def _candidates_cap(top_n: int) -> int:
    """The most candidates a round sums. More mean a flat list, which the lists' bounds prune
    badly: at 10M events, 24 h, the ASNs kept 2,498 candidates of 2,498 (~220 ms to sum),
    where all the ASNs' rollup rows summed whole took ~185 ms; the addresses kept 15 of 2,687."""
    return 20 * top_n + 100


async def ranked(read: Read, dim: str, cut: Spans, top_n: int, edge: Edge, events: EventFilter | None = None,
                 depth: int | None = None, rounds: int = ROUNDS) -> list[TopItem]:
    """The `top_n` keys of `dim` in the window `cut` (of the events `events` selects, which may
    restrict KEYED_FILTERS only), most events first, ties by key (numerically for numeric
    dimensions), exact. `depth` is the first depth of the sorted lists, `rounds` how many
    rounds before the rollup rows are summed whole (tests vary both); `edge`: edges()[dim]."""
    numeric = WINDOW_COLUMNS[dim][1]
    order = (lambda item: (-item[1], int(item[0]))) if numeric else (lambda item: (-item[1], item[0]))
    events = events or EventFilter()
    depth = depth or top_n * 4 + 20
    for _ in range(rounds):
        sql, params = _round(dim, cut, events, depth, top_n, edge)
        rows = await read(sql, params)
        bound, more, candidates = next((int(n), int(more), int(label)) for key, n, label, more in rows if key is None)
        if candidates > _candidates_cap(top_n):
            break  # a flat list: summing it whole is cheaper
        found = sorted(((key, int(n), label) for key, n, label, _ in rows if key is not None and n > 0),
                       key=order)[:top_n]
        if more == 0 or (len(found) == top_n and found[-1][1] > bound):
            return _items(dim, found)
        depth *= 8
    sql, params = _whole(dim, cut, events, top_n, edge)
    return _items(dim, sorted(((key, int(n), label) for key, n, label in await read(sql, params)), key=order))


def _items(dim: str, found: list[tuple[str, int, str | None]]) -> list[TopItem]:
    numeric = WINDOW_COLUMNS[dim][1]
    return [TopItem(int(key) if numeric else key, n, label if dim == "asns" else None) for key, n, label in found]


def _parts(q: _Sql, dim: str, cut: Spans, of: str, edge: Edge, keys: str = "") -> list[str]:
    """(key, n, label, t) rows of `dim` in the window: one select per rollup range (each an
    index range on the primary key or the ranked index; subtracted hours negative) and the
    partial hours (the CTE `edge`, which the caller defines when `edge` has keys); `keys`: a
    condition on `key` (the candidates)."""
    the_dim = q.bind(dim)
    parts = [f"SELECT key, {sign}n, {label}, bucket AS t FROM {table} WHERE dim = {the_dim}{keys} "
             f"AND bucket >= {q.bind(a)}" + ("" if b is None else f" AND bucket < {q.bind(b)}") + of
             for sign, label, table, ranges in (("", "label", "stats_days", cut.days),
                                                ("", "label", "stats_hours", cut.hours),
                                                ("-", "NULL::text", "stats_hours", cut.minus))
             for a, b in ranges]
    if edge[0]:
        parts.append(f"SELECT key, n, label, t FROM edge WHERE true{keys}")
    return parts


def _edge(q: _Sql, edge: Edge) -> str:
    """The CTE `edge` (key, n, label, t): the partial hours' rows of one dimension, bound."""
    keys, counts, labels, moments = edge
    return (f"edge AS (SELECT * FROM unnest({q.bind(keys)}::text[], {q.bind(counts)}::bigint[], "
            f"{q.bind(labels)}::text[], {q.bind(moments)}::timestamptz[]) AS e(key, n, label, t))")


def _whole(dim: str, cut: Spans, events: EventFilter, top_n: int, edge: Edge) -> tuple[str, dict[str, Any]]:
    """Every key of `dim` summed over the window: (key, n, label) of the `top_n` first."""
    q = _Sql()
    of = q.of(events)
    ctes = [_edge(q, edge)] if edge[0] else []
    parts = _parts(q, dim, cut, of, edge)
    if not parts:
        return "SELECT NULL, 0, NULL WHERE false", {}
    order = "key::bigint" if WINDOW_COLUMNS[dim][1] else "key"
    return ((f"WITH {', '.join(ctes)} " if ctes else "")
            + f"SELECT key, sum(n)::bigint AS total, {_LATEST_LABEL} FROM (" + " UNION ALL ".join(parts)
            + f") r GROUP BY key HAVING sum(n) > 0 ORDER BY total DESC, {order} LIMIT {q.bind(top_n)}", q.params)


def _round(dim: str, cut: Spans, events: EventFilter, depth: int, top_n: int, edge: Edge
           ) -> tuple[str, dict[str, Any]]:
    """One round of the threshold algorithm at `depth`: the exact (key, n, label, NULL) of the
    candidates that can still be in the top `top_n` (none when they are more than
    `_candidates_cap`), then one row (NULL, bound, their number as text, lists with more than
    `depth` keys).

    A candidate is a key among the first `depth` of some list. Its count so far (`low`, what
    the lists showed) plus, for each list that did not show it, that list's next count is an
    upper bound (subtracted hours only lower it). The `top_n` candidates of the largest `low`
    are summed first (`probe`): a candidate whose upper bound is below the `top_n`-th of
    those sums cannot be in the answer and is not summed (on skewed lists most are not: at
    30 days the ASNs' 2,454 candidates of 313 lists read 560,000 rollup rows)."""
    q = _Sql()
    of = q.of(events)
    the_dim, deeper = q.bind(dim), q.bind(depth + 1)
    ctes, heads = [], []
    if edge[0]:
        ctes.append(_edge(q, edge))
        heads.append(f"SELECT 0::bigint AS list, key, n, row_number() OVER (ORDER BY n DESC) AS place FROM edge "
                     f"ORDER BY n DESC LIMIT {deeper}")
    for number, (table, ranges) in enumerate((("stats_days", cut.days), ("stats_hours", cut.hours)), start=1):
        if not ranges:
            continue
        # The lists: (bucket, kind, outcome, honeypot, protocol, shard) of every event, from
        # the total's rows; numbered apart for each table.
        ctes.append(f"{table}_lists AS (SELECT {number} + 2 * row_number() OVER () AS list, bucket, {_BY}, shard "
                    f"FROM {table} WHERE dim = '' AND key = '' AND {q.ranges('bucket', ranges)}{of})")
        heads.append(f"SELECT l.list, r.key, r.n, r.place FROM {table}_lists l CROSS JOIN LATERAL ("
                     f"SELECT key, n, row_number() OVER (ORDER BY n DESC) AS place FROM {table} s "
                     f"WHERE s.dim = {the_dim} AND s.bucket = l.bucket AND s.shard = l.shard "
                     + "".join(f"AND s.{column} = l.{column} " for column in KEYED_FILTERS.values())
                     + f"ORDER BY n DESC LIMIT {deeper}) r")
    if not heads:
        return "SELECT NULL, 0, '0', 0", {}
    ctes += [
        "heads AS (" + " UNION ALL ".join(f"({head})" for head in heads) + ")",
        f"nexts AS (SELECT list, n FROM heads WHERE place = {deeper})",
        "seen AS (SELECT h.key, sum(h.n) AS low, coalesce(sum(x.n), 0) AS shown FROM heads h "
        f"LEFT JOIN nexts x USING (list) WHERE h.place < {deeper} GROUP BY h.key)",
        f"probe AS (SELECT key FROM seen ORDER BY low DESC, key LIMIT {q.bind(top_n)})",
        "probed AS (SELECT sum(n) AS total FROM (" + " UNION ALL ".join(_parts(q, dim, cut, of, edge,
                                                                              " AND key IN (SELECT key FROM probe)"))
        + f") p GROUP BY key ORDER BY total DESC OFFSET {q.bind(top_n - 1)} LIMIT 1)",
        "cands AS (SELECT key FROM seen WHERE low + (SELECT coalesce(sum(n), 0) FROM nexts) - shown "
        ">= coalesce((SELECT total FROM probed), 0))",
    ]
    few = f" AND (SELECT count(*) FROM cands) <= {q.bind(_candidates_cap(top_n))}"
    parts = _parts(q, dim, cut, of, edge, f" AND key IN (SELECT key FROM cands){few}")
    return (f"WITH {', '.join(ctes)} "
            f"SELECT key, sum(n)::bigint, {_LATEST_LABEL}, NULL::bigint FROM (" + " UNION ALL ".join(parts)
            + ") c GROUP BY key "
            "UNION ALL SELECT NULL, coalesce(sum(n), 0)::bigint, (SELECT count(*) FROM cands)::text, count(*) FROM nexts",
            q.params)
