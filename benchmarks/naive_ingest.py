"""The naive ingest baseline: a thread per connection, stdlib json, one INSERT per event.

What a first version of an ingest endpoint usually looks like: `http.server`'s threading
server reads the whole body, `json.loads` each line, runs the same cowrie adapter and GeoIP
lookup as honeyatlas (so normalisation costs the same), then writes the request's events
row by row (`executemany`) in one transaction under a lock, and answers after the commit.
No token check, no dead letters, no admission control: it never answers 429.

With `--live WS_URL` (the naive fan-out server's `/feed`), each request's events then go to
live clients the naive way: json.dumps of plain dicts, one WebSocket message per event per
client (benchmarks/naive_fanout.py). That is the naive baseline of the latency benchmark.

Run: `python -m benchmarks.naive_ingest DATA_DIR [--live WS_URL]` prints
`naive ingest listening on http://127.0.0.1:PORT/`.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import duckdb
from msgspec import to_builtins
from msgspec.structs import replace

from benchmarks.records import bundled_geoip
from honeyatlas.adapters import RecordContext
from honeyatlas.adapters.cowrie import adapt
from honeyatlas.enrichment.sensors import Sensor
from honeyatlas.event import Event
from honeyatlas.store.duckdb import EVENT_COLUMNS
from honeyatlas.transforms.geolocate import Geolocator

SENSOR = Sensor(name="bench", honeypot="cowrie", lat=50.11, lon=8.68)


def row(event: Event) -> tuple[Any, ...]:
    values: list[Any] = []
    for name, _, _ in EVENT_COLUMNS:
        side, _, field = name.partition("_")
        if side in ("src", "dst") and field in ("country", "city", "lat", "lon", "asn", "org", "precision"):
            geo = getattr(event, f"{side}_geo")
            values.append(None if geo is None else getattr(geo, field))
        else:
            value = getattr(event, name)
            values.append(list(value) if isinstance(value, tuple) else value)
    return tuple(values)


def main(data_dir: Path, live_url: str | None = None) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(data_dir / "naive.duckdb"))
    con.execute("CREATE TABLE IF NOT EXISTS events (" + ", ".join(f"{n} {t}" for n, t, _ in EVENT_COLUMNS) + ")")
    insert = f"INSERT INTO events VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
    lock = threading.Lock()
    geoip = bundled_geoip()
    geolocator = Geolocator(geoip, cache_size=100_000)
    resources = contextlib.ExitStack()
    feed = None
    if live_url is not None:
        from websockets.sync.client import connect

        feed = resources.enter_context(connect(live_url, compression=None, max_size=None))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real server

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received = datetime.now(UTC)
            events: list[Event] = []
            for line in body.splitlines():
                if line.strip():
                    ctx = RecordContext(sensor=SENSOR.name, honeypot="cowrie", received=received, timezone=UTC,
                                        raw=line.decode("utf-8", "replace"))
                    events += [geolocator.apply(e, SENSOR) for e in adapt(json.loads(line), ctx)]
            with lock:
                cursor = con.cursor()
                cursor.begin()
                cursor.executemany(insert, [row(e) for e in events])
                cursor.commit()
                cursor.close()
                if feed is not None:
                    feed.send(json.dumps([to_builtins(replace(e, raw=None)) for e in events]))
            answer = json.dumps({"accepted": len(events), "events": len(events)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # load clients hang up when a benchmark ends: not worth a traceback each

    server = Server(("127.0.0.1", 0), Handler)
    print(f"naive ingest listening on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        resources.close()
        con.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[3] if sys.argv[2:3] == ["--live"] else None)
