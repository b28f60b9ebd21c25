"""The hpfeeds endpoint inside a real honeyatlas server, driven by the real `hpfeeds` package.

The publisher is `hpfeeds.asyncio.ClientSession` (what cowrie's and OpenCanary's outputs speak);
refusals are compared byte for byte with the reference broker (`hpfeeds.broker`, in-process).
The endpoint runs on the server's own event loop, beside its pipeline and store.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from hpfeeds import protocol as reference
from hpfeeds.asyncio import ClientSession
from hpfeeds.broker.auth.memory import Authenticator
from hpfeeds.broker.server import Server

from honeyatlas.sources.hpfeeds import HpfeedsEndpoint
from tests.conftest import SAMPLES, RunningServer, start_server

T = TypeVar("T")
COWRIE_SESSIONS = (SAMPLES / "cowrie-sessions.jsonl").read_bytes().splitlines()
OPENCANARY = [json.dumps(r["payload"]).encode() for r in map(json.loads, (SAMPLES / "opencanary-hpfeeds.json").open())]
OPENCANARY += (SAMPLES / "opencanary.jsonl").read_bytes().splitlines()
COMPARED = ("kind", "action", "outcome", "src_ip", "src_port", "dst_port", "username", "password", "command", "session")


class OnServer:
    """Runs coroutines on the server's event loop (where the pipeline and store live)."""

    def __init__(self, running: RunningServer) -> None:
        self.running = running
        # RunningServer.loop is being added to tests/conftest.py; the hub's task runs on that loop too
        self.loop = getattr(running, "loop", None) or running.service.hub._task.get_loop()  # type: ignore[union-attr]

    async def __call__(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def total(self, name: str, **labels: str) -> float:
        async def read() -> float:
            return self.running.service.metrics.total(name, **labels)

        return await self(read())

    async def until(self, check: Callable[[], Awaitable[bool]], timeout: float = 15) -> None:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.05)

    async def events(self, sensor: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.running.url) as client:
            response = await client.get("api/v1/events", params={"sensor": sensor, "limit": 1000})
        return response.json()["events"]

    async def http_ingest(self, sensor: str, honeypot: str, fmt: str, lines: list[bytes]) -> dict[str, Any]:
        token = self.running.add_sensor(sensor, honeypot=honeypot)
        async with httpx.AsyncClient(base_url=self.running.url) as client:
            response = await client.post(
                f"api/v1/ingest/{fmt}", content=b"\n".join(lines), headers={"Authorization": f"Bearer {token}"}
            )
        assert response.status_code == 200, response.text
        return response.json()


def signature(events: list[dict[str, Any]]) -> Counter[tuple[Any, ...]]:
    return Counter(tuple(e.get(f) for f in COMPARED) for e in events)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningServer]:
    server, stop = start_server(tmp_path / "data")
    try:
        yield server
    finally:
        stop()


@pytest.fixture
def on_server(running: RunningServer) -> OnServer:
    return OnServer(running)


async def started_endpoint(on_server: OnServer, **options: Any) -> HpfeedsEndpoint:
    service = on_server.running.service
    endpoint = HpfeedsEndpoint(
        pipeline=service.pipeline, registry=service.registry, metrics=service.metrics,
        host="127.0.0.1", port=0, **options,
    )
    await on_server(endpoint.start())
    return endpoint


@pytest.fixture
async def endpoint(on_server: OnServer) -> AsyncIterator[HpfeedsEndpoint]:
    endpoint = await started_endpoint(on_server)
    yield endpoint
    await on_server(endpoint.stop())


def hpfeeds_sensor(running: RunningServer, name: str, honeypot: str, channels: list[str] | None = None) -> tuple[str, str]:
    running.service.registry.add(name, honeypot=honeypot, lat=50.11, lon=8.68)
    return running.service.registry.enable_hpfeeds(name, channels)


async def publish_all(port: int, ident: str, secret: str, channel: str, payloads: list[bytes], **kw: Any) -> None:
    async with ClientSession("127.0.0.1", port, ident, secret, **kw) as client:
        for payload in payloads:
            client.publish(channel, payload)


