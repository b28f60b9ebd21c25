"""Slow and greedy clients against a real server: deadlines, per-address caps, a slowloris.

Every client is a real socket on 127.0.0.1 (or another loopback address: all of 127/8 is
the loopback on Linux, so a test can be many "client addresses" at once). The reduced
slowloris here (200 connections trickling header bytes from 10 addresses) runs in CI; the
full run, with figures against a baseline without the attack, is the `slowloris` benchmark
(benchmarks/slowloris.py, docs/reliability.md). Deadlines in these tests are generous: a
loaded machine must not fail them; how fast the server answers belongs to the benchmark.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hpfeeds import protocol as hpfeeds_wire
from websockets.sync.client import connect

from honeyatlas.sources.syslog import SyslogLimits
from tests.conftest import RunningServer, start_server
from tests.sources.test_hpfeeds_endpoint import COWRIE_SESSIONS, hpfeeds_sensor
from tests.sources.test_syslog import LOGIN_FAILED_CEF, listening, octet, rfc3164
from tests.test_ingest_http import cowrie_records_with_public_sources, ndjson, post
from tests.waiting import wait_until

HTTP_CAP = 20  # per address, on the guarded server
SOURCE_CAP = 3  # hpfeeds and syslog, per address
ATTACKERS = [f"127.0.0.{n}" for n in range(2, 12)]  # 10 addresses x HTTP_CAP = 200 connections


def sources_listening() -> dict[str, Any]:
    return {"hpfeeds": {"listen": ["tcp:127.0.0.1:0"], "max_connections_per_address": SOURCE_CAP},
            "syslog": {"listen": ["tcp:127.0.0.1:0"], "max_connections_per_address": SOURCE_CAP}}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Deadlines long enough to hold connections for a test, caps small enough to reach."""
    running, stop = start_server(
        tmp_path_factory.mktemp("guarded") / "data",
        server={"header_timeout_seconds": 4.0, "max_connections_per_address": HTTP_CAP}, **sources_listening(),
    )
    try:
        yield running
    finally:
        stop()


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Every deadline short, so each one is reached in a test."""
    running, stop = start_server(
        tmp_path_factory.mktemp("strict") / "data",
        server={"header_timeout_seconds": 1.0, "body_timeout_seconds": 1.0, "body_min_bytes_per_second": 500,
                "keep_alive_timeout_seconds": 1.0},
        live={"ping_interval_seconds": 0.5, "ping_timeout_seconds": 0.5, "max_incoming_frame_bytes": 4096},
    )
    try:
        yield running
    finally:
        stop()


# --- helpers --------------------------------------------------------------------------------


def counter(server: RunningServer, name: str, **labels: str) -> float:
    return server.service.metrics.total(name, **labels)


def refused(server: RunningServer, listener: str, reason: str = "per_address_limit") -> float:
    return counter(server, "honeyatlas_connections_refused_total", listener=listener, reason=reason)


def timed_out(server: RunningServer, listener: str, phase: str) -> float:
    return counter(server, "honeyatlas_connections_timed_out_total", listener=listener, phase=phase)


def host_port(server: RunningServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


def dial(address: tuple[str, int], source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(address)
    return sock


def read_to_end(sock: socket.socket, timeout: float = 15) -> bytes:
    """Everything the server sends until it closes; fails if it does not close in time."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def still_open(sock: socket.socket) -> bool:
    """Nothing came back yet: no answer (a 408, a 503) and no close."""
    try:
        sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def hpfeeds_port(server: RunningServer) -> int:
    return server.service.hpfeeds[0].port


def syslog_address(server: RunningServer) -> tuple[str, int]:
    host, port = server.service.sources.syslog[0].bound
    return str(host), int(port)


def hpfeeds_publish(server: RunningServer, ident: str, secret: str, payloads: list[bytes]) -> None:
    with dial(("127.0.0.1", hpfeeds_port(server))) as sock:
        unpacker = hpfeeds_wire.Unpacker()
        frames: list[tuple[int, bytes]] = []
        while not frames:
            unpacker.feed(sock.recv(4096))
            frames.extend(unpacker)
        assert frames[0][0] == hpfeeds_wire.OP_INFO
        _, nonce = hpfeeds_wire.readinfo(frames[0][1])
        sock.sendall(hpfeeds_wire.msgauth(nonce, ident, secret) + b"".join(
            hpfeeds_wire.msgpublish(ident, "cowrie.sessions", payload) for payload in payloads))


