"""Dashboard statistics on the PostgreSQL store: rollups written with the events, read exactly.

The rollups are kept per time bucket, so a retention run that drops a day of events drops
that day's buckets and every answer stays exact for what remains:

- `stats_minutes (minute, kind, shard, n)`: the histogram and the 1 m / 1 h / 24 h counts;
- `stats_hours` and `stats_days` (dim, bucket, kind, outcome, honeypot, protocol, key, shard,
  label, n): every list of the summaries and their totals (postgres_keyed.py);
- `stats_sensors (sensor, shard, last_ingest_ts)`: each sensor's latest arrival.

INSERT_EVENTS inserts a staged batch and updates all four from the rows actually inserted
(`RETURNING`), in one statement and so in the writer's transaction: a redelivered event is
neither stored nor counted twice. Rows are upserted in key order, and each writer has its
own `shard`, so writers never wait on each other's rollup rows.

A reader asks for `since <= ts < until`: whole buckets inside come from a rollup, the
partial buckets at both edges from the raw events (through the `ts` primary key).

What must not live here: DDL (postgres_schema.py), the writer's queue (postgres.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from honeyatlas.clock import ceil_to, floor_to
from honeyatlas.store import WINDOW_TOP_DIMENSIONS, Counts, Summary, WindowSummary, postgres_keyed
from honeyatlas.store.columns import TOP_DIMENSIONS
from honeyatlas.store.filters import POSTGRES, EventFilter, where
from honeyatlas.store.window_sql import asn_labels_sql, labelled, lists_of, lists_sql, top_items, top_sql

Read = Callable[[str, Any], Awaitable[list[tuple[Any, ...]]]]

WINDOW = timedelta(hours=24)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MINUTE = timedelta(minutes=1)
_HOUR = timedelta(hours=1)
_TICK = timedelta(microseconds=1)


# Runs in the writer's transaction, after the batch was copied into `staging`. Returns the
# number of events inserted (the others were stored already: a redelivery).
INSERT_EVENTS = (
    "WITH inserted AS (INSERT INTO events SELECT * FROM staging ON CONFLICT (ts, id) DO NOTHING "
    "RETURNING ts, kind, outcome, honeypot, protocol, sensor, ingest_ts, src_country, src_asn, src_org, src_ip, dst_port, "
    "username, password, command, sha256), "
    "minutes AS (INSERT INTO stats_minutes AS s (minute, kind, shard, n) "
    "SELECT date_trunc('minute', ts), kind, %(shard)s, count(*) FROM inserted GROUP BY 1, 2 ORDER BY 1, 2 "
    "ON CONFLICT (minute, kind, shard) DO UPDATE SET n = s.n + excluded.n), "
    f"{postgres_keyed.WRITER_CTES}, "
    "sensors AS (INSERT INTO stats_sensors AS s (sensor, shard, last_ingest_ts) "
    "SELECT sensor, %(shard)s, max(ingest_ts) FROM inserted GROUP BY 1 ORDER BY 1 "
    "ON CONFLICT (sensor, shard) DO UPDATE SET last_ingest_ts = greatest(s.last_ingest_ts, excluded.last_ingest_ts)) "
    "SELECT count(*) FROM inserted"
)




def _minute_parts(since: datetime, until: datetime, select_rollup: str, select_raw: str,
                  kinds: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    """A UNION ALL over `since <= ts < until` (and `kinds`, if any): whole minutes from
    stats_minutes, the partial minutes at both edges from the events. The selects name their
    columns alike."""
    whole_from, whole_to = ceil_to(since, _MINUTE), floor_to(until, _MINUTE)
    params: dict[str, Any] = {"since": since, "until": until}
    of_kinds = ""
    if kinds:
        of_kinds = " AND kind = ANY(%(kinds)s)"
        params["kinds"] = list(kinds)
    if whole_from >= whole_to:
        return f"{select_raw} FROM events WHERE ts >= %(since)s AND ts < %(until)s{of_kinds}", params
    params.update(whole_from=whole_from, whole_to=whole_to)
    return (
        f"{select_rollup} FROM stats_minutes WHERE minute >= %(whole_from)s AND minute < %(whole_to)s{of_kinds} "
        f"UNION ALL {select_raw} FROM events WHERE ts >= %(since)s AND ts < %(whole_from)s{of_kinds} "
        f"UNION ALL {select_raw} FROM events WHERE ts >= %(whole_to)s AND ts < %(until)s{of_kinds}",
        params,
    )


async def _count(read: Read, since: datetime, until: datetime) -> int:
    parts, params = _minute_parts(since, until, "SELECT n", "SELECT 1 AS n")
    rows = await read(f"SELECT coalesce(sum(n), 0)::bigint FROM ({parts}) p", params)
    return int(rows[0][0])


async def summary(read: Read, now: datetime, top_n: int) -> Summary:
    """As duckdb_stats.summary: counts over `now - span <= ts <= now + 5 min`, and each
    dimension's top-N keys over `ts >= now - 24 h`, ties by key. `read` runs in one snapshot."""
    ahead = now + timedelta(minutes=5) + _TICK  # the counts include `now + 5 min` itself
    counts = Counts(*[await _count(read, now - span, ahead) for span in (_MINUTE, _HOUR, WINDOW)])
    cut = postgres_keyed.spans(now - WINDOW, None)
    edges = await postgres_keyed.edges(read, cut, EventFilter(), TOP_DIMENSIONS)
    top = {dim: await postgres_keyed.ranked(read, dim, cut, top_n, edges[dim]) for dim in TOP_DIMENSIONS}
    return Summary(counts=counts, top=top)