async def test_real_client_publishes_cowrie_sessions_and_opencanary(
    endpoint: HpfeedsEndpoint, on_server: OnServer
) -> None:
    running = on_server.running
    cowrie = hpfeeds_sensor(running, "cowrie-01", "cowrie")
    canary = hpfeeds_sensor(running, "canary-01", "opencanary")
    assert cowrie[0] == "cowrie-01" and len(cowrie[1]) == 32
    await asyncio.gather(
        publish_all(endpoint.port, *cowrie, "cowrie.sessions", COWRIE_SESSIONS),
        publish_all(endpoint.port, *canary, "opencanary.events", OPENCANARY),
    )
    total = len(COWRIE_SESSIONS) + len(OPENCANARY)

    async def all_received() -> bool:
        return await on_server.total("honeyatlas_records_received_total", source="hpfeeds") == total

    await on_server.until(all_received)
    # The same records through the HTTP source, under other sensors, are the reference.
    http_cowrie = await on_server.http_ingest("cowrie-ref", "cowrie", "cowrie-sessions", COWRIE_SESSIONS)
    http_canary = await on_server.http_ingest("canary-ref", "opencanary", "opencanary", OPENCANARY)
    for name, expected in (("cowrie-01", "cowrie-ref"), ("canary-01", "canary-ref")):
        got, want = await on_server.events(name), await on_server.events(expected)
        assert got and signature(got) == signature(want)
        assert {e["sensor"] for e in got} == {name}
    assert len(await on_server.events("cowrie-01")) == http_cowrie["events"]
    assert await on_server.total("honeyatlas_records_received_total", source="hpfeeds", format="cowrie-sessions") == 10
    ignored = await on_server.total("honeyatlas_records_ignored_total", source="hpfeeds")
    assert ignored == len(http_canary["ignored"]) > 0  # OpenCanary's own start-up messages
    assert await on_server.total("honeyatlas_requests_refused_total", source="hpfeeds") == 0


async def test_tls(on_server: OnServer, tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    endpoint = await started_endpoint(on_server, ssl_context=server_ctx)
    try:
        ident, secret = hpfeeds_sensor(on_server.running, "cowrie-tls", "cowrie")
        await publish_all(endpoint.port, ident, secret, "cowrie.sessions", COWRIE_SESSIONS, ssl=client_ctx)

        async def stored() -> bool:
            return len(await on_server.events("cowrie-tls")) > 0

        await on_server.until(stored)
        assert await on_server.total("honeyatlas_records_received_total", source="hpfeeds") == len(COWRIE_SESSIONS)
    finally:
        await on_server(endpoint.stop())


# --- refusals, compared with the reference broker -------------------------------------------------

async def exchange(port: int, steps: Callable[[bytes], list[bytes]]) -> tuple[list[tuple[int, bytes]], bool]:
    """Connect, read OP_INFO, send what `steps(nonce)` gives, read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    unpacker = reference.Unpacker()
    received: list[tuple[int, bytes]] = []
    try:
        async with asyncio.timeout(10):
            while not received:
                unpacker.feed(await reader.read(4096))
                received.extend(unpacker)
            assert received[0][0] == reference.OP_INFO
            _, nonce = reference.readinfo(received[0][1])
            for frame in steps(nonce):
                writer.write(frame)
            await writer.drain()
            while data := await reader.read(4096):
                unpacker.feed(data)
                received.extend(unpacker)
        return received[1:], True
    except TimeoutError:
        return received[1:], False
    finally:
        writer.close()


def auth(ident: str, secret: str) -> Callable[[bytes], list[bytes]]:
    return lambda nonce: [reference.msgauth(nonce, ident, secret)]


REFUSALS: dict[str, tuple[str, Callable[[str, str], Callable[[bytes], list[bytes]]]]] = {
    "auth_failed": ("wrong secret", lambda i, s: auth(i, s + "x")),
    "auth_failed_unknown": ("unknown ident", lambda i, s: auth("nobody", s)),
    "first_message_not_auth": ("publish first", lambda i, s: lambda n: [reference.msgpublish(i, "cowrie.sessions", b"{}")]),
    "channel_forbidden": (
        "forbidden channel",
        lambda i, s: lambda n: [reference.msgauth(n, i, s), reference.msgpublish(i, "dionaea.capture", b"{}")],
    ),
    "ident_mismatch": (
        "other ident in publish",
        lambda i, s: lambda n: [reference.msgauth(n, i, s), reference.msgpublish("other", "cowrie.sessions", b"{}")],
    ),
    "subscribe_refused": (
        "subscribe",
        lambda i, s: lambda n: [reference.msgauth(n, i, s), reference.msgsubscribe(i, "dionaea.capture")],
    ),
}


@pytest.fixture
async def reference_broker() -> AsyncIterator[int]:
    """The real hpfeeds broker, in-process on 127.0.0.1 port 0, knowing ident cowrie-01."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    broker = Server(
        Authenticator({"cowrie-01": {"secret": "s3cret", "owner": "lab", "pubchans": ["cowrie.sessions", "kippo.sessions"], "subchans": []}}),
        name="honeyatlas",
    )
    broker.add_endpoint_test(sock)
    task = asyncio.create_task(broker.serve_forever())
    await broker.when_started
    yield sock.getsockname()[1]
    for connection in list(broker.connections):
        connection.transport.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("reason", sorted(REFUSALS))
