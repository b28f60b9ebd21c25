"""The dashboard statistics over HTTP: the histogram route and the summary, against the events."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import httpx

from tests.conftest import RunningServer
from tests.test_ingest_http import cowrie_records_with_public_sources, ndjson, post


def stored_events(server: RunningServer) -> list[dict]:
    return httpx.get(f"{server.url}api/v1/events", params={"limit": 1000}).json()["events"]


def test_histogram_counts_every_event_per_bucket_and_kind(server: RunningServer) -> None:
    token = server.add_sensor("edge-1")
    assert post(server, token, ndjson(cowrie_records_with_public_sources(recent=True))).status_code == 200
    events = stored_events(server)
    stamps = [datetime.fromisoformat(e["ts"]) for e in events]
    since = min(stamps) - timedelta(minutes=3)
    until = max(stamps) + timedelta(seconds=1)

    got = httpx.get(f"{server.url}api/v1/stats/histogram", params={
        "bucket_seconds": 60, "since": since.isoformat(), "until": until.isoformat(), "by_kind": "true",
    })
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["bucket_seconds"] == 60
    starts = [datetime.fromisoformat(b["start"]) for b in body["buckets"]]
    assert starts[0] <= since < starts[0] + timedelta(minutes=1) and starts[-1] < until
    assert all(b - a == timedelta(minutes=1) for a, b in pairwise(starts))  # dense
    expected = Counter(
        (stamp.replace(second=0, microsecond=0), event["kind"]) for stamp, event in zip(stamps, events, strict=True)
    )
    for start, bucket in zip(starts, body["buckets"], strict=True):
        kinds = {kind: n for (minute, kind), n in expected.items() if minute == start}
        assert bucket["kinds"] == kinds and bucket["count"] == sum(kinds.values())

    default = httpx.get(f"{server.url}api/v1/stats/histogram").json()  # the last 24 hours, hourly
    assert default["bucket_seconds"] == 3600 and len(default["buckets"]) in (24, 25)
    assert sum(b["count"] for b in default["buckets"]) == len(events)
    assert "kinds" not in default["buckets"][0]

    summary = httpx.get(f"{server.url}api/v1/stats/summary").json()
    assert summary["counts"]["24h"] == len(events)
    by_ip = Counter(e["src_ip"] for e in events if e.get("src_ip"))
    assert summary["top"]["ips"][0] == {"key": by_ip.most_common(1)[0][0], "count": by_ip.most_common(1)[0][1]}


def test_histogram_refuses_what_it_cannot_answer(server: RunningServer) -> None:
    url = f"{server.url}api/v1/stats/histogram"
    now = datetime.now(UTC)
    for params in (
        {"bucket_seconds": 90},
        {"bucket_seconds": 30},
        {"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()},
        {"bucket_seconds": 60, "since": (now - timedelta(days=30)).isoformat()},  # 43,200 buckets
    ):
        response = httpx.get(url, params=params)
        assert response.status_code == 400, (params, response.text)
    spec = httpx.get(f"{server.url}api/v1/openapi.json").json()
    assert "/api/v1/stats/histogram" in spec["paths"]
