"""Dashboard statistics on the DuckDB store: the summary and the histogram, from rollups.

Scanning every event of the last 24 hours costs about a second at 10 million events, so the
dashboard reads rollup tables instead (created by migrations 4 and 5 in duckdb.py):

- `stats_window`: for each dimension of the summary (`countries`, `asns`, `ips`, `ports`,
  `sensors`, and `total`), one row per key with its event count over the window
  `ts >= stats_state.window_start`, which trails the wall clock by 24 hours and a few seconds.
- `stats_minutes`: events per (minute of `ts`, kind), for the whole history.
- `stats_sensors`: each sensor's latest `ingest_ts`, for `/api/v1/sensors`.

All three cover exactly the events with `rowid <= stats_state.folded_rowid`. The store writer
*folds* the newer events into them every few seconds (`fold`, in one transaction with the
new `folded_rowid` and `window_start`), so appends stay plain appends. A reader takes one
snapshot and corrects the rollups with the few raw events they do not cover: those after
`folded_rowid` (the last seconds) and those between `window_start` and the start of the
asked window. Every answer is therefore exact, whatever the order in which events arrive.

This relies on `events` being append-only (rowids then grow with every commit and never
move); whatever deletes events one day must rebuild these tables.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from honeyatlas.store import WINDOW_TOP_DIMENSIONS, Counts, Summary, TopItem, WindowSummary, duckdb_addresses
from honeyatlas.store.columns import TOP_DIMENSIONS
from honeyatlas.store.filters import DUCKDB, EventFilter, where
from honeyatlas.store.window_sql import asn_labels_sql, labelled, lists_of, lists_sql, top_items

WINDOW = timedelta(hours=24)
_EPOCH = datetime(1970, 1, 1)

_TOTAL = "total"
_LATEST_ORG = "arg_max(src_org, ts) FILTER (WHERE src_org IS NOT NULL)"
# How far a window may be from the rollup's trailing 24 hours for `stats_window` to answer it.
_NEAR = timedelta(hours=1)


def _change(added: str, removed: str | None = None) -> str:
    """(dim, key, label, n): per key of every dimension, the events matching `added` minus
    those matching `removed`; keys whose difference is 0 are left out. One small aggregation
    per dimension (faster than GROUPING SETS on the few thousand events a reader corrects)."""
    columns = ", ".join(column for column, _ in TOP_DIMENSIONS.values())
    signed = f"SELECT {columns}, src_org, 1 AS s FROM events WHERE {added}"
    if removed is not None:
        signed += f" UNION ALL SELECT {columns}, src_org, -1 FROM events WHERE {removed}"
    parts = [
        f"SELECT '{dim}' AS dim, {column}::VARCHAR AS key, {'any_value(src_org)' if dim == 'asns' else 'NULL'} AS label, "
        f"sum(s)::BIGINT AS n FROM e WHERE {column} IS NOT NULL GROUP BY {column} HAVING sum(s) <> 0"
        for dim, (column, _) in TOP_DIMENSIONS.items()
    ]
    parts.append(f"SELECT '{_TOTAL}', '', NULL, sum(s)::BIGINT FROM e HAVING sum(s) <> 0")
    return f"WITH e AS ({signed}) " + " UNION ALL ".join(parts)


# --------------------------------------------------------------------------- write side


def fold(con: duckdb.DuckDBPyConnection, now: datetime, lag: timedelta) -> int:
    """Bring the rollups up to the latest committed event, and move the window start to
    `now - 24 h - lag` (never backwards). One transaction; returns the events folded in.

    Runs on the store's writer cursor between appends (or on a store nobody else writes)."""
    con.begin()
    try:
        folded, start = con.execute("SELECT folded_rowid, window_start FROM stats_state").fetchall()[0]
        latest = con.execute("SELECT max(rowid) FROM events WHERE rowid > ?", [folded]).fetchall()[0][0]
        latest = folded if latest is None else latest
        new_start = max(start, (now - WINDOW - lag).replace(microsecond=0))
        if latest == folded and new_start == start:
            con.rollback()
            return 0
        con.execute(
            "CREATE OR REPLACE TEMP TABLE stats_delta AS "
            + _change("rowid > $folded AND rowid <= $latest AND ts >= $new_start",
                      "rowid <= $folded AND ts >= $start AND ts < $new_start"),
            {"folded": folded, "latest": latest, "start": start, "new_start": new_start},
        )
        con.execute(
            "UPDATE stats_window SET n = stats_window.n + d.n, label = coalesce(d.label, stats_window.label) "
            "FROM stats_delta d WHERE stats_window.dim = d.dim AND stats_window.key = d.key"
        )
        con.execute(
            "INSERT INTO stats_window SELECT dim, key, label, n FROM stats_delta d WHERE d.n > 0 AND NOT EXISTS "
            "(SELECT 1 FROM stats_window w WHERE w.dim = d.dim AND w.key = d.key)"
        )
        con.execute("DELETE FROM stats_window WHERE n <= 0")
        if latest > folded:
            con.execute(
                "CREATE OR REPLACE TEMP TABLE stats_minute_delta AS SELECT date_trunc('minute', ts) AS minute, "
                "kind, count(*) AS n FROM events WHERE rowid > ? AND rowid <= ? GROUP BY ALL",
                [folded, latest],
            )
            oldest = con.execute("SELECT min(minute) FROM stats_minute_delta").fetchall()[0][0]
            con.execute(  # `minute >= oldest` lets DuckDB skip the older row groups
                "UPDATE stats_minutes SET n = stats_minutes.n + d.n FROM stats_minute_delta d "
                "WHERE stats_minutes.minute >= ? AND stats_minutes.minute = d.minute AND stats_minutes.kind = d.kind",
                [oldest],
            )
            con.execute(
                "INSERT INTO stats_minutes SELECT minute, kind, n FROM stats_minute_delta d WHERE NOT EXISTS "
                "(SELECT 1 FROM stats_minutes m WHERE m.minute >= ? AND m.minute = d.minute AND m.kind = d.kind)",
                [oldest],
            )
            con.execute("DROP TABLE stats_minute_delta")
            con.execute(
                "CREATE OR REPLACE TEMP TABLE stats_sensor_delta AS SELECT sensor, max(ingest_ts) AS last_ingest_ts "
                "FROM events WHERE rowid > ? AND rowid <= ? GROUP BY sensor",
                [folded, latest],
            )
            con.execute(
                "UPDATE stats_sensors SET last_ingest_ts = greatest(stats_sensors.last_ingest_ts, d.last_ingest_ts) "
                "FROM stats_sensor_delta d WHERE stats_sensors.sensor = d.sensor"
            )
            con.execute(
                "INSERT INTO stats_sensors SELECT sensor, last_ingest_ts FROM stats_sensor_delta d WHERE NOT EXISTS "
                "(SELECT 1 FROM stats_sensors s WHERE s.sensor = d.sensor)"
            )
            con.execute("DROP TABLE stats_sensor_delta")
        con.execute("DROP TABLE stats_delta")
        con.execute("UPDATE stats_state SET folded_rowid = ?, window_start = ?", [latest, new_start])
        count = latest - folded  # rowids of an append-only table are dense
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return count


