"""Faults (issue 14, "Disk and faults"): the service keeps running, reports each fault in
`/api/v1/health` and `/metrics`, degrades visibly, and recovers by itself when the fault goes.
docs/reliability.md ("Faults") lists each fault with the test here that proves it.

A full disk is produced for real: a 32 MiB tmpfs mounted for the test (needs root; the test
is skipped otherwise, and `test_a_floor_above_the_free_space_refuses_ingest` covers the
refusal path anywhere by setting the floor above the free space instead). A read-only store
is produced with the immutable flag on an ext4 loop mount (root again): remounting read-only
answers EBUSY while the server holds the file open for writing, and root ignores file
modes, but `chattr +i` binds root and the descriptors already open.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from websockets.sync.client import connect

from honeyatlas.enrichment.geoip import BUNDLED_ASN_DB, BUNDLED_COUNTRY_DB
from honeyatlas.sources.hpfeeds_protocol import Auth, Decoder, Info, Publish, auth_digest, encode
from tests.conftest import RunningServer, start_server
from tests.test_ingest_http import cowrie_records_with_public_sources, ndjson, post
from tests.waiting import wait_until

MIB = 1024 * 1024


def metric(server: RunningServer, name: str, *, via_http: bool = True, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels` (0 when absent). With
    `via_http=False`, what `/metrics` would answer, rendered in process: on a full disk the
    access layer cannot record a reader token's use (SQLite), so `/metrics` itself fails."""
    text = httpx.get(f"{server.url}metrics", timeout=30).text if via_http else server.service.metrics.render()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def health(server: RunningServer, *, anonymous: bool = False) -> dict[str, Any]:
    """Health as the test reader sees it (with file paths), or as a stranger would (health is
    open; paths shown as <path>), which works on a full disk: a reader token's use is written
    down, a stranger's request writes nothing."""
    headers = {"X-Test-Anonymous": "1"} if anonymous else {}
    response = httpx.get(f"{server.url}api/v1/health", timeout=30, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stored_count(server: RunningServer) -> int:
    """Events in the store over the last two days, exact (its histogram)."""
    now = datetime.now(UTC)
    buckets = server.run(server.service.store.histogram(now - timedelta(days=2), now + timedelta(hours=1), 3600, False))
    return sum(n for _, _, n in buckets)


def events_of(server: RunningServer, sensor: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}api/v1/events", params={"sensor": sensor, "limit": 1000}, timeout=30)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs of the test's own, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root; the floor's refusal is still tested without it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path, leave_bytes: int) -> None:
    """Write `path` until its file system has at most `leave_bytes` free (0: until ENOSPC)."""
    stats = os.statvfs(path.parent)
    wanted = max(0, stats.f_bavail * stats.f_frsize - leave_bytes)
    chunk = b"\0" * MIB
    with path.open("wb") as out:
        try:
            while wanted > 0 or not leave_bytes:
                out.write(chunk[: min(MIB, wanted)] if leave_bytes else chunk)
                out.flush()
                wanted -= MIB
        except OSError:  # ENOSPC: full
            pass


# --------------------------------------------------------------------------- disk floor


def test_below_the_disk_floor_ingest_answers_503_and_resumes_when_space_returns(small_disk: Path) -> None:
    """A real disk filled below `storage.min_free_disk_mib` (tmpfs): 503 with the reason and
    Retry-After, counted, shown in health and /metrics; space freed, ingest resumes."""
    server, stop = start_server(small_disk / "data", storage={"min_free_disk_mib": 8})
    try:
        token = server.add_sensor("disk-01")
        records = cowrie_records_with_public_sources(recent=True)
        assert post(server, token, ndjson(records)).status_code == 200
        assert health(server)["status"] == "ok"

        fill(small_disk / "filler", leave_bytes=4 * MIB)
        wait_until(lambda: post(server, token, ndjson(records[:1])).status_code == 503, "a 503 below the floor")
        refused = post(server, token, ndjson(records))
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert "free disk space" in refused.json()["error"] and "storage.min_free_disk_mib (8 MiB)" in refused.json()["error"]
        report = health(server)
        assert report["status"] == "degraded" and "below storage.min_free_disk_mib" in report["faults"]["disk"]
        assert metric(server, "honeyatlas_requests_refused_total", source="http", reason="disk_low") >= 2
        assert metric(server, "honeyatlas_faults", component="disk") == 1
        assert 0 < metric(server, "honeyatlas_disk_free_bytes") < 8 * MIB

        (small_disk / "filler").unlink()
        wait_until(lambda: post(server, token, ndjson(records)).status_code == 200, "ingest to resume")
        assert health(server)["status"] == "ok" and health(server)["faults"] == {}
        assert metric(server, "honeyatlas_faults", component="disk") == 0
    finally:
        stop()


def test_a_floor_above_the_free_space_refuses_ingest(tmp_path: Path) -> None:
    """Runs anywhere (no mount): the floor set above the data directory's free space takes the
    same admission path as a full disk, without filling one."""
    stats = os.statvfs(tmp_path)
    floor = stats.f_bavail * stats.f_frsize // MIB + 1024
    server, stop = start_server(tmp_path / "data", storage={"min_free_disk_mib": floor})
    try:
        token = server.add_sensor("disk-01")
        refused = post(server, token, ndjson(cowrie_records_with_public_sources()))
        assert refused.status_code == 503 and "Retry-After" in refused.headers
        assert f"below storage.min_free_disk_mib ({floor} MiB)" in refused.json()["error"]
        assert health(server)["faults"]["disk"].startswith(f"free disk space of {tmp_path / 'data'} is ")
        assert metric(server, "honeyatlas_requests_refused_total", reason="disk_low") == 1
    finally:
        stop()


# --------------------------------------------------------------------------- store writes


def test_a_full_disk_fails_the_commit_with_503_and_the_store_recovers(small_disk: Path) -> None:
    """No floor, the tmpfs filled to ENOSPC: the commit fails, the sender gets 503 (not 500)
    and nothing of its batch is kept; health and /metrics show the store's fault; once space
    is freed the next batch commits and the fault clears (DuckDB recovers without reopening:
    a failed commit leaves the database usable, measured on DuckDB 2.0)."""
    server, stop = start_server(small_disk / "data", storage={"min_free_disk_mib": 0})
    try:
        token = server.add_sensor("full-01")
        records = cowrie_records_with_public_sources(recent=True)
        big = ndjson([{**records[i % len(records)], "session": f"f{i}"} for i in range(3000)])
        assert post(server, token, ndjson(records)).status_code == 200

        fill(small_disk / "filler", leave_bytes=0)
        failed = post(server, token, big)
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"].startswith("not stored, retry later: write failed") and "Retry-After" in failed.headers
        report = health(server, anonymous=True)
        assert report["status"] == "degraded" and "write failed" in report["faults"]["store"]
        assert metric(server, "honeyatlas_store_write_failures_total", via_http=False) >= 1
        assert metric(server, "honeyatlas_faults", via_http=False, component="store") == 1

        (small_disk / "filler").unlink()
        assert stored_count(server) == len(records)  # nothing of the failed batch
        assert post(server, token, big).status_code == 200
        report = health(server)
        assert report["status"] == "ok" and "store" not in report["faults"]
        assert stored_count(server) == len(records) + 3000
    finally:
        stop()


@pytest.fixture
def ext4_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB ext4 file system on a loop device (tmpfs has no immutable flag), unmounted
    afterwards; the immutable flags a test set are cleared first."""
    image, mount = tmp_path / "ext4.img", tmp_path / "ext4"
    mount.mkdir()
    with image.open("wb") as out:
        out.truncate(64 * MIB)
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4") or not shutil.which("chattr") or any(
        subprocess.run(command, capture_output=True).returncode != 0
        for command in (["mkfs.ext4", "-q", "-F", str(image)], ["mount", "-o", "loop", str(image), str(mount)])
    ):
        pytest.skip("an ext4 loop mount needs root, mkfs.ext4 and chattr")
    try:
        yield mount
    finally:
        subprocess.run(["chattr", "-R", "-i", str(mount)], capture_output=True, check=False)
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_read_only_store_answers_503_and_recovers_when_writable(ext4_disk: Path) -> None:
    """The store's files made unwritable under the running server (`chattr +i`, which binds
    root too and applies to the files it already holds open): commits fail with EPERM, the
    sender gets 503, health and /metrics show the store's fault; writable again, the next
    batch commits without a restart and the fault clears (DuckDB needs no reopening)."""
    data = ext4_disk / "data"
    server, stop = start_server(data, storage={"min_free_disk_mib": 0})
    try:
        token = server.add_sensor("ro-01")
        records = cowrie_records_with_public_sources(recent=True)
        assert post(server, token, ndjson(records)).status_code == 200
        store_files = sorted(str(path) for path in data.glob("events.duckdb*"))
        assert any(name.endswith(".wal") for name in store_files)  # the log a commit appends to
        subprocess.run(["chattr", "+i", *store_files], check=True)

        failed = post(server, token, ndjson(records))
        assert failed.status_code == 503 and "Retry-After" in failed.headers
        assert "Operation not permitted" in failed.json()["error"]
        report = health(server)
        assert report["status"] == "degraded" and "Operation not permitted" in report["faults"]["store"]
        assert metric(server, "honeyatlas_store_write_failures_total") >= 1
        assert metric(server, "honeyatlas_faults", component="store") == 1

        subprocess.run(["chattr", "-i", *store_files], check=True)
        assert post(server, token, ndjson(records)).status_code == 200
        assert "store" not in health(server)["faults"]
        assert stored_count(server) == 2 * len(records)
    finally:
        stop()


# --------------------------------------------------------------------------- GeoIP files


def test_corrupt_and_missing_geoip_files_store_events_without_geo_until_put_back(tmp_path: Path) -> None:
    """A truncated country database and a missing ASN database: the service starts, stores
    events without geo, says which file and why; the files put back (renamed into place, as
    geoipupdate does) are picked up and events are located again."""
    country, asn = tmp_path / "geo" / "country.mmdb", tmp_path / "geo" / "asn.mmdb"
    country.parent.mkdir()
    country.write_bytes(BUNDLED_COUNTRY_DB.read_bytes()[:4096])  # cut short: no metadata section
    server, stop = start_server(tmp_path / "data", geoip={"country_db_path": str(country), "asn_db_path": str(asn)})
    try:
        report = health(server)
        assert report["status"] == "degraded"
        assert f"corrupt {country}: " in report["faults"]["geoip"] and f"missing {asn}" in report["faults"]["geoip"]
        assert len(report["geoip"]["faults"]) == 2
        assert metric(server, "honeyatlas_geoip_database_faults") == 2
        assert metric(server, "honeyatlas_faults", component="geoip") == 1

        token = server.add_sensor("before")
        records = cowrie_records_with_public_sources(recent=True)
        assert post(server, token, ndjson(records)).status_code == 200
        stored = events_of(server, "before")
        assert len(stored) == len(records) and all(e.get("src_geo") is None for e in stored)

        for good, target in ((BUNDLED_COUNTRY_DB, country), (BUNDLED_ASN_DB, asn)):
            shutil.copyfile(good, target.with_suffix(".tmp"))
            os.replace(target.with_suffix(".tmp"), target)
        report = health(server)  # health looks at the files again
        assert report["status"] == "ok" and report["geoip"]["faults"] == [], report
        assert metric(server, "honeyatlas_geoip_reloads_total") == 2
        assert metric(server, "honeyatlas_geoip_database_faults") == 0

        token = server.add_sensor("after")
        assert post(server, token, ndjson(records)).status_code == 200
        google = [e for e in events_of(server, "after") if e.get("src_ip") == "8.8.8.8"]
        assert google and all(e["src_geo"]["country"] == "US" and e["src_geo"]["asn"] == 15169 for e in google)
    finally:
        stop()


# --------------------------------------------------------------------------- a stalled WebSocket client


def stalled_websocket(server: RunningServer) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads, with a receive
    buffer of 4 KiB so that the server's writes back up quickly."""
    host, port = server.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    headers = "".join(f"{name}: {value}\r\n" for name, value in server.auth.items())
    sock.sendall(
        (f"GET /api/v1/live HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n").encode()
    )
    sock.settimeout(10)
    assert b" 101 " in sock.recv(1024).split(b"\r\n", 1)[0]
    return sock