def syslog_send(server: RunningServer, sensor: str, count: int) -> None:
    with dial(syslog_address(server)) as sock:
        sock.sendall(b"".join(octet(rfc3164(sensor, LOGIN_FAILED_CEF)) for _ in range(count)))
        sock.shutdown(socket.SHUT_WR)
        assert read_to_end(sock) == b""


class Slowloris:
    """Connections that send a request head one byte at a time and never finish it, from
    several addresses; a connection the server closes is opened again, as the attack does."""

    def __init__(self, address: tuple[str, int], sources: list[str], per_source: int, tick: float = 0.3) -> None:
        self.address, self.sources, self.per_source, self.tick = address, sources, per_source, tick
        self.sockets: list[tuple[str, socket.socket | None]] = [(s, None) for s in sources for _ in range(per_source)]
        self.reconnects = 0
        self.refused_connects = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)

    def __enter__(self) -> Slowloris:
        self.sockets = [(source, self._open(source)) for source, _ in self.sockets]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        for _, sock in self.sockets:
            if sock is not None:
                sock.close()

    def held(self) -> int:
        return sum(1 for _, sock in self.sockets if sock is not None and still_open(sock))

    def _open(self, source: str) -> socket.socket | None:
        try:
            sock = dial(self.address, source, timeout=5)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sock.setblocking(False)
            return sock
        except OSError:
            self.refused_connects += 1
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            for n, (source, sock) in enumerate(self.sockets):
                if sock is not None and still_open(sock):
                    try:
                        sock.send(b"X")  # a header name that never ends
                        continue
                    except OSError:
                        pass
                if sock is not None:
                    sock.close()
                    self.reconnects += 1
                self.sockets[n] = (source, self._open(source))


# --- the slowloris run --------------------------------------------------------------------


def test_a_slowloris_leaves_the_map_and_every_sensor_served(guarded: RunningServer) -> None:
    server = guarded
    token = server.add_sensor("slow-http-01")
    ident, secret = hpfeeds_sensor(server, "slow-hpfeeds-01", "cowrie")
    server.add_sensor("slow-syslog-01", syslog_from=("127.0.0.0/8",))
    records = cowrie_records_with_public_sources(recent=True)
    header_timeouts = timed_out(server, "http", "header")
    with Slowloris(host_port(server), ATTACKERS, HTTP_CAP) as attack:
        wait_until(lambda: attack.held() >= len(ATTACKERS) * HTTP_CAP * 0.9, "the attack to hold its connections")
        # Every attacking connection gets its 408 at the header deadline and opens again:
        # the server is under attack the whole time the sensors and the map are checked.
        wait_until(lambda: timed_out(server, "http", "header") - header_timeouts >= len(ATTACKERS) * HTTP_CAP * 0.9,
                   "the header deadline to cut the first round of the attack", timeout=60)
        wait_until(lambda: attack.held() >= len(ATTACKERS) * HTTP_CAP * 0.9, "the attack to open them all again")
        seconds: dict[str, float] = {}

        def timed(name: str, check: Any) -> None:
            started = time.monotonic()
            check()
            seconds[name] = time.monotonic() - started

        with httpx.Client(base_url=server.url, timeout=15) as client:
            timed("map", lambda: _assert_ok(client.get("/"), "<html"))
            timed("summary", lambda: _assert_ok(client.get("/api/v1/stats/summary"), "{"))

            def live() -> None:
                with connect(server.ws_url, additional_headers=server.auth, open_timeout=15) as ws:
                    assert json.loads(ws.recv(timeout=15))["type"] == "snapshot"

            timed("live", live)
            timed("http_ingest", lambda: _assert_ok(post(server, token, ndjson(records)), "accepted"))
        hpfeeds_before = counter(server, "honeyatlas_events_accepted_total", source="hpfeeds")
        syslog_before = counter(server, "honeyatlas_events_accepted_total", source="syslog")
        timed("hpfeeds", lambda: (hpfeeds_publish(server, ident, secret, COWRIE_SESSIONS),
                                  wait_until(lambda: counter(server, "honeyatlas_events_accepted_total",
                                                             source="hpfeeds") > hpfeeds_before)))
        timed("syslog", lambda: (syslog_send(server, "slow-syslog-01", 5),
                                 wait_until(lambda: counter(server, "honeyatlas_events_accepted_total",
                                                            source="syslog") >= syslog_before + 5)))
        print(f"under {attack.held()} slowloris connections ({attack.reconnects} reconnects, "
              f"{attack.refused_connects} failed connects, {refused(server, 'http')} refused):", seconds)
    assert set(seconds) == {"map", "summary", "live", "http_ingest", "hpfeeds", "syslog"}


