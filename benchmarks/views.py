"""Filtered views at scale (issue 13): each dashboard call of a filtered view, over HTTP.

The store holds `rows` events (10 million by default) spread evenly over the last 30 days
(benchmarks/fill.py, `span_hours=720`; otherwise the shape of the query benchmark: 20 sensors,
200,000 skewed addresses, 30 countries, 6 kinds), so a 24-hour window holds 1/30 of them and
a 30-day window all of them. Every call of the page's history mode is timed for both windows
(`range=24h`, `range=30d`): the summary (window only, which the rollups answer, and filtered
by kind, country and an address prefix), the histogram, an events page (newest first and
oldest first) and the incidents. Median of `repeats` calls after one warm-up; targets from
the issue: under 200 ms for 24 hours, under 1 s for 30 days.

Run alone on an existing filled store: `python -m benchmarks.views --store DIR [--out FILE]`;
in the suite: `python -m benchmarks.run --only views`. On PostgreSQL:
`python -m benchmarks.views --backend postgresql [--store DIR]` starts a throw-away server,
fills it with the events of the DuckDB store DIR (filled first when not given) through the
store's own schema, partitions and rollups (benchmarks/fill_postgres.py), and times the same
calls on a server with `[storage] backend = "postgresql"`.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from benchmarks.fill import fill_store
from benchmarks.fill_postgres import fill_postgres
from benchmarks.harness import (
    REPO,
    Context,
    Figure,
    ServerProcess,
    add_sensor,
    git_commit,
    machine,
    read_token,
)
from benchmarks.records import save_json

WINDOWS = {"24h": ("range=24h", 3600, "< 200"), "30d": ("range=30d", 6 * 3600, "< 1000")}
# name -> path and query, with {w} for the window and {b} for the histogram's bucket
CALLS = {
    "summary": "api/v1/stats/summary?{w}",
    "summary kind=login_attempt": "api/v1/stats/summary?{w}&kind=login_attempt",
    "summary country=CN": "api/v1/stats/summary?{w}&country=CN",
    "summary src_ip=1.0.0.0/8": "api/v1/stats/summary?{w}&src_ip=1.0.0.0/8",
    # the other filters, from selective to none at all: an ASN (~0.02 % of events), a sensor
    # (5 %), a port (12.5 %), two kinds (50 %), an outcome (50 %), and the one honeypot
    # every event of the fill has (100 %: the raw-event path at its most expensive)
    "summary asn=4242": "api/v1/stats/summary?{w}&asn=4242",
    "summary sensor=sensor-3": "api/v1/stats/summary?{w}&sensor=sensor-3",
    "summary port=22": "api/v1/stats/summary?{w}&port=22",
    "summary kind=login_attempt&kind=command": "api/v1/stats/summary?{w}&kind=login_attempt&kind=command",
    "summary outcome=success": "api/v1/stats/summary?{w}&outcome=success",
    "summary honeypot=cowrie": "api/v1/stats/summary?{w}&honeypot=cowrie",
    "histogram": "api/v1/stats/histogram?{w}&bucket_seconds={b}&by_kind=true",
    "histogram country=CN": "api/v1/stats/histogram?{w}&bucket_seconds={b}&country=CN",
    "events country=CN": "api/v1/events?{w}&country=CN&limit=100",
    "events order=asc kind=command": "api/v1/events?{w}&order=asc&kind=command&limit=100",
    "incidents sensor=sensor-3": "api/v1/incidents?{w}&sensor=sensor-3",
}


# On PostgreSQL a 30-day summary from the raw events can take a minute: such a call is timed
# fewer than `repeats` times once its timed calls took this long (the figure's notes say how many).
_BUDGET_SECONDS = 60.0


def views(ctx: Context, store: Path | None = None, backend: str = "duckdb", rows: int | None = None,
          postgres_url: str | None = None) -> list[Figure]:
    """Time CALLS on a server of `backend`: on DuckDB over `store` (filled here with `rows`
    events when None); on PostgreSQL over a new database filled with `store`'s events, or over
    the database at `postgres_url`, filled before (by fill_postgres) and migrated here."""
    rows = rows or ctx.size(10_000_000, 100_000)
    repeats = ctx.size(5, 2)
    if backend == "postgresql":
        if postgres_url:
            return _views_postgres_at(ctx, postgres_url, repeats)
        return _views_postgres(ctx, store, rows, repeats)
    if store is None:
        store = _fill_duckdb(ctx, rows)
    # A 30-day window's raw-event answers can pass the default 10 s query timeout on a loaded
    # machine: measured with room, so a slow figure shows as slow instead of as a 503.
    config = store.parent / f"{store.name}-views.toml"
    config.write_text("[storage]\nquery_timeout_seconds = 300\n")
    server = ServerProcess(store, config_file=config, entry=ctx.server_entry).start(timeout=1800)
    try:
        timings = _time_calls(ctx, server, read_token(store), repeats)
    finally:
        server.stop()
    return _figures(timings, rows)


def _fill_duckdb(ctx: Context, rows: int) -> Path:
    store = ctx.workdir / "views"
    ctx.log(f"filling {rows:,} events over 30 days")
    ctx.extra["views_fill"] = fill_store(store, rows, span_hours=720.0)
    add_sensor(store, "sensor-0")
    return store


def _views_postgres(ctx: Context, source: Path | None, rows: int, repeats: int) -> list[Figure]:
    """The same calls on PostgreSQL (tests/engines/postgres.py's throw-away server, as
    `honeyatlas cluster` starts one: fsync off, which only the fill pays for), filled with the
    events of the DuckDB store `source` (filled here when None). Then, for the calls over
    their target, one more call each with auto_explain on: each statement's time to the
    JSON, the plans beside it (main)."""
    from tests.engines.postgres import running_postgres  # pytest's module: only when asked

    if source is None:
        source = _fill_duckdb(ctx, rows)
    data_dir = ctx.workdir / "views-postgresql"
    data_dir.mkdir(parents=True, exist_ok=True)
    with running_postgres() as postgres:
        url = postgres.new_database("views")
        ctx.log(f"copying the events of {source} into PostgreSQL")
        fill = ctx.extra["views_fill_postgresql"] = fill_postgres(source / "events.duckdb", url, log=ctx.log)
        ctx.log(f"filled {fill['rows']:,} events in {fill['seconds']:.0f} s, VACUUM ANALYZE "
                f"{fill['vacuum_analyze_seconds']:.0f} s, {fill['database_mib']:,.0f} MiB")
        return _measure_postgres(ctx, url, data_dir, int(fill["rows"]), repeats)


def _views_postgres_at(ctx: Context, url: str, repeats: int) -> list[Figure]:
    """The calls on a database filled before; its first start here runs any new migration,
    timed (`views_postgresql_start_seconds`)."""
    with psycopg.connect(url) as con:
        found = con.execute("SELECT count(*) FROM events").fetchone()
    data_dir = ctx.workdir / "views-postgresql"
    data_dir.mkdir(parents=True, exist_ok=True)
    return _measure_postgres(ctx, url, data_dir, int(found[0] if found else 0), repeats)


def _measure_postgres(ctx: Context, url: str, data_dir: Path, rows: int, repeats: int) -> list[Figure]:
    ctx.extra["views_postgresql_settings"] = _settings(url)
    config = ctx.workdir / "views-postgresql.toml"
    config.write_text(f'[storage]\nbackend = "postgresql"\nurl = "{url}"\nquery_timeout_seconds = 300\n')
    began = time.monotonic()
    # The first open of the store (its migrations); the registry lives in the database, so a
    # database measured again gets a sensor of a new name.
    add_sensor(data_dir, f"views-{time.time_ns()}", config_file=config)
    ctx.extra["views_postgresql_start_seconds"] = time.monotonic() - began
    token = read_token(data_dir, config_file=config)
    server = ServerProcess(data_dir, config_file=config, entry=ctx.server_entry).start(timeout=1800)
    ctx.extra["uptime_at_calls"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    try:
        timings = _time_calls(ctx, server, token, repeats, budget_seconds=_BUDGET_SECONDS)
    finally:
        server.stop()
    figures = _figures(timings, rows)
    slow = [f.name for f in figures if f.passed is False]
    if slow:
        plans = ctx.extra["views_postgresql_plans"] = _explain(ctx, url, data_dir, config, token, slow)
        ctx.extra["views_postgresql_statements"] = {
            call: [[float(ms), " ".join(text.split())[:400]] for ms, text in _PLAN_HEAD.findall(log)]
            for call, log in plans.items()}
    return figures


_PLAN_HEAD = re.compile(r"duration: ([0-9.]+) ms  plan:\n\s*Query Text: (.*)")


def _settings(url: str) -> dict[str, str]:
    """The server settings a reader of the figures needs (all defaults of `initdb`)."""
    with psycopg.connect(url) as con:
        rows = con.execute("SELECT name, setting || coalesce(' ' || unit, '') FROM pg_settings WHERE name = ANY(%s)",
                           [["server_version", "shared_buffers", "work_mem", "effective_cache_size",
                             "max_parallel_workers_per_gather", "jit"]]).fetchall()
    return dict(rows)


def _explain(ctx: Context, url: str, data_dir: Path, config: Path, token: str, slow: list[str]) -> dict[str, str]:
    """Each slow call once more on a server whose sessions log the plan of every statement
    over 20 ms (auto_explain, with actual times and buffers); returns call -> the log's lines."""
    with psycopg.connect(url, autocommit=True) as con:
        for setting in ("session_preload_libraries = 'auto_explain'", "auto_explain.log_min_duration = '20ms'",
                        "auto_explain.log_analyze = on", "auto_explain.log_buffers = on"):
            con.execute(f"ALTER DATABASE views SET {setting}")  # type: ignore[arg-type]  # our own text
        found = con.execute("SHOW data_directory").fetchone()
    log = Path(str(found[0] if found else "")).parent / "postgres.log"  # where LocalPostgres's pg_ctl -l writes
    plans: dict[str, str] = {}
    server = ServerProcess(data_dir, config_file=config, entry=ctx.server_entry).start(timeout=1800)
    try:
        with httpx.Client(base_url=server.url, timeout=600, headers={"Authorization": f"Bearer {token}"}) as client:
            for window, (query, bucket, _) in WINDOWS.items():
                for name, path in CALLS.items():
                    if not any(figure.startswith(f"{name}, {window} window") for figure in slow):
                        continue
                    offset = log.stat().st_size
                    client.get(path.format(w=query, b=bucket)).raise_for_status()
                    with log.open(errors="replace") as text:
                        text.seek(offset)
                        plans[f"{name} {window}"] = text.read()
    finally:
        server.stop()
        with psycopg.connect(url, autocommit=True) as con:  # a database measured again must not log plans
            con.execute("ALTER DATABASE views RESET ALL")
    return plans