def test_a_stalled_websocket_client_loses_events_alone(tmp_path: Path) -> None:
    """A client that stops reading: its bounded queue overflows and the drops are counted;
    ingest, health and a reading client go on (the hub's bounded queues, sinks/hub.py)."""
    server, stop = start_server(tmp_path / "data", live={"client_queue_events": 200})
    stalled = stalled_websocket(server)
    try:
        token = server.add_sensor("ws-01")
        records = cowrie_records_with_public_sources(recent=True)
        received = 0
        with connect(server.ws_url, additional_headers=server.auth) as reader:
            json.loads(reader.recv(timeout=10))  # the snapshot
            posted = 0
            deadline = time.monotonic() + 120
            while metric(server, "honeyatlas_events_dropped_total", component="live", reason="slow_client") == 0:
                assert time.monotonic() < deadline, "the stalled client never overflowed"
                batch = [{**r, "session": f"w{posted}-{i}"} for i, r in enumerate(records)]
                assert post(server, token, ndjson(batch)).status_code == 200
                posted += len(batch)
                while received < posted:  # the reading client keeps up, frame by frame
                    message = json.loads(reader.recv(timeout=10))
                    received += len(message.get("events", [])) if message.get("type") == "events" else 0
            assert received == posted
        assert health(server)["live"]["clients"] == 1  # the stalled one is still connected, costing a bounded queue
    finally:
        stalled.close()
        stop()