def _assert_ok(response: httpx.Response, contains: str) -> None:
    assert response.status_code == 200, response.text
    assert contains in response.text


# --- per-address caps ---------------------------------------------------------------------


def test_http_and_websocket_share_a_cap_per_address(guarded: RunningServer) -> None:
    server, source = guarded, "127.0.0.50"
    before = refused(server, "http")
    with contextlib.ExitStack() as stack:
        held = [stack.enter_context(connect(server.ws_url, sock=dial(host_port(server), source),
                                            additional_headers=server.auth, open_timeout=15))
                for _ in range(HTTP_CAP)]  # WebSockets: no header deadline holds them after the upgrade
        with dial(host_port(server), source) as extra:
            extra.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = read_to_end(extra)
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many connections from your address" in answer
        assert refused(server, "http") == before + 1
        assert httpx.get(f"{server.url}api/v1/health", timeout=15).status_code == 200  # another address
        held[0].close()

        def a_slot_is_free() -> bool:
            with dial(host_port(server), source) as sock:
                sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                return read_to_end(sock).startswith(b"HTTP/1.1 200 ")

        wait_until(a_slot_is_free, "the closed WebSocket's slot to be given back")


def test_hpfeeds_refuses_the_connection_over_its_cap_per_address(guarded: RunningServer) -> None:
    server, source = guarded, "127.0.0.51"
    address = ("127.0.0.1", hpfeeds_port(server))
    before = refused(server, "hpfeeds")
    held = [dial(address, source) for _ in range(SOURCE_CAP)]
    try:
        for sock in held:
            assert sock.recv(5)[4:5] == bytes([hpfeeds_wire.OP_INFO])  # served
        with dial(address, source) as extra:
            assert read_to_end(extra) == b""  # closed without OP_INFO
        assert refused(server, "hpfeeds") == before + 1
        with dial(address, "127.0.0.52") as other:
            assert other.recv(5)[4:5] == bytes([hpfeeds_wire.OP_INFO])
    finally:
        for sock in held:
            sock.close()


def test_syslog_refuses_the_connection_over_its_cap_per_address(guarded: RunningServer) -> None:
    server, source = guarded, "127.0.0.53"
    server.add_sensor("cap-syslog-01", syslog_from=("127.0.0.0/8",))
    before = refused(server, "syslog")
    accepted = counter(server, "honeyatlas_events_accepted_total", source="syslog")
    held = [dial(syslog_address(server), source) for _ in range(SOURCE_CAP)]
    try:
        for sock in held:
            sock.sendall(octet(rfc3164("cap-syslog-01", LOGIN_FAILED_CEF)))
        wait_until(lambda: counter(server, "honeyatlas_events_accepted_total", source="syslog") >= accepted + SOURCE_CAP,
                   "the held connections' messages")
        with dial(syslog_address(server), source) as extra:
            assert read_to_end(extra) == b""
        wait_until(lambda: refused(server, "syslog") == before + 1, "the refusal to be counted")
    finally:
        for sock in held:
            sock.close()


# --- deadlines ----------------------------------------------------------------------------


def test_a_request_head_not_finished_in_time_gets_408(strict: RunningServer) -> None:
    before = timed_out(strict, "http", "header")
    with dial(host_port(strict)) as silent, dial(host_port(strict)) as trickling:
        trickling.sendall(b"GET /api/v1/health HTTP/1.1\r\n")
        for sock in (silent, trickling):
            assert read_to_end(sock).startswith(b"HTTP/1.1 408 ")
    wait_until(lambda: timed_out(strict, "http", "header") == before + 2, "both header timeouts counted")