def _time_calls(ctx: Context, server: ServerProcess, token: str, repeats: int,
                budget_seconds: float | None = None) -> dict[str, list[float]]:
    """`repeats` timed calls of each of CALLS after one warm-up; with `budget_seconds`, a call
    stops being repeated once its timed calls took that long (at least one is timed)."""
    timings: dict[str, list[float]] = {}
    warmups: dict[str, float] = {}
    with httpx.Client(base_url=server.url, timeout=600, headers={"Authorization": f"Bearer {token}"}) as client:
        for window, (query, bucket, _) in WINDOWS.items():
            for name, path in CALLS.items():
                url = path.format(w=query, b=bucket)

                def call(url: str = url, client: httpx.Client = client) -> float:
                    began = time.perf_counter()
                    client.get(url).raise_for_status()
                    return time.perf_counter() - began

                warmups[f"{name} {window}"] = call()  # warm: the first call loads the column segments
                seconds: list[float] = []
                while len(seconds) < repeats and (budget_seconds is None or sum(seconds) < budget_seconds):
                    seconds.append(call())
                timings[f"{name} {window}"] = seconds
                ctx.log(f"{name} {window}: {statistics.median(seconds) * 1000:.0f} ms")
    ctx.extra["views_seconds"] = timings
    ctx.extra["views_warmup_seconds"] = warmups
    return timings