# --------------------------------------------------------------------------- truncated frames


def test_truncated_http_bodies_are_refused_with_a_reason_and_counted(tmp_path: Path) -> None:
    server, stop = start_server(tmp_path / "data")
    try:
        token = server.add_sensor("cut-01")
        records = cowrie_records_with_public_sources(recent=True)
        body = ndjson(records)
        compressed = gzip.compress(body)
        cut_gzip = post(server, token, compressed[: len(compressed) // 2], **{"Content-Encoding": "gzip"})
        assert cut_gzip.status_code == 400 and "truncated" in cut_gzip.json()["error"]
        as_array = json.dumps(records).encode()
        cut_array = post(server, token, as_array[: len(as_array) // 2])
        assert cut_array.status_code == 400 and "not a valid JSON array" in cut_array.json()["error"]
        assert metric(server, "honeyatlas_requests_refused_total", source="http", reason="http_400") == 2
        cut_line = post(server, token, body[:-40])  # the last NDJSON line cut: rejected alone, by index
        assert cut_line.status_code == 200
        assert [r["index"] for r in cut_line.json()["rejected"]] == [len(records) - 1]
        assert cut_line.json()["rejected"][0]["reason"].startswith("invalid JSON")

        host, port = server.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        with socket.create_connection((host, int(port))) as cut_body:  # Content-Length promised, not sent
            cut_body.sendall(f"POST /api/v1/ingest/cowrie HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:100])
        wait_until(lambda: metric(server, "honeyatlas_requests_refused_total", source="http", reason="body_incomplete")
                   == 1, "the cut body to be counted")
        assert post(server, token, body).status_code == 200  # the route keeps serving
        assert len(events_of(server, "cut-01")) == 2 * len(records) - 1
    finally:
        stop()


def test_a_truncated_websocket_frame_closes_that_client_only(tmp_path: Path) -> None:
    server, stop = start_server(tmp_path / "data")
    try:
        cut = stalled_websocket(server)
        cut.sendall(bytes([0x81, 0x80 | 100]) + b"mask" + b"x" * 10)  # a text frame of 100 bytes: 10 sent
        cut.close()
        wait_until(lambda: health(server)["live"]["clients"] == 0, "the cut client to be dropped")
        with connect(server.ws_url, additional_headers=server.auth) as other:
            assert json.loads(other.recv(timeout=10))["type"] == "snapshot"
    finally:
        stop()


def test_a_truncated_syslog_frame_is_counted_and_the_listener_keeps_serving(tmp_path: Path) -> None:
    server, stop = start_server(tmp_path / "data", syslog={"listen": ["tcp:127.0.0.1:0"]})
    try:
        server.add_sensor("sys-01", syslog_from=("127.0.0.1",))  # its HOSTNAME is believed from here
        [address] = [a for a in server.service.listener_addresses() if a.startswith("syslog tcp:")]
        host, port = address.split("tcp:", 1)[1].rsplit(":", 1)
        line = json.dumps(cowrie_records_with_public_sources(recent=True)[0]).encode()
        message = b"<134>1 2026-12-06T09:00:00Z sys-01 cowrie - - - " + line
        with socket.create_connection((host, int(port))) as cut:
            cut.sendall(b"%d " % len(message) + message[:-20])  # octet count promises 20 bytes more
        wait_until(lambda: metric(server, "honeyatlas_requests_refused_total", source="syslog", reason="truncated") == 1,
                   "the truncated frame to be counted")
        with socket.create_connection((host, int(port))) as whole:
            whole.sendall(b"%d " % len(message) + message)
        wait_until(lambda: len(events_of(server, "sys-01")) == 1, "the whole message to be stored")
    finally:
        stop()


# --------------------------------------------------------------------------- retention


def _dated(records: list[dict[str, Any]], shift: timedelta, tag: str) -> list[dict[str, Any]]:
    out = []
    for i, record in enumerate(records):
        stamp = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")) + shift
        out.append({**record, "timestamp": stamp.isoformat().replace("+00:00", "Z"), "session": f"{tag}{i}"})
    return out


def _stored(data_dir: Path, sql: str) -> int:
    con = duckdb.connect(str(data_dir / "events.duckdb"), read_only=True)
    try:
        return int(con.execute(sql).fetchall()[0][0])
    finally:
        con.close()


def test_retention_deletes_old_events_and_dead_letters_and_keeps_the_rollups(tmp_path: Path) -> None:
    """`storage.retention_days` on DuckDB: at start (then hourly) the events and dead letters
    older than N days go, the histogram still counts their minutes, the 24-hour summary is
    unchanged, and events stored afterwards are folded as before."""
    data = tmp_path / "data"
    records = cowrie_records_with_public_sources(recent=True)
    old, recent = _dated(records, timedelta(days=-3), "old"), _dated(records, timedelta(0), "new")
    server, stop = start_server(data)
    try:
        token = server.add_sensor("keep-01")
        assert post(server, token, ndjson(old + recent)).status_code == 200
    finally:
        stop()
    con = duckdb.connect(str(data / "events.duckdb"))  # a dead letter from three days ago
    con.execute("INSERT INTO dead_letters VALUES (now()::TIMESTAMP - INTERVAL 3 DAY, 'http', 'keep-01', 'cowrie', 0, "
                "'invalid JSON', 'x')")
    con.close()

    now = datetime.now(UTC)
    span = (now - timedelta(days=4), now + timedelta(minutes=5))
    server, stop = start_server(data, storage={"retention_days": 1, "stats_fold_interval_seconds": 0.1})
    try:
        wait_until(lambda: metric(server, "honeyatlas_store_retention_deleted_total", table="events") == len(old),
                   "retention to delete the old events", timeout=60)
        assert metric(server, "honeyatlas_store_retention_deleted_total", table="dead_letters") == 1
        histogram = server.run(server.service.store.histogram(*span, 3600, False))
        assert sum(n for _, _, n in histogram) == len(old) + len(recent)  # the rollups kept the old minutes
        summary = server.run(server.service.store.summary(datetime.now(UTC), 10))
        assert summary.counts.last_day == len(recent)

        later = _dated(records, timedelta(seconds=1), "later")
        assert post(server, server.add_sensor("keep-02"), ndjson(later)).status_code == 200
        wait_until(lambda: sum(n for _, _, n in server.run(server.service.store.histogram(*span, 3600, False)))
                   == len(old) + len(recent) + len(later), "the new events to be counted")
    finally:
        stop()
    assert _stored(data, "SELECT count(*) FROM events") == len(recent) + len(later)
    assert _stored(data, "SELECT count(*) FROM dead_letters") == 0
    folded = _stored(data, "SELECT folded_rowid FROM stats_state")
    assert _stored(data, f"SELECT count(*) FROM events WHERE rowid > {folded}") == 0


def _hpfeeds_session(server: RunningServer, sensor: str) -> tuple[socket.socket, str]:
    """A raw hpfeeds connection, authenticated as `sensor` (registered with credentials)."""
    ident, secret = server.service.registry.enable_hpfeeds(sensor, ["test.cowrie"])
    [address] = [a for a in server.service.listener_addresses() if a.startswith("hpfeeds tcp:")]
    host, port = address.split("tcp:", 1)[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    decoder = Decoder()
    while (info := decoder.next()) is None:
        decoder.feed(sock.recv(4096))
    assert isinstance(info, Info)
    sock.sendall(encode(Auth(ident, auth_digest(info.nonce, secret))))
    return sock, ident


def _publish_frame(ident: str, record: dict[str, Any]) -> bytes:
    return encode(Publish(ident, "test.cowrie", json.dumps(record).encode()))


@pytest.fixture
def hpfeeds_server(tmp_path: Path) -> Iterator[RunningServer]:
    server, stop = start_server(tmp_path / "data", hpfeeds={"listen": ["tcp:127.0.0.1:0"], "channel_formats": {"test.cowrie": "cowrie"}})
    try:
        yield server
    finally:
        stop()


def test_a_broken_hpfeeds_frame_closes_its_connection_counted_and_the_broker_keeps_serving(hpfeeds_server: RunningServer) -> None:
    server = hpfeeds_server
    server.add_sensor("feed-01")
    record = cowrie_records_with_public_sources(recent=True)[0]
    broken, ident = _hpfeeds_session(server, "feed-01")
    body = bytes([len(ident)]) + ident.encode() + bytes([255]) + b"test.cowrie"  # the channel runs past the end
    broken.sendall(struct.pack("!IB", 5 + len(body), 3) + body)
    assert broken.recv(4096) == b""  # closed (hpfeeds has no error for a malformed frame; the count says why)
    broken.close()
    wait_until(lambda: metric(server, "honeyatlas_requests_refused_total", source="hpfeeds", reason="protocol_error")
               == 1, "the broken frame to be counted")
    server.add_sensor("feed-02")
    whole, ident = _hpfeeds_session(server, "feed-02")
    whole.sendall(_publish_frame(ident, record))
    whole.close()
    wait_until(lambda: len(events_of(server, "feed-02")) == 1, "the whole message to be stored")


def test_an_hpfeeds_frame_cut_by_the_end_of_the_stream_is_counted(hpfeeds_server: RunningServer) -> None:
    server = hpfeeds_server
    server.add_sensor("feed-01")
    cut, ident = _hpfeeds_session(server, "feed-01")
    frame = _publish_frame(ident, cowrie_records_with_public_sources(recent=True)[0])
    cut.sendall(frame[: len(frame) // 2])
    cut.close()
    wait_until(lambda: metric(server, "honeyatlas_requests_refused_total", source="hpfeeds", reason="protocol_error")
               == 1, "the cut frame to be counted", timeout=5)
