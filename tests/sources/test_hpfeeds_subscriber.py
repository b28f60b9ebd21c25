"""The hpfeeds subscriber against the real broker (`hpfeeds-broker` from PyPI, as a subprocess
with env auth, so that it can be killed and restarted like a real deployment)."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hpfeeds.asyncio import ClientSession

from honeyatlas.sources.hpfeeds_subscriber import SOURCE, HpfeedsSubscriber
from tests.conftest import RunningServer, start_server
from tests.sources.test_hpfeeds_endpoint import COWRIE_SESSIONS, OPENCANARY, OnServer, signature

BROKER = Path(sys.executable).parent / "hpfeeds-broker"
IDENTS = {  # ident: (secret, pubchans, subchans)
    "honeyatlas": ("sub-secret", "", "cowrie.sessions,opencanary.events"),
    "cowrie01": ("cowrie-secret", "cowrie.sessions", ""),
    "canary01": ("canary-secret", "opencanary.events", ""),
    "stranger": ("stranger-secret", "cowrie.sessions", ""),
}


class Broker:
    def __init__(self) -> None:
        with socket.socket() as probe:  # a free port, reused across restarts
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.env = dict(os.environ)
        for ident, (secret, pub, sub) in IDENTS.items():
            self.env[f"HPFEEDS_{ident.upper()}_SECRET"] = secret
            self.env[f"HPFEEDS_{ident.upper()}_PUBCHANS"] = pub
            self.env[f"HPFEEDS_{ident.upper()}_SUBCHANS"] = sub
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [BROKER, "--auth", "env", "--name", "labbroker", "-e", f"tcp:port={self.port}:interface=127.0.0.1"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "hpfeeds-broker exited"
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("hpfeeds-broker did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def broker() -> Iterator[Broker]:
    broker = Broker()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


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


def subscriber(on_server: OnServer, port: int, secret: str = "sub-secret", **options: Any) -> HpfeedsSubscriber:
    service = on_server.running.service
    return HpfeedsSubscriber(
        pipeline=service.pipeline, registry=service.registry, metrics=service.metrics,
        host="127.0.0.1", port=port, ident="honeyatlas", secret=secret,
        channels=["cowrie.sessions", "opencanary.events"], ident_map={"cowrie01": "cowrie-01"},
        backoff_initial_seconds=0.05, backoff_max_seconds=0.5, **options,
    )


@pytest.fixture
async def started(on_server: OnServer, broker: Broker) -> AsyncIterator[HpfeedsSubscriber]:
    sub = subscriber(on_server, broker.port)
    await on_server(sub.start())
    yield sub
    await on_server(sub.stop())


async def publish(port: int, ident: str, channel: str, payloads: list[bytes]) -> None:
    async with ClientSession("127.0.0.1", port, ident, IDENTS[ident][0]) as client:
        for payload in payloads:
            client.publish(channel, payload)


async def test_every_published_message_arrives_attributed_and_survives_a_broker_restart(
    started: HpfeedsSubscriber, on_server: OnServer, broker: Broker
) -> None:
    running = on_server.running
    running.add_sensor("cowrie-01", honeypot="cowrie")  # reached through ident_map
    running.add_sensor("canary01", honeypot="opencanary")  # ident == sensor name
    await on_server(started.wait_connected())
    await publish(broker.port, "cowrie01", "cowrie.sessions", COWRIE_SESSIONS)
    await publish(broker.port, "canary01", "opencanary.events", OPENCANARY)
    await publish(broker.port, "stranger", "cowrie.sessions", COWRIE_SESSIONS[:2])

    async def received(count: int) -> bool:
        return await on_server.total("honeyatlas_records_received_total", source=SOURCE) == count

    total = len(COWRIE_SESSIONS) + len(OPENCANARY)
    await on_server.until(lambda: received(total))
    assert await on_server.total("honeyatlas_records_dropped_total", source=SOURCE, reason="unknown_ident") == 2
    assert await on_server.total("honeyatlas_records_received_total", source=SOURCE, format="cowrie-sessions") == 10
    reference = await on_server.http_ingest("cowrie-ref", "cowrie", "cowrie-sessions", COWRIE_SESSIONS)
    cowrie = await on_server.events("cowrie-01")
    assert len(cowrie) == reference["events"] and signature(cowrie) == signature(await on_server.events("cowrie-ref"))
    assert {e["sensor"] for e in cowrie} == {"cowrie-01"}
    assert {e["sensor"] for e in await on_server.events("canary01")} == {"canary01"}
    assert await on_server.total("honeyatlas_hpfeeds_subscriber_connects_total") == 1

    broker.stop()

    async def disconnected() -> bool:
        return await on_server.total("honeyatlas_hpfeeds_subscriber_disconnects_total") >= 1

    await on_server.until(disconnected)
    await asyncio.sleep(0.5)  # a few reconnects fail while the broker is away
    broker.start()

    async def reconnected() -> bool:
        return await on_server.total("honeyatlas_hpfeeds_subscriber_connects_total") == 2

    await on_server.until(reconnected)
    assert await on_server.total("honeyatlas_hpfeeds_subscriber_disconnects_total", reason="connect_failed") >= 1
    await publish(broker.port, "cowrie01", "cowrie.sessions", COWRIE_SESSIONS[:3])
    await on_server.until(lambda: received(total + 3))


async def test_a_refused_subscriber_backs_off_and_counts(on_server: OnServer, broker: Broker) -> None:
    sub = subscriber(on_server, broker.port, secret="wrong")
    await on_server(sub.start())
    try:
        async def refused_thrice() -> bool:
            return await on_server.total(
                "honeyatlas_hpfeeds_subscriber_disconnects_total", reason="broker_error"
            ) >= 3

        await on_server.until(refused_thrice)
    finally:
        await on_server(sub.stop())


def test_backoff_is_exponential_bounded_and_jittered(on_server: OnServer) -> None:
    sub = subscriber(on_server, 1, rng=random.Random(7))
    delays = [[sub.backoff_seconds(attempt) for attempt in range(12)] for _ in range(20)]
    for series in delays:
        for attempt, delay in enumerate(series):
            ceiling = min(0.5, 0.05 * 2**attempt)
            assert ceiling / 2 <= delay <= ceiling
    assert len({series[8] for series in delays}) > 1  # jittered
    assert sub.backoff_seconds(10_000) <= 0.5
