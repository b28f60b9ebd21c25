"""HTTP ingest admission: beyond the in-flight bound a request is refused with 429 before its
body is read, and counted with its reason; the bound frees up when requests end."""

from __future__ import annotations

import socket
from collections.abc import Callable

import httpx

from honeyatlas.config import IngestConfig
from tests.conftest import RunningServer
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
