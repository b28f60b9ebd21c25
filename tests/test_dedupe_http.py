"""cowrie's JSON log and its hpfeeds session summaries, both shipped: each action counted once."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import SAMPLES, RunningServer


def post(server: RunningServer, token: str, fmt: str, name: str) -> dict:
    body = (SAMPLES / name).read_bytes()
    response = httpx.post(f"{server.url}api/v1/ingest/{fmt}", content=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("log_first", [True, False])
def test_log_and_session_summaries_are_not_double_counted(server: RunningServer, log_first: bool) -> None:
    token = server.add_sensor("lab-cowrie-01")
    steps = [("cowrie", "cowrie.json"), ("cowrie-sessions", "cowrie-sessions.jsonl")]
    results = [post(server, token, fmt, name) for fmt, name in (steps if log_first else steps[::-1])]
    assert results[0]["duplicates"] == 0
    assert results[1]["duplicates"] == 61  # every summary event has its twin in the log
    events = httpx.get(f"{server.url}api/v1/events", params={"limit": 1000}).json()["events"]
    assert len(events) == 99  # the log's 99 events, once
    logins = [e for e in events if e["kind"] == "login_attempt"]
    assert len(logins) == 10
    metrics = httpx.get(f"{server.url}metrics").text
    assert 'honeyatlas_events_dropped_total{component="dedupe",reason="duplicate_session_event"} 61' in metrics