def test_a_stalled_or_trickled_body_closes_the_connection(strict: RunningServer) -> None:
    token = strict.add_sensor("body-01")
    head = (f"POST /api/v1/ingest/cowrie HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/x-ndjson\r\nContent-Length: 100000\r\n\r\n").encode()
    before = timed_out(strict, "http", "body")
    with dial(host_port(strict)) as stalled:
        stalled.sendall(head + b'{"eventid": ')
        read_to_end(stalled)  # returns when the server closes (a 4xx may come first)
    wait_until(lambda: timed_out(strict, "http", "body") == before + 1, "the stalled body counted")
    with dial(host_port(strict)) as trickling:
        trickling.sendall(head)
        deadline = time.monotonic() + 30
        while still_open(trickling) and time.monotonic() < deadline:  # 20 bytes/s: under 500/s
            try:
                trickling.sendall(b" ")
            except OSError:
                break
            time.sleep(0.05)
        assert time.monotonic() < deadline, "a trickled body kept its connection"
    wait_until(lambda: timed_out(strict, "http", "body") == before + 2, "the trickled body counted")


def test_an_idle_keep_alive_connection_is_closed(strict: RunningServer) -> None:
    before = timed_out(strict, "http", "keep_alive")
    with dial(host_port(strict)) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_to_end(sock).startswith(b"HTTP/1.1 200 ")  # then closed when idle
    wait_until(lambda: timed_out(strict, "http", "keep_alive") == before + 1, "the keep-alive timeout counted")


def test_a_quick_client_is_not_cut_off(strict: RunningServer) -> None:
    """Requests and bodies that arrive at a normal pace on one kept-alive connection."""
    token = strict.add_sensor("quick-01")
    records = cowrie_records_with_public_sources()
    with httpx.Client(base_url=strict.url, timeout=15) as client:
        for _ in range(3):
            response = client.post("/api/v1/ingest/cowrie", content=ndjson(records),
                                   headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
            time.sleep(0.3)  # idle below the keep-alive timeout


def test_an_oversized_websocket_frame_closes_that_client_only(strict: RunningServer) -> None:
    before = refused(strict, "websocket", "frame_too_large")
    with connect(strict.ws_url, additional_headers=strict.auth, open_timeout=15) as bystander, \
            connect(strict.ws_url, additional_headers=strict.auth, open_timeout=15) as sender:
        assert json.loads(bystander.recv(timeout=15))["type"] == "snapshot"
        assert json.loads(sender.recv(timeout=15))["type"] == "snapshot"
        sender.send("x" * 5000)
        wait_until(lambda: sender.close_code is not None or _closed(sender), "the sender to be closed")
        assert sender.close_code in (1009, None)
        assert refused(strict, "websocket", "frame_too_large") == before + 1
        token = strict.add_sensor("bystander-01")
        assert post(strict, token, ndjson(cowrie_records_with_public_sources()[:3])).status_code == 200
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the other client still gets the stream
            if json.loads(bystander.recv(timeout=15))["type"] == "events":
                break
        else:
            raise AssertionError("the bystander got no events")


def _closed(ws: Any) -> bool:
    try:
        ws.recv(timeout=0.1)
    except TimeoutError:
        return False
    except Exception:
        return True
    return False


def test_a_websocket_client_that_answers_no_ping_is_dropped(strict: RunningServer) -> None:
    before = timed_out(strict, "websocket", "ping")
    with dial(host_port(strict)) as sock:  # a handshake, then never a pong (a gone or stuck client)
        credentials = "".join(f"{name}: {value}\r\n" for name, value in strict.auth.items()).encode()
        sock.sendall(b"GET /api/v1/live HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + credentials + b"\r\n")
        wait_until(lambda: timed_out(strict, "websocket", "ping") == before + 1, "the unanswered ping counted")
        received = read_to_end(sock)
    assert received.startswith(b"HTTP/1.1 101 ")


def test_an_idle_syslog_connection_is_closed_and_counted(guarded: RunningServer) -> None:
    before = timed_out(guarded, "syslog", "idle")
    with listening(guarded, "tcp:127.0.0.1:0", limits=SyslogLimits(idle_timeout_seconds=0.5)) as bound, \
            dial((str(bound[0]), int(bound[1]))) as sock:
        assert read_to_end(sock) == b""
    wait_until(lambda: timed_out(guarded, "syslog", "idle") == before + 1, "the idle timeout counted")
