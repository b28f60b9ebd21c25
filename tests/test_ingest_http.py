"""End to end through a real server: POST records with a sensor token, query them back."""

from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import SAMPLES, RunningServer, ServerStarter

# Public addresses (real allocations) to replace the loopback sources of the lab samples.
PUBLIC_SOURCES = ["8.8.8.8", "1.1.1.1", "185.220.101.1", "200.160.2.3", "133.242.0.1", "41.216.186.3"]


def cowrie_records_with_public_sources(*, recent: bool = False) -> list[dict]:
    """The real cowrie sample with public source addresses (one per session); with `recent`,
    timestamps are shifted, order kept, so that the last record happened a second ago."""
    records = []
    sessions: dict[str, str] = {}
    for line in (SAMPLES / "cowrie.json").read_text().splitlines():
        record = json.loads(line)
        session = record.get("session", "")
        sessions.setdefault(session, PUBLIC_SOURCES[len(sessions) % len(PUBLIC_SOURCES)])
        record["src_ip"] = sessions[session]
        records.append(record)
    if recent:
        stamps = [datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")) for r in records]
        shift = datetime.now(UTC) - timedelta(seconds=1) - max(stamps)
        for record, stamp in zip(records, stamps, strict=True):
            record["timestamp"] = (stamp + shift).isoformat().replace("+00:00", "Z")
    return records


def post(server: RunningServer, token: str | None, body: bytes, fmt: str = "cowrie", **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{server.url}api/v1/ingest/{fmt}", content=body, headers=headers, timeout=30)


def ndjson(records: list[dict]) -> bytes:
    return b"\n".join(json.dumps(r).encode() for r in records) + b"\n"


def test_cowrie_sample_accepted_queryable_counted(server: RunningServer) -> None:
    token = server.add_sensor("lab-cowrie-01")
    records = cowrie_records_with_public_sources(recent=True)
    response = post(server, token, ndjson(records))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rejected"] == []
    assert body["accepted"] == len(records) == 99

    page = httpx.get(f"{server.url}api/v1/events", params={"limit": 1000}).json()
    events = page["events"]
    assert len(events) == len(records)
    assert all(e["sensor"] == "lab-cowrie-01" for e in events)
    assert all(e["src_geo"]["country"] for e in events if e.get("src_ip"))
    google = [e for e in events if e.get("src_ip") == "8.8.8.8"]
    assert google and all(e["src_geo"]["country"] == "US" and e["src_geo"]["asn"] == 15169 for e in google)
    assert all(e["dst_geo"] == {"lat": 50.11, "lon": 8.68, "precision": "sensor"} for e in events)

    by_country = httpx.get(f"{server.url}api/v1/events", params={"country": "us", "limit": 1000}).json()["events"]
    assert by_country and all(e["src_geo"]["country"] == "US" for e in by_country)
    logins = httpx.get(f"{server.url}api/v1/events", params={"kind": "login_attempt"}).json()["events"]
    assert len(logins) == 10 and {e["outcome"] for e in logins} == {"success", "failure"}

    summary = httpx.get(f"{server.url}api/v1/stats/summary").json()
    assert summary["counts"]["24h"] == summary["counts"]["1h"] == 99  # the capture spans ~2 minutes
    assert {c["key"] for c in summary["top"]["countries"]} >= {"US", "DE"}
    assert summary["top"]["sensors"] == [{"key": "lab-cowrie-01", "count": 99}]
    assert summary["pipeline"]["rejected"] == 0


def test_summary_counts_fresh_events(server: RunningServer) -> None:
    token = server.add_sensor("fresh")
    now = time.time()
    records = []
    for i, ip in enumerate(PUBLIC_SOURCES * 5):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - i)) + ".000000Z"
        records.append({"eventid": "cowrie.login.failed", "src_ip": ip, "src_port": 40000 + i, "dst_port": 22,
                        "username": "root", "password": f"pw{i}", "session": f"{i:012x}", "timestamp": stamp})
    assert post(server, token, ndjson(records)).json()["accepted"] == 30
    summary = httpx.get(f"{server.url}api/v1/stats/summary").json()
    assert summary["counts"] == {"1m": 30, "1h": 30, "24h": 30}
    assert {"key": "8.8.8.8", "count": 5} in summary["top"]["ips"]
    assert summary["top"]["ports"] == [{"key": 22, "count": 30}]
    assert summary["top"]["sensors"] == [{"key": "fresh", "count": 30}]
    assert any(item["key"] == 15169 and item["label"] for item in summary["top"]["asns"])
    assert {item["key"] for item in summary["top"]["countries"]} >= {"US", "DE"}
    sensors = httpx.get(f"{server.url}api/v1/sensors").json()["sensors"]
    assert sensors[0]["name"] == "fresh" and sensors[0]["events_1h"] == 30 and sensors[0]["last_seen"]