async def test_refusals_say_what_the_reference_broker_says_and_are_counted(
    reason: str, endpoint: HpfeedsEndpoint, on_server: OnServer, reference_broker: int
) -> None:
    ident, secret = hpfeeds_sensor(on_server.running, "cowrie-01", "cowrie")
    secret_for_broker = "s3cret"
    _, steps = REFUSALS[reason]
    ours, ours_closed = await exchange(endpoint.port, steps(ident, secret))
    theirs, theirs_closed = await exchange(reference_broker, steps(ident, secret_for_broker))
    assert ours_closed, "the endpoint must close a refused connection"
    assert [op for op, _ in ours] == [reference.OP_ERROR]
    assert ours == theirs
    if reason != "subscribe_refused":  # the reference broker sends the error but keeps the socket
        assert theirs_closed
    label = "auth_failed" if reason.startswith("auth_failed") else reason
    assert await on_server.total("honeyatlas_requests_refused_total", source="hpfeeds", reason=label) == 1
    assert await on_server.total("honeyatlas_requests_refused_total", source="hpfeeds") == 1


async def test_publishes_before_a_refusal_are_stored(endpoint: HpfeedsEndpoint, on_server: OnServer) -> None:
    ident, secret = hpfeeds_sensor(on_server.running, "cowrie-01", "cowrie")
    errors, closed = await exchange(
        endpoint.port,
        lambda n: [reference.msgauth(n, ident, secret)]
        + [reference.msgpublish(ident, "cowrie.sessions", line) for line in COWRIE_SESSIONS]
        + [reference.msgpublish(ident, "snort.alerts", b"{}")],
    )
    assert closed and errors == [(0, b"Authkey not allowed to pub here. ident=cowrie-01, chan=snort.alerts")]
    assert await on_server.total("honeyatlas_records_received_total", source="hpfeeds") == len(COWRIE_SESSIONS)
    assert len(await on_server.events("cowrie-01")) > 0


# --- hostile input --------------------------------------------------------------------------------

