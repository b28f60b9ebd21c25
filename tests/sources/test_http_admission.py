"""HTTP ingest admission: beyond the in-flight bound a request is refused with 429 before its
body is read, and counted with its reason; the bound frees up when requests end. Every refusal
that asks for a retry carries `ingest.retry_after_seconds`."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from honeyatlas.config import IngestConfig
from honeyatlas.errors import StoreError
from honeyatlas.sources.idempotency import body_digest
from tests.conftest import RunningServer, ServerStarter
from tests.test_ingest_http import cowrie_records_with_public_sources, ndjson, post
from tests.waiting import wait_until


def stalled_post(server: RunningServer, token: str) -> socket.socket:
    """A POST whose body never arrives in full: the handler waits for it, in flight."""
    host, port = server.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"POST /api/v1/ingest/cowrie HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Length: 100000\r\n\r\n{".encode()
    )
    return sock


def refused(server: RunningServer) -> float:
    for line in httpx.get(f"{server.url}metrics").text.splitlines():
        if line.startswith("honeyatlas_requests_refused_total") and 'reason="too_many_in_flight"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def in_flight(server: RunningServer) -> float:
    line = next(line for line in httpx.get(f"{server.url}metrics").text.splitlines()
                if line.startswith("honeyatlas_ingest_requests_in_flight"))
    return float(line.rsplit(" ", 1)[1])


def wait_for(condition: Callable[[], object], timeout: float = 10) -> None:
    wait_until(condition, timeout=timeout, interval=0.02)


def test_beyond_the_in_flight_bound_requests_get_429_without_their_body(server: RunningServer) -> None:
    token = server.add_sensor("s1")
    bound = IngestConfig().max_in_flight_requests
    stalled = [stalled_post(server, token) for _ in range(bound)]
    try:
        wait_for(lambda: in_flight(server) == bound)
        extra = stalled_post(server, token)  # headers only: answered all the same
        extra.settimeout(10)
        answer = extra.recv(4096)
        extra.close()
        assert answer.startswith(b"HTTP/1.1 429") and b"retry-after: 1" in answer.lower()
        response = post(server, token, ndjson(cowrie_records_with_public_sources()[:3]))
        assert response.status_code == 429 and "in flight" in response.json()["error"]
        assert refused(server) == 2
    finally:
        for sock in stalled:
            sock.close()
    wait_for(lambda: in_flight(server) == 0)
    assert post(server, token, ndjson(cowrie_records_with_public_sources()[:3])).status_code == 200


def test_every_retry_refusal_sends_the_configured_retry_after(
    start_on_backend: ServerStarter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, stop = start_on_backend(tmp_path / "data", ingest={"retry_after_seconds": 7, "max_in_flight_requests": 1},
                                     storage={"max_pending_events": 5})
    try:
        token = running.add_sensor("s1")
        body = ndjson(cowrie_records_with_public_sources()[:3])
        stalled = stalled_post(running, token)
        try:  # the early 429, before the body is read
            wait_for(lambda: in_flight(running) == 1)
            early = post(running, token, body)
            assert early.status_code == 429 and "in flight" in early.json()["error"]
            assert early.headers["Retry-After"] == "7"
        finally:
            stalled.close()
        wait_for(lambda: in_flight(running) == 0)

        full = post(running, token, ndjson(cowrie_records_with_public_sources()[:10]))  # over max_pending_events
        assert full.status_code == 429 and full.headers["Retry-After"] == "7"

        idempotency = running.service.idempotency
        assert idempotency.check("s1", "held", body_digest(body)) is None  # as if a first copy were running
        try:
            running_copy = post(running, token, body, **{"Idempotency-Key": "held"})
            assert running_copy.status_code == 409 and running_copy.headers["Retry-After"] == "7"
        finally:
            idempotency.release("s1", "held")

        async def failing_store(**_: Any) -> None:
            raise StoreError("disk on fire")

        monkeypatch.setattr(running.service.pipeline, "ingest", failing_store)
        failed = post(running, token, body)
        assert failed.status_code == 503 and failed.headers["Retry-After"] == "7"
    finally:
        stop()
