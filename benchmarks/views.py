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
in the suite: `python -m benchmarks.run --only views`.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.fill import fill_store
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
    "histogram": "api/v1/stats/histogram?{w}&bucket_seconds={b}&by_kind=true",
    "histogram country=CN": "api/v1/stats/histogram?{w}&bucket_seconds={b}&country=CN",
    "events country=CN": "api/v1/events?{w}&country=CN&limit=100",
    "events order=asc kind=command": "api/v1/events?{w}&order=asc&kind=command&limit=100",
    "incidents sensor=sensor-3": "api/v1/incidents?{w}&sensor=sensor-3",
}


def views(ctx: Context, store: Path | None = None) -> list[Figure]:
    rows = ctx.size(10_000_000, 100_000)
    repeats = ctx.size(5, 2)
    if store is None:
        store = ctx.workdir / "views"
        ctx.log(f"filling {rows:,} events over 30 days")
        ctx.extra["views_fill"] = fill_store(store, rows, span_hours=720.0)
        add_sensor(store, "sensor-0")
    label = f"{rows / 1e6:g}M" if rows >= 1_000_000 else f"{rows / 1e3:g}k"
    # A 30-day window's raw-event answers can pass the default 10 s query timeout on a loaded
    # machine: measured with room, so a slow figure shows as slow instead of as a 503.
    config = store.parent / f"{store.name}-views.toml"
    config.write_text("[storage]\nquery_timeout_seconds = 300\n")
    server = ServerProcess(store, config_file=config, entry=ctx.server_entry).start(timeout=1800)
    timings: dict[str, list[float]] = {}
    try:
        headers = {"Authorization": f"Bearer {read_token(store)}"}
        with httpx.Client(base_url=server.url, timeout=600, headers=headers) as client:
            for window, (query, bucket, _) in WINDOWS.items():
                for name, path in CALLS.items():
                    url = path.format(w=query, b=bucket)

                    def call(url: str = url, client: httpx.Client = client) -> None:
                        client.get(url).raise_for_status()

                    call()  # warm: the first call loads the column segments
                    seconds = []
                    for _ in range(repeats):
                        began = time.perf_counter()
                        call()
                        seconds.append(time.perf_counter() - began)
                    timings[f"{name} {window}"] = seconds
                    ctx.log(f"{name} {window}: {statistics.median(seconds) * 1000:.0f} ms")
    finally:
        server.stop()
    ctx.extra["views_seconds"] = timings
    figures = []
    for window, (_, _, target) in WINDOWS.items():
        for name in CALLS:
            seconds = timings[f"{name} {window}"]
            figures.append(Figure(
                "views", f"{name}, {window} window @ {label} over 30 days", statistics.median(seconds) * 1000, "ms",
                higher_is_better=False, target=target if rows >= 10_000_000 else None,
                notes=f"median of {repeats} HTTP calls, max {max(seconds) * 1000:.0f} ms",
            ))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.views", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, help="a data directory filled by benchmarks/fill.py (10M over 30 days)")
    parser.add_argument("--out", type=Path, help="JSON results (default benchmarks/results/<UTC date>-views.json)")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    ctx = Context(smoke=False, workdir=Path(tempfile.mkdtemp(prefix="honeyatlas-views-")), query_rows=[])
    try:
        figures = views(ctx, args.store)
    finally:
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    report = {"date": started.isoformat(timespec="seconds"), "commit": git_commit(),
              "command": " ".join(["python -m benchmarks.views", *(argv if argv is not None else sys.argv[1:])]),
              "machine": machine(), "benchmarks": {"views": {"figures": [f.as_dict() for f in figures]}},
              "details": ctx.extra}
    save_json(args.out or REPO / "benchmarks" / "results" / f"{started:%Y-%m-%d}-views.json", report)
    for f in figures:
        print(f"{f.name:60} {f.value:10.1f} {f.unit}  target {f.target or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