async def histogram(
    read: Read, since: datetime, until: datetime, bucket_seconds: int, by_kind: bool,
    events: EventFilter | None = None,
) -> list[tuple[datetime, str | None, int]]:
    """As duckdb_stats.histogram: (bucket start, kind or None, events) of the non-empty
    buckets of `since <= ts < until`, buckets aligned on multiples of `bucket_seconds`; from
    stats_minutes when `events` restricts at most the kind, else from the window's events."""
    if bucket_seconds % 60:
        raise ValueError("bucket_seconds must be a multiple of 60")
    events = events or EventFilter()
    width = timedelta(seconds=bucket_seconds)
    first = floor_to(since, width)
    kind = "kind" if by_kind else "NULL::text"
    first_us = (first - _EPOCH) // _TICK
    if not events.dimensions <= {"kinds"}:
        condition, bound = where(events.window(since, until), POSTGRES)
        rows = await read(
            f"SELECT ((extract(epoch FROM ts) * 1000000)::bigint - %s) / %s AS bucket, {kind} AS k, count(*)::bigint "
            f"FROM events WHERE {condition} GROUP BY 1, 2 ORDER BY 1, 2",
            [first_us, bucket_seconds * 1_000_000, *bound],
        )
        return [(first + int(bucket) * width, k, int(n)) for bucket, k, n in rows]
    parts, params = _minute_parts(since, until, "SELECT minute AS t, kind, n", "SELECT ts AS t, kind, 1 AS n",
                                  tuple(map(str, events.kinds)))
    params.update(first=first_us, width=bucket_seconds * 1_000_000)
    rows = await read(
        f"SELECT ((extract(epoch FROM t) * 1000000)::bigint - %(first)s) / %(width)s AS bucket, {kind} AS k, "
        f"sum(n)::bigint FROM ({parts}) p GROUP BY 1, 2 ORDER BY 1, 2",
        params,
    )
    return [(first + int(bucket) * width, k, int(n)) for bucket, k, n in rows]


# Which path answers what (the rule): a rollup answers what it is keyed by, the events the rest.
# - A filter restricting at most the kind, outcome, honeypot and protocol: the total and all
#   nine lists from the keyed rollups (postgres_keyed.py: whole days, whole hours, partial
#   hours from the events; each list ranked by the threshold algorithm).
# - Any other filter: from the window's events, the total and every list but the addresses
#   in one GROUPING SETS scan (window_sql.lists_sql), the addresses alone, an ASN's label for
#   the listed ASNs only.
# Both paths are exact; tests/store/test_window_summary.py checks that they agree.


async def window_summary(read: Read, events: EventFilter, top_n: int, rollups: bool = True,
                         depth: int | None = None, rounds: int = postgres_keyed.ROUNDS) -> WindowSummary:
    """The total and top-N lists of the events `events` selects (its window set); `read` runs
    in one snapshot; `rollups=False` counts everything from the events; `depth` and `rounds`:
    see postgres_keyed.ranked."""
    assert events.since is not None and events.until is not None
    if rollups and events.dimensions <= set(postgres_keyed.KEYED_FILTERS):
        cut = postgres_keyed.spans(events.since, events.until)
        edges = await postgres_keyed.edges(read, cut, events)
        return WindowSummary(
            total=await postgres_keyed.total(read, cut, events, edges[""]),
            top={dim: await postgres_keyed.ranked(read, dim, cut, top_n, edges[dim], events, depth, rounds)
                 for dim in WINDOW_TOP_DIMENSIONS})
    # Nine lists one after another were nine scans of the window, the filter tested in each
    # (0.4-4.3 s at 24 h, 42-74 s at 30 days for 10M events): one scan for all but the addresses.
    dims = [dim for dim in WINDOW_TOP_DIMENSIONS if dim != "ips"]
    total, top = lists_of(dims, await read(*lists_sql(events, POSTGRES, dims, top_n)))
    top["ips"] = top_items("ips", await read(*top_sql(events, POSTGRES, "ips", top_n)))
    if top["asns"]:
        top["asns"] = labelled(top["asns"], await read(*asn_labels_sql(events, POSTGRES, top["asns"], postgres_keyed.LATEST_ORG)))
    return WindowSummary(total=total, top={dim: top[dim] for dim in WINDOW_TOP_DIMENSIONS})


async def sensor_activity(read: Read, hour_ago: datetime) -> list[tuple[str, datetime, int]]:
    """(sensor, latest ingest_ts, events with ingest_ts >= hour_ago) of every sensor with events."""
    rows = await read(
        "WITH last AS (SELECT sensor, max(last_ingest_ts) AS t FROM stats_sensors GROUP BY sensor), "
        "recent AS (SELECT sensor, count(*) AS n FROM events WHERE ingest_ts >= %(hour_ago)s GROUP BY sensor) "
        "SELECT last.sensor, last.t, coalesce(recent.n, 0) FROM last LEFT JOIN recent USING (sensor)",
        {"hour_ago": hour_ago},
    )
    return [(sensor, last, int(n)) for sensor, last, n in rows]