# --------------------------------------------------------------------------- read side


def summary(con: duckdb.DuckDBPyConnection, now: datetime, top_n: int) -> Summary:
    """Counts (1 m, 1 h, and 24 h up to 5 minutes ahead of `now`) and the top-N keys of each
    dimension over `ts >= now - 24 h`, exact, from one snapshot.

    The rollup counts `ts >= window_start` up to `folded_rowid`; the events after it are
    added, and those between `window_start` and `now - 24 h` removed (or added, for a `now`
    the window has already passed: exact still, but that edge may be large)."""
    day = now - WINDOW
    ahead = now + timedelta(minutes=5)
    con.begin()
    try:
        folded, start = con.execute("SELECT folded_rowid, window_start FROM stats_state").fetchall()[0]
        tail = "rowid > $folded AND ts >= $day"
        if day >= start:
            sql = _change(tail, "rowid <= $folded AND ts >= $start AND ts < $day")
        else:
            sql = _change(f"({tail}) OR (rowid <= $folded AND ts >= $day AND ts < $start)")
        changes: dict[str, dict[str, tuple[int, str | None]]] = {dim: {} for dim in (*TOP_DIMENSIONS, _TOTAL)}
        for dim, key, label, n in con.execute(sql, {"folded": folded, "day": day, "start": start}).fetchall():
            changes[dim][key] = (n, label)
        stored_total = con.execute("SELECT n FROM stats_window WHERE dim = ?", [_TOTAL]).fetchall()
        total = (stored_total[0][0] if stored_total else 0) + changes[_TOTAL].get("", (0, None))[0]
        m1, h1, beyond = con.execute(
            "SELECT count(*) FILTER (WHERE ts >= ? AND ts <= ?), count(*) FILTER (WHERE ts <= ?), "
            "count(*) FILTER (WHERE ts > ?) FROM events WHERE ts >= ?",
            [now - timedelta(minutes=1), ahead, ahead, ahead, now - timedelta(hours=1)],
        ).fetchall()[0]
        tops = {dim: _top(con, dim, numeric, changes[dim], top_n) for dim, (_, numeric) in TOP_DIMENSIONS.items()}
    finally:
        con.rollback()
    return Summary(
        counts=Counts(m1, h1, total - beyond),
        top={dim: [_item(dim, key, n, label) for key, n, label in items] for dim, items in tops.items()},
    )


