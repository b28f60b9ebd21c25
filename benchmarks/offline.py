"""Benchmarks of stored data and of single stages: queries, adapters, decode, insert.

Queries run against a real server on a store filled by benchmarks/fill.py. The others call,
in this process, the very functions the server runs (frame_records, adapter.adapt,
DuckDBStore.append) next to the naive way of doing the same thing.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import httpx

from benchmarks.fill import fill_store
from benchmarks.harness import Context, Figure, add_sensor, memory_kib
from benchmarks.records import (
    Batches,
    geolocated_events,
    load_adapters_one_by_one,
    record_context,
    sample_path,
)

QUERIES = {
    "summary": "api/v1/stats/summary",
    "histogram 1h x 24": "api/v1/stats/histogram",
    "histogram 1m x 24h by kind": "api/v1/stats/histogram?bucket_seconds=60&by_kind=true",
    "events limit=100": "api/v1/events?limit=100",
    "events country=CN": "api/v1/events?country=CN",
    "sensors": "api/v1/sensors",
}
# The naive way to answer the same dashboard calls: scan the events of the last 24 hours,
# one statement per list (what /api/v1/stats/summary ran before its rollups), and bucket
# every event for the histograms. Timed in DuckDB on the same file after the server stopped.
_NAIVE_TOP = "SELECT {c}, count(*) AS n FROM events WHERE ts >= $day AND {c} IS NOT NULL GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10"
NAIVE = {
    "summary": [
        "SELECT count(*) FILTER (WHERE ts >= $m1), count(*) FILTER (WHERE ts >= $h1), count(*) FROM events "
        "WHERE ts >= $day AND ts <= $ahead",
        *(_NAIVE_TOP.format(c=c) for c in ("src_country", "src_ip", "dst_port", "sensor")),
        "SELECT src_asn, count(*) AS n, any_value(src_org) FROM events WHERE ts >= $day AND src_asn IS NOT NULL "
        "GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10",
    ],
    "histogram 1h x 24": ["SELECT time_bucket(INTERVAL '1 hour', ts) AS b, count(*) FROM events "
                          "WHERE ts >= $day AND ts < $now GROUP BY 1 ORDER BY 1"],
    "histogram 1m x 24h by kind": ["SELECT time_bucket(INTERVAL '1 minute', ts) AS b, kind, count(*) FROM events "
                                   "WHERE ts >= $day AND ts < $now GROUP BY 1, 2 ORDER BY 1"],
}


def _timed(call: Any, repeats: int) -> list[float]:
    call()  # warm: the first call pays for loading column segments
    out = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        out.append(time.perf_counter() - began)
    return out


# --------------------------------------------------------------------------- 4. queries


def queries(ctx: Context) -> list[Figure]:
    from benchmarks.harness import ServerProcess

    figures: list[Figure] = []
    repeats = ctx.size(5, 2)
    for rows in ctx.query_rows:
        data_dir = ctx.workdir / f"queries-{rows}"
        ctx.log(f"filling {rows:,} events")
        filled = fill_store(data_dir, rows)
        add_sensor(data_dir, "sensor-0")
        ctx.log(f"filled in {filled['seconds']:.0f} s, rollups folded in {filled['fold_seconds']:.0f} s "
                f"({filled['file_mib']:.0f} MiB); querying")
        target = "< 100" if rows <= 10_000_000 else "< 1000"
        label = f"{rows / 1e6:g}M" if rows >= 1_000_000 else f"{rows / 1e3:g}k"
        timings: dict[str, list[float]] = {}
        server = ServerProcess(data_dir, entry=ctx.server_entry)
        began = time.monotonic()
        server.start(timeout=1800)  # opening a big store replays the correlation window first
        started = time.monotonic() - began
        ctx.log(f"server up in {started:.0f} s")
        try:
            started_rss = memory_kib(server.pid)
            with httpx.Client(base_url=server.url, headers=server.auth, timeout=600) as client:
                for name, path in QUERIES.items():

                    def call(path: str = path, client: httpx.Client = client) -> None:
                        response = client.get(path)
                        response.raise_for_status()

                    timings[name] = _timed(call, repeats)
            rss = memory_kib(server.pid)
        finally:
            server.stop()
        naive: dict[str, list[float]] = {}
        con = duckdb.connect(str(data_dir / "events.duckdb"), read_only=True)
        try:
            now = datetime.now(UTC).replace(tzinfo=None)
            params = {"now": now, "day": now - timedelta(hours=24), "h1": now - timedelta(hours=1),
                      "m1": now - timedelta(minutes=1), "ahead": now + timedelta(minutes=5)}
            for name, statements in NAIVE.items():

                def run(statements: list[str] = statements, con: Any = con, params: dict[str, Any] = params) -> None:
                    for sql in statements:
                        used = {k: v for k, v in params.items() if f"${k}" in sql}
                        con.execute(sql, used).fetchall()

                naive[name] = _timed(run, repeats)
        finally:
            con.close()
        ctx.extra[f"queries_{rows}"] = {"fill": filled, "seconds": timings, "naive_seconds": naive,
                                        "server_start_seconds": started,
                                        "server_rss_mib_after_start": started_rss["VmRSS"] / 1024,
                                        "server_rss_mib": rss["VmRSS"] / 1024, "server_peak_rss_mib": rss["VmHWM"] / 1024}
        for name, seconds in timings.items():
            baseline = statistics.median(naive[name]) * 1000 if name in naive else None
            figures.append(Figure(
                "queries", f"{name} @ {label}", statistics.median(seconds) * 1000, "ms", baseline=baseline,
                higher_is_better=False, target=target if rows >= 10_000_000 else None,
                notes=f"median of {repeats} HTTP calls, max {max(seconds) * 1000:.0f} ms"
                + ("; baseline: the same answer by scanning the events (SQL only, no HTTP)" if baseline else ""),
            ))
        figures += [
            Figure("queries", f"server start on the {label} store", started, "s", higher_is_better=False,
                   notes="`serve` until it answers: migrations, rollup fold, correlation replay"),
            Figure("queries", f"server peak RSS on the {label} store", rss["VmHWM"] / 1024, "MiB",
                   higher_is_better=False, notes=f"{started_rss['VmRSS'] / 1024:.0f} MiB right after start"),
        ]
    return figures


# --------------------------------------------------------------------------- 6. adapters


def adapters(ctx: Context) -> list[Figure]:
    """Records/s of `adapter.adapt` per registered format, on its sample file."""
    import msgspec

    from honeyatlas.errors import RecordIgnored, RecordRejected

    seconds = ctx.size(2.0, 0.2)
    found, broken = load_adapters_one_by_one()
    figures: list[Figure] = []
    skipped: dict[str, str] = dict(broken)
    for name, adapter in sorted(found.items()):
        path = sample_path(name)
        if path is None:
            skipped[name] = "no sample in tests/data/samples"
            continue
        lines = [line for line in path.read_bytes().splitlines() if line.strip()]
        decoder = msgspec.json.Decoder()
        if adapter.input == "text":
            values = [line.decode("utf-8", "replace") for line in lines]
        else:
            values = [decoder.decode(line) for line in lines]
        contexts = [record_context(line.decode("utf-8", "replace")) for line in lines]
        records = events = 0
        began = time.perf_counter()
        while time.perf_counter() - began < seconds:
            for value, rc in zip(values, contexts, strict=True):
                try:  # noqa: SIM105 (suppress() would add its own cost to the timed loop)
                    events += len(adapter.adapt(value, rc))
                except (RecordRejected, RecordIgnored):
                    pass
            records += len(values)
        elapsed = time.perf_counter() - began
        figures.append(Figure("adapters", f"{name}", records / elapsed, "records/s",
                              notes=f"{path.name}: {len(values)} records, {events / records:.2f} events/record"))
    ctx.extra["adapters"] = {"skipped": skipped}
    return figures


# --------------------------------------------------------------------------- baselines: decode


def decode(ctx: Context) -> list[Figure]:
    """Framing one NDJSON batch of 100 cowrie records: the server's msgspec path vs stdlib json."""
    from honeyatlas.pipeline import RawRecord
    from honeyatlas.sources.http import frame_records

    body = Batches().prebuilt(1, "dc")[0]
    rounds = ctx.size(3000, 100)

    def server_path() -> None:
        frame_records(body, 100_000, "json")

    def naive_path() -> None:
        records = []
        for i, line in enumerate(line for line in body.split(b"\n") if line.strip()):
            records.append(RawRecord(i, line, json.loads(line)))

    fast = _rate(server_path, rounds) * 100
    slow = _rate(naive_path, rounds) * 100
    return [Figure("decode", "frame + decode a cowrie batch", fast, "records/s", baseline=slow,
                   notes="baseline: json.loads per line")]