def test_bad_tokens_are_refused(server: RunningServer) -> None:
    token = server.add_sensor("s1")
    body = ndjson(cowrie_records_with_public_sources()[:2])
    assert post(server, None, body).status_code == 401
    assert post(server, "hat_0000000000000000_" + "x" * 43, body).status_code == 401
    assert post(server, token[:-1] + ("A" if token[-1] != "A" else "B"), body).status_code == 401
    assert post(server, token, body).status_code == 200
    server.service.registry.revoke("s1")
    response = post(server, token, body)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    metrics = httpx.get(f"{server.url}metrics").text
    assert 'honeyatlas_requests_refused_total{reason="unauthorized",source="http"} 4' in metrics


def test_oversize_bodies_are_refused(server: RunningServer) -> None:
    token = server.add_sensor("s1")
    limit = server.service.config.ingest.max_body_bytes
    big = b"{}\n" * (limit // 3 + 10)
    assert post(server, token, big).status_code == 413
    bomb = gzip.compress(b" " * (server.service.config.ingest.max_decompressed_bytes + 10))
    response = post(server, token, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompressed" in response.json()["error"]


@pytest.mark.parametrize("backend", ["duckdb"], indirect=True)  # refused before the store is touched
def test_oversize_body_413_reaches_a_client_that_is_still_sending(server: RunningServer) -> None:
    """urllib sends the whole body before it reads the answer: a 413 sent before the body was
    read used to reach it as a connection reset."""
    token = server.add_sensor("s1")
    body = b"{}\n" * (11_000_000 // 3)  # 11 MB, over the default 10 MiB
    url = f"{server.url}api/v1/ingest/cowrie"
    for data in (body, iter([body[i:i + 65536] for i in range(0, len(body), 65536)])):  # declared, then chunked
        request = urllib.request.Request(url, data=data, method="POST", headers={"Authorization": f"Bearer {token}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 413
        assert "exceeds the limit of 10485760 bytes" in json.loads(refused.value.read())["error"]
    assert post(server, token, ndjson(cowrie_records_with_public_sources()[:3])).status_code == 200


def test_gzip_and_json_array_bodies(server: RunningServer) -> None:
    token = server.add_sensor("s1")
    records = cowrie_records_with_public_sources()[:10]
    gz = post(server, token, gzip.compress(ndjson(records)), **{"Content-Encoding": "gzip"})
    assert gz.status_code == 200 and gz.json()["accepted"] == 10
    array = post(server, token, json.dumps(records).encode())
    assert array.status_code == 200 and array.json()["accepted"] == 10


def test_one_malformed_record_is_rejected_alone_and_kept(server: RunningServer) -> None:
    token = server.add_sensor("s1")
    records = cowrie_records_with_public_sources()[:5]
    lines = [json.dumps(r).encode() for r in records]
    lines.insert(2, b'{"eventid": "cowrie.login.failed", "src_ip": ')  # cut mid-record
    lines.insert(4, b'["not", "an", "object"]')
    response = post(server, token, b"\n".join(lines))
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 5
    assert [r["index"] for r in body["rejected"]] == [2, 4]
    assert body["rejected"][0]["reason"].startswith("invalid JSON")
    assert body["rejected"][1]["reason"]
    kept = httpx.get(f"{server.url}api/v1/rejected").json()["rejected"]
    assert {k["index"] for k in kept} == {2, 4}
    assert any('"src_ip":' in k["raw"] for k in kept)
    metrics = httpx.get(f"{server.url}metrics").text
    assert 'honeyatlas_records_rejected_total{reason="invalid JSON",source="http"} 1' in metrics


def test_undecodable_body_is_400_and_kept(server: RunningServer) -> None:
    token = server.add_sensor("s1")
    assert post(server, token, b"\x00\xff garbage").status_code == 400
    assert post(server, token, b"[1, 2").status_code == 400
    assert post(server, token, b"not gzip", **{"Content-Encoding": "gzip"}).status_code == 400
    kept = httpx.get(f"{server.url}api/v1/rejected").json()["rejected"]
    assert len(kept) == 3 and all(k["index"] == -1 for k in kept)


def test_unknown_format_is_404(server: RunningServer) -> None:
    token = server.add_sensor("s1")
    response = post(server, token, b"{}", fmt="nosuch")
    assert response.status_code == 404
    assert "cowrie" in response.json()["error"]


def test_pipeline_full_answers_429(start_on_backend: ServerStarter, tmp_path: Path) -> None:
    running, stop = start_on_backend(tmp_path / "data", storage={"max_pending_events": 5})
    try:
        token = running.add_sensor("s1")
        response = post(running, token, ndjson(cowrie_records_with_public_sources()[:10]))
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        assert post(running, token, ndjson(cowrie_records_with_public_sources()[:5])).status_code == 200
    finally:
        stop()


def test_private_sources_are_kept_and_flagged(server: RunningServer) -> None:
    token = server.add_sensor("s1")
    original = [json.loads(line) for line in (SAMPLES / "cowrie.json").read_text().splitlines()[:3]]
    original[1]["src_ip"] = "10.1.2.3"
    original[2]["src_ip"] = "::ffff:192.168.1.7"
    assert post(server, token, ndjson(original)).json()["accepted"] == 3
    events = httpx.get(f"{server.url}api/v1/events").json()["events"]
    flags = {e["src_ip"]: e.get("flags", []) for e in events}
    assert flags == {"127.0.0.1": ["loopback_source"], "10.1.2.3": ["private_source"],
                     "192.168.1.7": ["private_source"]}
    assert all("src_geo" not in e for e in events)


@pytest.mark.parametrize("limit", [7])
def test_events_cursor_pages_without_gaps_or_repeats(server: RunningServer, limit: int) -> None:
    token = server.add_sensor("s1")
    records = cowrie_records_with_public_sources()
    post(server, token, ndjson(records))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = httpx.get(f"{server.url}api/v1/events", params=params).json()
        seen.extend(e["id"] for e in page["events"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == len(records)
    assert httpx.get(f"{server.url}api/v1/events", params={"cursor": "!!"}).status_code == 400
    assert httpx.get(f"{server.url}api/v1/events", params={"kind": "nope"}).status_code == 400


def test_health_openapi_and_security_headers(server: RunningServer) -> None:
    health = httpx.get(f"{server.url}api/v1/health").json()
    assert health["status"] == "ok" and health["store"]["schema_version"] >= 1
    assert "cowrie" in health["formats"] and "event" in health["formats"]
    spec = httpx.get(f"{server.url}api/v1/openapi.json").json()
    for path in ("/api/v1/ingest/{fmt}", "/api/v1/events", "/api/v1/stats/summary", "/api/v1/sensors",
                 "/api/v1/health"):
        assert path in spec["paths"], path
    page = httpx.get(server.url)
    assert page.status_code == 200 and "<canvas" in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_idempotent_retry_is_answered_from_the_committed_receipt(start_on_backend: ServerStarter, tmp_path: Path) -> None:
    """The key cache can lose a key (a kill between the events' commit and the cache write);
    the receipt committed with the events still answers the retry."""
    data = tmp_path / "data"
    body = ndjson(cowrie_records_with_public_sources()[:7])
    running, stop = start_on_backend(data)
    try:
        token = running.add_sensor("s1")
        first = post(running, token, body, **{"Idempotency-Key": "batch-0001"})
        assert first.status_code == 200 and first.json()["accepted"] == 7
    finally:
        stop()
    (data / "idempotency.sqlite3").unlink()  # as if the cache write never happened
    running, stop = start_on_backend(data)
    try:
        again = post(running, token, body, **{"Idempotency-Key": "batch-0001"})
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        other = post(running, token, body + b"\n" + body, **{"Idempotency-Key": "batch-0001"})
        assert other.status_code == 422
        assert len(httpx.get(f"{running.url}api/v1/events").json()["events"]) == 7
    finally:
        stop()


def test_sensor_health_shows_rejections_and_silent_sensors(start_on_backend: ServerStarter, tmp_path: Path) -> None:
    running, stop = start_on_backend(tmp_path / "data", ingest={"sensor_silent_after_seconds": 1.0})
    try:
        busy = running.add_sensor("busy")
        quiet = running.add_sensor("quiet")
        running.add_sensor("never")
        running.add_sensor("gone")
        running.service.registry.revoke("gone")
        records = cowrie_records_with_public_sources(recent=True)[:3]
        assert post(running, quiet, ndjson(records)).status_code == 200
        time.sleep(1.5)  # "quiet" is now silent for longer than the 1 s threshold
        body = ndjson(records) + b"{not json\n"
        assert post(running, busy, body).json()["rejected"][0]["index"] == 3
        sensors = {s["name"]: s for s in httpx.get(f"{running.url}api/v1/sensors").json()["sensors"]}
        assert {name: s["status"] for name, s in sensors.items()} == {
            "busy": "active", "quiet": "silent", "never": "never_seen", "gone": "revoked",
        }
        assert sensors["busy"]["rejected_1h"] == 1 and sensors["busy"]["events_1h"] == 3
        assert sensors["quiet"]["rejected_1h"] == 0
    finally:
        stop()


def test_events_dated_too_far_ahead_get_the_receive_time_and_a_warning(server: RunningServer) -> None:
    token = server.add_sensor("s1")
    records = cowrie_records_with_public_sources(recent=True)[:3]
    ahead = datetime.now(UTC) + timedelta(seconds=60)  # within ingest.max_future_skew_seconds (300)
    records[0]["timestamp"] = "9999-12-31T23:59:59.999999Z"
    records[1]["timestamp"] = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    records[2]["timestamp"] = ahead.isoformat()
    before = datetime.now(UTC)
    assert post(server, token, ndjson(records)).json()["accepted"] == 3
    after = datetime.now(UTC)
    events = {e["raw"]: e for e in httpx.get(f"{server.url}api/v1/events").json()["events"]}
    forged, early_clock, slightly_early = (events[json.dumps(r)] for r in records)
    for event, sent in ((forged, "9999-12-31T23:59:59.999999+00:00"), (early_clock, records[1]["timestamp"])):
        assert before <= datetime.fromisoformat(event["ts"]) <= after
        assert any(sent in w and "receive time used" in w for w in event["warnings"]), event["warnings"]
    assert datetime.fromisoformat(slightly_early["ts"]) == ahead and not slightly_early.get("warnings")