def _top(
    con: duckdb.DuckDBPyConnection, dim: str, numeric: bool, changed: dict[str, tuple[int, str | None]], top_n: int
) -> list[tuple[str, int, str | None]]:
    """The N largest corrected counts of a dimension, ties by key, without reading every key.

    Candidates are the rollup's `limit` largest keys; every other key has at most `bound`
    (the next rollup count) plus its own change. A key whose change is positive and which
    could still reach the N-th count is looked up; the answer is final once the N-th count
    is above `bound`, otherwise the candidate list grows (until it holds every key)."""
    order = (lambda item: (-item[1], int(item[0]))) if numeric else (lambda item: (-item[1], item[0]))
    limit = top_n * 4 + 20
    while True:
        rows = con.execute(
            "SELECT key, n, label FROM stats_window WHERE dim = ? ORDER BY n DESC LIMIT ?", [dim, limit + 1]
        ).fetchall()
        complete = len(rows) <= limit
        bound = 0 if complete else rows[limit][1]
        counts = {key: (n, label) for key, n, label in rows[:limit]}
        outside: dict[str, tuple[int, str | None]] = {}
        for key, (change, label) in changed.items():
            if key in counts:
                n, stored_label = counts[key]
                counts[key] = (n + change, label or stored_label)
            elif change > 0:  # stored count unknown: 0 if complete, at most `bound` otherwise
                outside[key] = (change, label)
        ranked = sorted(((k, n, label) for k, (n, label) in counts.items() if n > 0), key=order)[:top_n]
        if complete:
            counts.update(outside)
        else:
            floor = ranked[-1][1] if len(ranked) == top_n else 0
            reachable = [key for key, (change, _) in outside.items() if bound + change >= floor]
            if reachable:
                for key, n in con.execute(
                    "SELECT key, n FROM stats_window WHERE dim = ? AND list_contains(?, key)", [dim, reachable]
                ).fetchall():
                    counts[key] = (n + outside[key][0], outside[key][1])
                for key in reachable:
                    counts.setdefault(key, outside[key])
        ranked = sorted(((k, n, label) for k, (n, label) in counts.items() if n > 0), key=order)[:top_n]
        if complete or (len(ranked) == top_n and ranked[-1][1] > bound):
            return ranked
        limit *= 8


def sensor_activity(con: duckdb.DuckDBPyConnection, hour_ago: datetime) -> list[tuple[str, datetime, int]]:
    """(sensor, latest ingest_ts, events with ingest_ts >= hour_ago) of every sensor with events.

    The latest ingest time comes from `stats_sensors` and the unfolded events; the hour's
    count from the events themselves, which arrive in `ingest_ts` order, so DuckDB reads only
    the last hour's row groups."""
    con.begin()
    try:
        folded = con.execute("SELECT folded_rowid FROM stats_state").fetchall()[0][0]
        rows = con.execute(
            "WITH last AS (SELECT sensor, max(t) AS t FROM (SELECT sensor, last_ingest_ts AS t FROM stats_sensors "
            "UNION ALL SELECT sensor, max(ingest_ts) FROM events WHERE rowid > ? GROUP BY sensor) GROUP BY sensor), "
            "recent AS (SELECT sensor, count(*) AS n FROM events WHERE ingest_ts >= ? GROUP BY sensor) "
            "SELECT last.sensor, last.t, coalesce(recent.n, 0) FROM last LEFT JOIN recent USING (sensor)",
            [folded, hour_ago],
        ).fetchall()
    finally:
        con.rollback()
    return [(sensor, last, int(n)) for sensor, last, n in rows]


def _item(dim: str, key: str, n: int, label: str | None) -> TopItem:
    return TopItem(int(key) if TOP_DIMENSIONS[dim][1] else key, n, label if dim == "asns" else None)