def _rate(call: Any, rounds: int) -> float:
    call()
    began = time.perf_counter()
    for _ in range(rounds):
        call()
    return rounds / (time.perf_counter() - began)


# --------------------------------------------------------------------------- baselines: insert


def insert(ctx: Context) -> list[Figure]:
    """Durable writes: DuckDBStore (Arrow batches, one writer) vs row-by-row executemany."""
    from honeyatlas.metrics import Metrics
    from honeyatlas.store.duckdb import EVENT_COLUMNS, DuckDBStore, events_to_arrow

    total = ctx.size(200_000, 5_000)
    naive_total = ctx.size(2_000, 300)
    events = geolocated_events(10_000)
    batches = [events[i : i + 100] for i in range(0, len(events), 100)]

    store_dir = ctx.workdir / "insert-store"
    store = DuckDBStore(store_dir / "events.duckdb", max_pending_events=1_000_000, write_batch_max_events=100_000,
                        metrics=Metrics())

    async def through_store() -> float:
        await store.start()
        try:
            began = time.perf_counter()
            in_flight: set[asyncio.Task[None]] = set()
            for n in range(total // 100):
                if len(in_flight) >= 64:  # like 64 concurrent ingest requests
                    _, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                in_flight.add(asyncio.create_task(store.append(batches[n % len(batches)], [])))
            await asyncio.gather(*in_flight)
            return time.perf_counter() - began
        finally:
            await store.stop()

    fast_seconds = asyncio.run(through_store())

    # The naive way: one INSERT per row (executemany), one transaction per request batch of 100.
    rows = [tuple(row.values()) for row in events_to_arrow(events[:naive_total]).to_pylist()]  # not timed
    naive_path = ctx.workdir / "insert-naive" / "events.duckdb"
    naive_path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(naive_path))
    try:
        con.execute("CREATE TABLE events (" + ", ".join(f"{n} {t}" for n, t, _ in EVENT_COLUMNS) + ")")
        placeholders = ", ".join("?" for _ in EVENT_COLUMNS)
        began = time.perf_counter()
        for i in range(0, len(rows), 100):
            con.begin()
            con.executemany(f"INSERT INTO events VALUES ({placeholders})", rows[i : i + 100])
            con.commit()
        naive_seconds = time.perf_counter() - began
    finally:
        con.close()
    fast = total / fast_seconds
    slow = naive_total / naive_seconds if naive_seconds else math.nan
    return [Figure("insert", "durable event writes", fast, "events/s", baseline=slow,
                   notes=f"{total:,} events via DuckDBStore.append (100 per call, 64 in flight); baseline rate "
                         f"measured on {naive_total:,} rows, per-row executemany, commit per 100 "
                         f"(its row conversion not timed)")]