HOSTILE = {
    "oversize": lambda n: [b"\x7f\xff\xff\xff\x03"],
    "oversize_auth": lambda n: [(5 + 256 + 21).to_bytes(4, "big") + b"\x02"],
    "unknown_opcode": lambda n: [b"\x00\x00\x00\x06\x09x"],
    "garbage": lambda n: [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"],
    "short_length": lambda n: [b"\x00\x00\x00\x01\x03"],
    "bad_strpack": lambda n: [b"\x00\x00\x00\x08\x02\xffab"],
}


async def test_hostile_frames_close_only_their_connection(endpoint: HpfeedsEndpoint, on_server: OnServer) -> None:
    ident, secret = hpfeeds_sensor(on_server.running, "cowrie-01", "cowrie")
    async with ClientSession("127.0.0.1", endpoint.port, ident, secret) as client:
        client.publish("cowrie.sessions", COWRIE_SESSIONS[0])
        results = await asyncio.gather(*(exchange(endpoint.port, steps) for steps in HOSTILE.values()))
        # ... and one hostile frame after a valid AUTH
        after_auth = await exchange(endpoint.port, lambda n: [reference.msgauth(n, ident, secret), b"\x00\x00\x10\x00\x07"])
        for errors, closed in [*results, after_auth]:
            assert closed and errors == []  # closed without a word
        for line in COWRIE_SESSIONS[1:]:
            client.publish("cowrie.sessions", line)

        async def all_received() -> bool:
            return await on_server.total("honeyatlas_records_received_total", source="hpfeeds") == len(COWRIE_SESSIONS)

        await on_server.until(all_received)
    assert await on_server.total("honeyatlas_requests_refused_total", source="hpfeeds", reason="protocol_error") == len(HOSTILE) + 1
    assert len(await on_server.events("cowrie-01")) > 0


async def test_silent_and_surplus_connections_are_closed(on_server: OnServer) -> None:
    endpoint = await started_endpoint(on_server, auth_timeout_seconds=0.3, max_connections=2)
    try:
        streams = []
        for _ in range(3):
            streams.append(await asyncio.open_connection("127.0.0.1", endpoint.port))
            await asyncio.sleep(0.02)  # accepted in this order
        async with asyncio.timeout(5):
            received = [await reader.read() for reader, _ in streams]  # until the server closes
        assert [r[4:5] for r in received] == [b"\x01", b"\x01", b""]  # OP_INFO, OP_INFO, nothing
        refused = on_server.total
        assert await refused("honeyatlas_requests_refused_total", source="hpfeeds", reason="auth_timeout") == 2
        assert await refused("honeyatlas_requests_refused_total", source="hpfeeds", reason="too_many_connections") == 1
        assert endpoint.connection_count == 0
        for _, writer in streams:
            writer.close()
    finally:
        await on_server(endpoint.stop())


async def test_binary_channels_are_ignored_and_counted(endpoint: HpfeedsEndpoint, on_server: OnServer) -> None:
    ident, secret = hpfeeds_sensor(on_server.running, "dionaea-01", "dionaea")
    connections = (SAMPLES / "dionaea-connections.jsonl").read_bytes().splitlines()
    async with ClientSession("127.0.0.1", endpoint.port, ident, secret) as client:
        client.publish("mwbinary.dionaea.sensorunique", os.urandom(300_000))  # a "malware" file
        for line in connections:
            client.publish("dionaea.connections", line)

        async def all_received() -> bool:
            return await on_server.total("honeyatlas_records_received_total", source="hpfeeds") == len(connections) + 1

        await on_server.until(all_received)
    assert await on_server.total("honeyatlas_records_ignored_total", source="hpfeeds", reason="binary_channel") == 1
    assert await on_server.total("honeyatlas_records_received_total", format="dionaea-connections") == len(connections)
    assert len(await on_server.events("dionaea-01")) > 0
    assert await on_server.total("honeyatlas_requests_refused_total", source="hpfeeds") == 0


async def test_a_full_pipeline_stops_reading_from_the_publisher(tmp_path: Path) -> None:
    running, stop = start_server(tmp_path / "data", storage={"max_pending_events": 5})
    on_server = OnServer(running)
    try:
        endpoint = await started_endpoint(on_server, max_batch_records=10)  # a batch the store never admits
        ident, secret = hpfeeds_sensor(running, "cowrie-01", "cowrie")
        reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
        header = await reader.readexactly(5)
        info = await reader.readexactly(int.from_bytes(header[:4], "big") - 5)
        writer.write(reference.msgauth(reference.readinfo(info)[1], ident, secret))
        for line in COWRIE_SESSIONS:
            writer.write(reference.msgpublish(ident, "cowrie.sessions", line))

        async def retrying() -> bool:
            return await on_server.total("honeyatlas_requests_refused_total", source="hpfeeds", reason="pipeline_full") >= 3

        await on_server.until(retrying)
        flood = reference.msgpublish(ident, "cowrie.sessions", b"{" + b" " * 65_000 + b"}")
        for _ in range(512):  # 32 MiB the endpoint must not read while it waits
            writer.write(flood)
        await asyncio.sleep(1.0)
        unsent = writer.transport.get_write_buffer_size()
        assert unsent > 16 * 1024**2, f"the endpoint kept reading: only {unsent} bytes left unsent"
        await on_server(endpoint.stop())  # what it holds cannot be stored: dropped, counted
        dropped = await on_server.total("honeyatlas_records_dropped_total", source="hpfeeds", reason="pipeline_full_at_close")
        assert dropped == 10
        assert await on_server.total("honeyatlas_records_received_total", source="hpfeeds") == 0
        writer.transport.abort()
    finally:
        stop()


async def test_rotated_secret_both_work_during_the_grace_and_revocation_cuts_a_live_publisher(
    running: RunningServer, on_server: OnServer, endpoint: HpfeedsEndpoint
) -> None:
    ident, old_secret = hpfeeds_sensor(running, "rot-01", "cowrie")
    registry = running.service.registry
    _, new_secret = registry.rotate("rot-01", grace_seconds=3600)
    assert new_secret is not None and new_secret != old_secret
    for secret in (new_secret, old_secret):  # the new one, and the old one while the grace lasts
        await publish_all(endpoint.port, ident, secret, "cowrie.sessions", COWRIE_SESSIONS[:1])
    await on_server.until(lambda: _stored(on_server, "rot-01", 2))

    reader, writer = await _logged_in(endpoint.port, ident, new_secret)
    writer.write(reference.msgpublish(ident, "cowrie.sessions", COWRIE_SESSIONS[1]))
    await writer.drain()
    await on_server.until(lambda: _stored(on_server, "rot-01", 3))
    registry.revoke("rot-01")  # as `honeyatlas sensor revoke` does from another process
    async with asyncio.timeout(10):
        assert await reader.read(1024) == b""  # the server closed the live connection
    assert await on_server.total("honeyatlas_requests_refused_total", reason="sensor_revoked") == 1
    writer.close()
    for secret in (new_secret, old_secret):  # and a revoked sensor cannot log in again
        reader, writer = await _logged_in(endpoint.port, ident, secret)
        async with asyncio.timeout(10):
            assert b"Authentication failed" in await reader.read(1024)
        writer.close()


async def _logged_in(port: int, ident: str, secret: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw connection that has read OP_INFO and sent OP_AUTH."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    info = reference.Unpacker()
    info.feed(await reader.read(1024))
    _, payload = next(iter(info))
    _, nonce = reference.readinfo(payload)
    writer.write(reference.msgauth(nonce, ident, secret))
    await writer.drain()
    return reader, writer


async def _stored(on_server: OnServer, sensor: str, count: int) -> bool:
    return len(await on_server.events(sensor)) >= count