def bucket_start(moment: datetime, bucket_seconds: int) -> datetime:
    """The start of the histogram bucket holding `moment`: buckets are aligned on multiples
    of `bucket_seconds` since the Unix epoch (naive UTC in, naive UTC out)."""
    width = timedelta(seconds=bucket_seconds)
    return _EPOCH + (moment - _EPOCH) // width * width


def histogram(
    con: duckdb.DuckDBPyConnection, since: datetime, until: datetime, bucket_seconds: int, by_kind: bool,
    events: EventFilter | None = None,
) -> list[tuple[datetime, str | None, int]]:
    """(bucket start, kind or None, events) of the non-empty buckets, for `since <= ts < until`
    (the first and last buckets may be cut by `since` and `until`). `bucket_seconds` must be
    a multiple of 60. Only the events `events` selects (its window ignored).

    Whole minutes come from `stats_minutes`, which is keyed by (minute, kind), when the filter
    restricts at most the kind; the partial minutes at both ends and the events not folded
    yet are counted from `events`. Any other filter is counted from the events of the window."""
    if bucket_seconds % 60:
        raise ValueError("bucket_seconds must be a multiple of 60")
    con.begin()
    try:
        rows = _histogram(con, since, until, bucket_seconds, by_kind, events or EventFilter())
    finally:
        con.rollback()
    return rows


def _histogram(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime, bucket_seconds: int,
               by_kind: bool, events: EventFilter) -> list[tuple[datetime, str | None, int]]:
    first = bucket_start(since, bucket_seconds)
    width = timedelta(seconds=bucket_seconds)
    kind = "kind" if by_kind else "NULL"
    first_us = (first - _EPOCH) // timedelta(microseconds=1)
    if not events.dimensions <= {"kinds"}:
        condition, bound = where(events.window(since, until), DUCKDB)
        rows = con.execute(
            f"SELECT (epoch_us(ts) - ?) // ? AS bucket, {kind} AS k, count(*)::BIGINT FROM events "
            f"WHERE {condition} GROUP BY ALL ORDER BY 1, 2",
            [first_us, bucket_seconds * 1_000_000, *bound],
        ).fetchall()
        return [(first + int(bucket) * width, k, int(n)) for bucket, k, n in rows]
    parts, params = _minute_parts(con, since, until, events)
    params.update(first=first_us, width=bucket_seconds * 1_000_000)
    rows = con.execute(
        f"SELECT (epoch_us(t) - $first) // $width AS bucket, {kind} AS k, sum(n)::BIGINT FROM ({parts}) "
        "GROUP BY ALL ORDER BY 1, 2",
        params,
    ).fetchall()
    return [(first + int(bucket) * width, k, int(n)) for bucket, k, n in rows]


def _minute_parts(con: duckdb.DuckDBPyConnection, since: datetime, until: datetime, events: EventFilter
                  ) -> tuple[str, dict[str, Any]]:
    """A UNION ALL of (t, kind, n) over `since <= ts < until` and the filter's kinds: whole
    minutes from `stats_minutes`, the partial minutes at both ends and the events not folded
    yet from `events`."""
    whole_from = since.replace(second=0, microsecond=0)
    if whole_from < since:
        whole_from += timedelta(minutes=1)
    whole_to = until.replace(second=0, microsecond=0)
    folded = con.execute("SELECT folded_rowid FROM stats_state").fetchall()[0][0]
    params: dict[str, Any] = {"folded": folded, "since": since, "until": until}
    kinds = ""
    if events.kinds:
        kinds = f" AND kind IN ({', '.join(f'$k{i}' for i in range(len(events.kinds)))})"
        params.update({f"k{i}": str(k) for i, k in enumerate(events.kinds)})
    parts = [f"SELECT ts AS t, kind, 1 AS n FROM events WHERE rowid > $folded AND ts >= $since AND ts < $until{kinds}"]
    if whole_from < whole_to:
        parts += [
            f"SELECT minute, kind, n FROM stats_minutes WHERE minute >= $whole_from AND minute < $whole_to{kinds}",
            "SELECT ts, kind, 1 FROM events WHERE rowid <= $folded AND ((ts >= $since AND ts < $whole_from) "
            f"OR (ts >= $whole_to AND ts < $until)){kinds}",
        ]
        params.update(whole_from=whole_from, whole_to=whole_to)
    else:
        parts.append(f"SELECT ts, kind, 1 FROM events WHERE rowid <= $folded AND ts >= $since AND ts < $until{kinds}")
    return " UNION ALL ".join(parts), params