def _figures(timings: dict[str, list[float]], rows: int) -> list[Figure]:
    label = f"{rows / 1e6:g}M" if rows >= 1_000_000 else f"{rows / 1e3:g}k"
    figures = []
    for window, (_, _, target) in WINDOWS.items():
        for name in CALLS:
            seconds = timings[f"{name} {window}"]
            figures.append(Figure(
                "views", f"{name}, {window} window @ {label} over 30 days", statistics.median(seconds) * 1000, "ms",
                higher_is_better=False, target=target if rows >= 10_000_000 else None,
                notes=f"median of {len(seconds)} HTTP calls, max {max(seconds) * 1000:.0f} ms",
            ))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.views", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="a data directory filled by benchmarks/fill.py (10M over 30 days); "
                        "with --backend postgresql, the events to copy (opened read-only)")
    parser.add_argument("--backend", choices=("duckdb", "postgresql"), default="duckdb",
                        help="the server's store (postgresql: a throw-away server, filled from a DuckDB store)")
    parser.add_argument("--rows", type=int, help="events to fill when no --store is given (default 10,000,000)")
    parser.add_argument("--postgres-url", help="with --backend postgresql: measure this database, filled before by "
                        "benchmarks/fill_postgres.py (its events are counted, it is migrated, nothing is copied)")
    parser.add_argument("--out", type=Path, help="JSON results (default benchmarks/results/<UTC date>-views[-postgresql].json)")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    ctx = Context(smoke=False, workdir=Path(tempfile.mkdtemp(prefix="honeyatlas-views-")), query_rows=[])
    ctx.extra["uptime_at_start"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    at_start = machine()
    try:
        figures = views(ctx, args.store, args.backend, args.rows, args.postgres_url)
    finally:
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    report = {"date": started.isoformat(timespec="seconds"), "commit": git_commit(),
              "command": " ".join(["python -m benchmarks.views", *(argv if argv is not None else sys.argv[1:])]),
              "machine": at_start, "benchmarks": {"views": {"figures": [f.as_dict() for f in figures]}},
              "details": ctx.extra}
    suffix = "" if args.backend == "duckdb" else f"-{args.backend}"
    out = args.out or REPO / "benchmarks" / "results" / f"{started:%Y-%m-%d}-views{suffix}.json"
    plans = ctx.extra.pop("views_postgresql_plans", None)
    if plans:  # long (a plan per partition scanned): beside the JSON, which keeps each statement's time
        out.with_name(f"{out.stem}-plans.log").write_text("".join(f"===== {call}\n{log}" for call, log in plans.items()))
    save_json(out, report)
    for f in figures:
        print(f"{f.name:60} {f.value:10.1f} {f.unit}  target {f.target or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
