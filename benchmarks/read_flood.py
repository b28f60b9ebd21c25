"""Ingest under a flood of expensive reads: what the read slots (store/reads.py) buy.

One DuckDB store filled with synthetic events over 30 days (benchmarks/fill.py), one server
on it, and in the same run: idempotent ingest at saturation alone (the baseline), then the
same ingest while reader processes ask, back to back, for the dearest answers the API has:
a 30-day histogram by kind, the summary, 30-day IoC (CSV) and STIX exports, the profile of
the loudest attacker and of the most seen sample, a page of 1,000 events. Done with the
defaults (2 read slots, read threads niced 10 levels), without the niceness, with 16 slots,
a queue that never fills and no niceness (about what the store did before), and with one
slot and one DuckDB thread, so the figures say what each lever changes. Every read must get
a clean answer (200, or 503 with its reason and Retry-After), never another 5xx, never a
hang; counted per kind.

The reduced form runs in CI: tests/store/test_query_limits.py (a flood against idempotent
ingest on both backends). Figures: docs/reliability.md#expensive-queries.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx

from benchmarks.fill import fill_store
from benchmarks.harness import Context, Figure, ServerProcess, WorkerGroup, add_sensor, quantile, read_token
from benchmarks.load import sender

INGEST_PATH = "/api/v1/ingest/cowrie"
SETUPS = {  # name -> [storage] settings
    "defaults": {},  # 2 slots, read threads niced 10, DuckDB's threads = cores
    "reads not niced": {"duckdb_read_niceness": 0},
    "16 slots, unbounded queue, not niced": {"max_concurrent_reads": 16, "max_queued_reads": 10_000,
                                             "duckdb_read_niceness": 0},
    "1 slot, 1 DuckDB thread": {"max_concurrent_reads": 1, "duckdb_threads": 1},
}


def expensive_paths(data_dir: Path) -> list[str]:
    """The dearest reads on this store: its loudest attacker and most seen sample."""
    con = duckdb.connect(str(data_dir / "events.duckdb"), read_only=True)
    try:
        loud = con.execute("SELECT src_ip FROM events GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchall()[0][0]
        sample = con.execute("SELECT sha256 FROM events WHERE sha256 IS NOT NULL GROUP BY 1 "
                             "ORDER BY count(*) DESC LIMIT 1").fetchall()[0][0]
    finally:
        con.close()
    since = (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [
        f"/api/v1/stats/histogram?bucket_seconds=3600&by_kind=true&since={since}",
        "/api/v1/stats/summary?top=100",
        f"/api/v1/iocs?format=csv&limit=100000&since={since}",
        f"/api/v1/stix?since={since}",
        f"/api/v1/attackers/{loud}?limit=1000",
        f"/api/v1/malware/{sample}?limit=1000",
        "/api/v1/events?limit=1000",
    ]


def reader(spec: dict[str, Any], ready: Any) -> dict[str, Any]:
    """Process entry: `connections` clients asking for `paths` in turn until `duration` ends."""
    return asyncio.run(_read(spec, ready))


async def _read(spec: dict[str, Any], ready: Any) -> dict[str, Any]:
    answers: Counter[str] = Counter()
    seconds: list[float] = []
    other: list[str] = []
    start = ready()
    end = start + spec["duration"]
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    paths = spec["paths"]

    async def one(n: int, client: httpx.AsyncClient) -> None:
        i = n
        while time.monotonic() < end:
            path = paths[i % len(paths)]
            i += 1
            began = time.monotonic()
            try:
                answer = await client.get(path)
            except httpx.HTTPError as exc:  # a hang past the client's timeout, a reset: never acceptable
                answers["no answer"] += 1
                other.append(f"{path}: {type(exc).__name__}")
                continue
            took = time.monotonic() - began
            if answer.status_code == 200:
                answers["200"] += 1
                seconds.append(took)
            elif answer.status_code == 503 and answer.headers.get("retry-after"):
                detail = answer.json().get("detail", "")
                answers["503 refused" if "refused" in detail else "503 timed out" if "ran longer" in detail
                        else "503 other"] += 1
            else:
                answers[str(answer.status_code)] += 1
                other.append(f"{path}: {answer.status_code} {answer.text[:200]}")

    limits = httpx.Limits(max_connections=spec["connections"])
    async with httpx.AsyncClient(base_url=spec["url"], timeout=120, limits=limits,
                                 headers={"Authorization": f"Bearer {spec['token']}"}) as client:
        await asyncio.gather(*(one(n, client) for n in range(spec["connections"])))
    return {"answers": dict(answers), "seconds": seconds, "other": other[:10]}


def _phase(server: ServerProcess, token: str, reader_token: str, paths: list[str], duration: float, readers: int,
           connections: int, seed: int) -> dict[str, Any]:
    """Idempotent ingest at saturation for `duration`, with `readers` reader processes."""
    host, port = server.host_port
    group = WorkerGroup()
    try:
        group.spawn(sender, [{"host": host, "port": port, "path": INGEST_PATH, "token": token, "mode": "saturate",
                              "duration": duration, "connections": 4, "tag": f"rf{seed}", "seed": seed,
                              "idempotency": True}])
        group.spawn(reader, [{"url": server.url, "token": reader_token, "paths": paths, "duration": duration,
                              "connections": connections} for _ in range(readers)])
        group.wait_ready(1 + readers)
        group.go()
        results = group.results(1 + readers, timeout=duration + 300)
    finally:
        group.terminate()
    sent = next(r for r in results if "events" in r)
    read = [r for r in results if "answers" in r]
    answers: Counter[str] = Counter()
    for r in read:
        answers.update(r["answers"])
    took = [t for r in read for t in r["seconds"]]
    return {"events_per_second": sent["events"] / duration, "ingest_statuses": sent["statuses"],
            "ingest_errors": sent["errors"], "reads": dict(answers), "reads_ok_per_second": answers["200"] / duration,
            "read_p50_seconds": quantile(took, 0.5), "read_p99_seconds": quantile(took, 0.99),
            "read_max_seconds": max(took, default=float("nan")),
            "unclean": [o for r in read for o in r["other"]][:10]}


def read_flood(ctx: Context) -> list[Figure]:
    duration = ctx.size(20.0, 1.5)
    rows = ctx.size(2_000_000, 20_000)
    readers, connections = ctx.size((2, 4), (1, 2))
    filled_dir = ctx.workdir / "read-flood-filled"
    ctx.log(f"filling {rows:,} events over 30 days")
    filled = fill_store(filled_dir, rows, span_hours=30 * 24)
    token = add_sensor(filled_dir, "bench")
    reader_token = read_token(filled_dir)
    paths = expensive_paths(filled_dir)
    figures: list[Figure] = []
    details: dict[str, Any] = {"rows": rows, "fill": filled, "paths": paths, "readers": readers,
                               "connections_per_reader": connections, "duration_seconds": duration}
    setups = list(SETUPS.items())[: ctx.size(len(SETUPS), 1)]  # smoke: the default only
    for n, (name, storage) in enumerate(setups):
        # Each setup on its own copy of the filled store: the same starting point for all.
        data_dir = ctx.workdir / f"read-flood-{n}"
        shutil.copytree(filled_dir, data_dir)
        config = ctx.workdir / f"read-flood-{n}.toml"
        config.write_text("[storage]\n" + "".join(f"{k} = {v}\n" for k, v in storage.items()))
        server = ServerProcess(data_dir, config_file=config).start(timeout=600)
        try:
            ctx.log(f"{name}: ingest alone")
            alone = _phase(server, token, reader_token, paths, duration, 0, connections, 10 * n + 1)
            ctx.log(f"{name}: ingest under {readers}x{connections} readers")
            flood = _phase(server, token, reader_token, paths, duration, readers, connections, 10 * n + 2)
            alive = server.alive()
        finally:
            server.stop()
            shutil.rmtree(data_dir, ignore_errors=True)
        details[name] = {"settings": storage, "alone": alone, "flood": flood, "alive": alive}
        ctx.log(f"{name}: {alone['events_per_second']:.0f} -> {flood['events_per_second']:.0f} events/s, "
                f"reads {flood['reads']}")
        kept = flood["events_per_second"] / alone["events_per_second"] if alone["events_per_second"] else float("nan")
        unclean = sum(v for k, v in flood["reads"].items() if k not in ("200", "503 refused", "503 timed out"))
        note = f"{readers}x{connections} readers, {duration:g} s per phase, {rows:,} events over 30 days"
        figures += [
            Figure("read_flood", f"ingest events/s under the read flood ({name})", flood["events_per_second"],
                   "events/s", baseline=alone["events_per_second"],
                   notes=f"baseline: the same ingest without reads, same server, same run; {note}"),
            Figure("read_flood", f"ingest kept under the read flood ({name})", kept, "share",
                   target=">= 0.5" if not storage else None),
            Figure("read_flood", f"expensive reads answered 200 per second ({name})", flood["reads_ok_per_second"],
                   "reads/s", notes=f"answers: {flood['reads']}"),
            Figure("read_flood", f"read p99 latency of 200 answers ({name})", flood["read_p99_seconds"], "s",
                   higher_is_better=False, notes=f"p50 {flood['read_p50_seconds']:.3f} s, "
                                                 f"max {flood['read_max_seconds']:.3f} s"),
            Figure("read_flood", f"reads answered neither 200 nor 503 with a reason ({name})", unclean, "reads",
                   higher_is_better=False, target="<= 0"),
        ]
        ctx.extra["read_flood"] = details  # kept after each setup: a later failure loses nothing
    return figures