# --------------------------------------------------------------------------- a window's summary

# Which path answers what (the rule): a rollup answers what it is keyed by, the events the rest.
# - The total: `stats_minutes` (keyed by minute and kind) when the filter restricts at most
#   the kind, for any window; else a count of the window's events.
# - The top lists of countries, ASNs, addresses, ports and sensors: `stats_window` (keyed by
#   dimension and key, over the trailing 24 hours) when the filter restricts nothing but the
#   window and the window is within an hour of the rollup's own at both ends (its correction
#   from the raw events stays small); else from the window's events.
# - Usernames, passwords, commands and payloads: no rollup carries them; from the events.
# From the events: the total and every list but the addresses in one scan (`lists_sql`), the
# addresses by their IPv4 key (duckdb_addresses.py), an ASN's label for the listed ASNs only.
# Both paths are exact; tests/store/test_window_summary.py checks that they agree.


def window_summary(con: duckdb.DuckDBPyConnection, events: EventFilter, top_n: int, now: datetime,
                   rollups: bool = True) -> WindowSummary:
    """The total and top-N lists of the events `events` selects (naive UTC window, set), in
    one snapshot; `rollups=False` counts everything from the events."""
    assert events.since is not None and events.until is not None
    since, until = events.since.replace(tzinfo=None), events.until.replace(tzinfo=None)
    events = events.window(since, until)
    top: dict[str, list[TopItem]] = {}
    total: int | None = None
    con.begin()
    try:
        folded, start = con.execute("SELECT folded_rowid, window_start FROM stats_state").fetchall()[0]
        if rollups and not events.dimensions and abs(since - start) <= _NEAR and until >= now - _NEAR:
            total, top = _rollup_window(con, folded, start, since, until, top_n)
        elif rollups and events.dimensions <= {"kinds"}:
            parts, params = _minute_parts(con, since, until, events)
            total = int(con.execute(f"SELECT coalesce(sum(n), 0)::BIGINT FROM ({parts})", params).fetchall()[0][0])
        wanted = [dim for dim in WINDOW_TOP_DIMENSIONS if dim not in top]
        # Not the addresses in the one scan: with their sets in it, it was slower than top_addresses.
        dims = [dim for dim in wanted if dim != "ips"]
        counted, lists = lists_of(dims, con.execute(*lists_sql(events, DUCKDB, dims, top_n)).fetchall())
        total = counted if total is None else total
        top.update(lists)
        if "ips" in wanted:
            condition, params = where(events, DUCKDB)
            sql, params = duckdb_addresses.top_addresses(condition, params, top_n)
            top["ips"] = top_items("ips", con.execute(sql, params).fetchall())
        if "asns" in wanted and top["asns"]:
            top["asns"] = labelled(top["asns"], con.execute(*asn_labels_sql(events, DUCKDB, top["asns"], _LATEST_ORG)).fetchall())
    finally:
        con.rollback()
    return WindowSummary(total=total, top={dim: top[dim] for dim in WINDOW_TOP_DIMENSIONS})


def _rollup_window(con: duckdb.DuckDBPyConnection, folded: int, start: datetime, since: datetime, until: datetime,
                   top_n: int) -> tuple[int, dict[str, list[TopItem]]]:
    """`stats_window` (ts >= start, rowid <= folded) corrected to `since <= ts < until`: plus the
    newer events of the window and, for a window starting earlier, its folded events before
    `start`; minus the folded events after `start` outside the window."""
    added = "(rowid > $folded AND ts >= $since AND ts < $until)"
    if since < start:
        added += " OR (rowid <= $folded AND ts >= $since AND ts < $start)"
    removed = "rowid <= $folded AND ts >= $start AND (ts < $since OR ts >= $until)"
    changes: dict[str, dict[str, tuple[int, str | None]]] = {dim: {} for dim in (*TOP_DIMENSIONS, _TOTAL)}
    params = {"folded": folded, "since": since, "until": until, "start": start}
    for dim, key, label, n in con.execute(_change(added, removed), params).fetchall():
        changes[dim][key] = (n, label)
    stored_total = con.execute("SELECT n FROM stats_window WHERE dim = ?", [_TOTAL]).fetchall()
    total = (stored_total[0][0] if stored_total else 0) + changes[_TOTAL].get("", (0, None))[0]
    top = {dim: [_item(dim, key, n, label) for key, n, label in _top(con, dim, numeric, changes[dim], top_n)]
           for dim, (_, numeric) in TOP_DIMENSIONS.items()}
    return total, top
