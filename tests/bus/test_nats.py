"""NatsBus against a real nats-server with JetStream (tests/engines/nats.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from honeyatlas.bus import EventBatch, publish_batch, split_by_partition
from honeyatlas.bus.nats import NatsBus
from honeyatlas.config import BusConfig
from honeyatlas.errors import BusError, BusFull
from honeyatlas.event import Event
from honeyatlas.incident import Incident
from honeyatlas.metrics import Metrics
from tests.bus.samples import cowrie_event, full_batch, incident, small_batch
from tests.engines.nats import NatsServer

BusFactory = Callable[..., Any]


@pytest.fixture
async def make_bus(nats_server: NatsServer) -> AsyncIterator[BusFactory]:
    """Start NatsBus clients on the test server; every one is stopped after the test."""
    started: list[NatsBus] = []

    async def make(name: str = "test", metrics: Metrics | None = None, **overrides: Any) -> NatsBus:
        settings: dict[str, Any] = {"url": nats_server.url, "partitions": 4, "ack_wait_seconds": 1.0,
                                    "lease_ttl_seconds": 1.0, "publish_timeout_seconds": 2.0}
        bus = NatsBus(BusConfig(**(settings | overrides)), metrics=metrics or Metrics(), name=name)
        await bus.start()
        started.append(bus)
        return bus

    yield make
    for bus in started:
        await bus.stop()


async def test_round_trip_keeps_every_field(make_bus: BusFactory) -> None:
    bus = await make_bus()
    batch = full_batch()
    await bus.publish(2, batch, "berlin-1:k-1:2")
    [delivery] = await bus.fetch(2, 10, 2.0)
    assert delivery.batch == batch
    assert delivery.batch.events[0].ts.tzinfo is not None
    assert (delivery.partition, delivery.delivered_count) == (2, 1)
    await delivery.ack()


async def test_same_message_id_is_stored_once(make_bus: BusFactory) -> None:
    metrics = Metrics()
    bus = await make_bus(metrics=metrics)
    await bus.publish(0, small_batch("a"), "berlin-1:a:0")
    await bus.publish(0, small_batch("a"), "berlin-1:a:0")  # a retry: success, not a second message
    await bus.publish(0, small_batch("b"), None)
    deliveries = await bus.fetch(0, 10, 1.0)
    assert [d.batch.receipt.key for d in deliveries] == ["a", "b"]
    assert metrics.total("honeyatlas_bus_publish_duplicates_total") == 1
    assert metrics.total("honeyatlas_bus_messages_published_total") == 2


async def test_publish_batch_splits_by_source_and_retries_idempotently(make_bus: BusFactory) -> None:
    bus = await make_bus()
    batch = EventBatch(source="http", sensor="s", events=[cowrie_event(i) for i in range(40)], dead_letters=[])
    shares = split_by_partition(batch, 4)
    await publish_batch(bus, batch, key="req-1")
    await publish_batch(bus, batch, key="req-1")
    for partition, share in shares.items():
        deliveries = await bus.fetch(partition, 10, 1.0)
        assert [d.batch for d in deliveries] == [share]


async def test_full_stream_refuses_and_keeps_what_it_holds(make_bus: BusFactory) -> None:
    metrics = Metrics()
    bus = await make_bus(metrics=metrics, stream_max_messages=3)
    for tag in "abc":
        await bus.publish(1, small_batch(tag), None)
    with pytest.raises(BusFull, match="full"):
        await bus.publish(1, small_batch("d"), None)
    assert not bus.has_room_for(1)
    assert metrics.total("honeyatlas_bus_publish_refused_total", reason="stream_full") == 1
    deliveries = await bus.fetch(1, 10, 1.0)
    assert [d.batch.receipt.key for d in deliveries] == ["a", "b", "c"]
    for d in deliveries:
        await d.ack()
    await asyncio.sleep(0.2)
    await bus.publish(1, small_batch("e"), None)  # acked batches left the stream: room again


async def test_stream_full_by_bytes_is_bus_full_too(make_bus: BusFactory) -> None:
    bus = await make_bus(stream_max_bytes=4096)
    await bus.publish(0, small_batch("a"), None)
    with pytest.raises(BusFull):
        for tag in "bcdefgh":
            await bus.publish(0, small_batch(tag), None)


async def test_unacked_batch_comes_again_to_the_next_consumer(make_bus: BusFactory) -> None:
    publisher = await make_bus("ingest")
    await publisher.publish(3, small_batch("x"), None)
    first = await make_bus("worker-1")
    [taken] = await first.fetch(3, 1, 1.0)
    assert taken.delivered_count == 1
    await first.stop()  # dies holding it
    await taken.ack()  # too late, over a closed connection: no error, and no effect
    second = await make_bus("worker-2")
    started = time.monotonic()
    assert await second.unacknowledged(3) == 1  # a successor sees its predecessor's batch in flight
    [again] = await second.fetch(3, 1, 5.0)
    assert again.batch.receipt.key == "x" and again.delivered_count == 2
    assert time.monotonic() - started < 3
    await again.ack()
    await asyncio.sleep(0.2)
    assert await second.unacknowledged(3) == 0
    await asyncio.sleep(1.0)  # past ack_wait: an acked batch does not come back
    assert await second.fetch(3, 1, 0.5) == []


async def test_nak_gives_it_back_now(make_bus: BusFactory) -> None:
    bus = await make_bus()
    await bus.publish(0, small_batch("n"), None)
    [d] = await bus.fetch(0, 1, 1.0)
    await d.nak()
    [again] = await bus.fetch(0, 1, 0.5)
    assert again.delivered_count == 2
    await again.in_progress()
    await again.ack()


async def test_consumers_see_only_their_partition(make_bus: BusFactory) -> None:
    publisher = await make_bus("ingest")
    await publisher.publish(0, small_batch("zero"), None)
    await publisher.publish(1, small_batch("one"), None)
    a, b = await make_bus("worker-a"), await make_bus("worker-b")
    got_a, got_b = await asyncio.gather(a.fetch(0, 10, 1.0), b.fetch(1, 10, 1.0))
    assert [d.batch.receipt.key for d in got_a] == ["zero"]
    assert [d.batch.receipt.key for d in got_b] == ["one"]


async def test_batch_larger_than_max_payload_goes_in_chunks(make_bus: BusFactory) -> None:
    bus = await make_bus()
    batch = full_batch(0)
    batch = EventBatch(source="http", sensor="s", events=[cowrie_event(i) for i in range(4000)],
                       dead_letters=batch.dead_letters, receipt=batch.receipt, streams=[i % 2 for i in range(4000)])
    await bus.publish(0, batch, "s:big:0")
    await bus.publish(0, batch, "s:big:0")  # the retry splits the same way: all duplicates
    deliveries = await bus.fetch(0, 100, 1.0)
    assert len(deliveries) > 1
    assert [e for d in deliveries for e in d.batch.events] == batch.events
    assert [s for d in deliveries for s in d.batch.streams or []] == batch.streams
    assert [d.batch.receipt for d in deliveries][-1] == batch.receipt
    assert all(d.batch.receipt is None for d in deliveries[:-1])
    assert sum(len(d.batch.dead_letters) for d in deliveries) == 1


async def test_live_feed_reaches_subscribers(make_bus: BusFactory) -> None:
    worker, web = await make_bus("worker"), await make_bus("web")
    got_events: list[Event] = []
    got_incidents: list[Incident] = []
    await web.subscribe_live(got_events.extend, got_incidents.extend)
    await asyncio.sleep(0.05)  # the subscription reaches the server
    batch = full_batch()
    await worker.publish_live(batch.events)
    await worker.publish_live_incidents([incident()])
    for _ in range(100):
        if got_events and got_incidents:
            break
        await asyncio.sleep(0.02)
    assert [e.id for e in got_events] == [e.id for e in batch.events]
    assert all(e.raw is None for e in got_events)  # the map never shows the raw record
    assert got_incidents == [incident()]


async def test_slow_live_subscriber_drops_are_counted(nats_server: NatsServer) -> None:
    metrics = Metrics()
    web = NatsBus(BusConfig(url=nats_server.url), metrics=metrics, name="web", live_pending_messages=20)
    await web.start()
    received: list[int] = []

    def slow(events: list[Event]) -> None:
        if not received:
            time.sleep(0.5)  # stalls this loop while another process's worker keeps publishing
        received.append(len(events))

    await web.subscribe_live(slow, lambda incidents: None)
    await asyncio.sleep(0.05)

    async def publish_elsewhere() -> None:
        worker = NatsBus(BusConfig(url=nats_server.url), metrics=Metrics(), name="worker")
        await worker.start()
        for _ in range(200):
            await worker.publish_live([cowrie_event(0)])
            await asyncio.sleep(0.001)
        await worker.stop()

    await asyncio.to_thread(asyncio.run, publish_elsewhere())
    for _ in range(100):
        dropped = metrics.total("honeyatlas_bus_live_messages_dropped_total", reason="slow_subscriber")
        if dropped and len(received) + dropped == 200:
            break
        await asyncio.sleep(0.05)
    assert dropped > 0
    assert len(received) + dropped == 200  # every message either handled or counted
    await web.stop()


async def test_lease_has_one_holder_until_it_expires(make_bus: BusFactory) -> None:
    a, b = await make_bus("ingest-a"), await make_bus("ingest-b")
    name = "follow:/var/log/cowrie/cowrie.json"
    assert await a.acquire(name, "a")
    assert await a.acquire(name, "a")  # holding it already
    for _ in range(4):  # the holder renews well within the TTL: the other never gets it
        assert not await b.acquire(name, "b")
        assert await a.renew(name, "a")
        await asyncio.sleep(0.4)
    assert not await b.renew(name, "b")
    deadline = time.monotonic() + 5
    while not await b.acquire(name, "b"):  # a stopped renewing: b takes over after the TTL
        assert time.monotonic() < deadline, "lease never expired"
        await asyncio.sleep(0.2)
    assert not await a.renew(name, "a")
    await b.release(name, "b")
    assert await a.acquire(name, "a")  # released: no need to wait for the TTL
    await b.release(name, "b")  # not b's: no effect
    assert not await b.acquire(name, "b")


async def test_publisher_and_consumer_survive_a_server_restart(nats_server: NatsServer,
                                                              make_bus: BusFactory) -> None:
    publisher, consumer = await make_bus("ingest"), await make_bus("worker")
    await publisher.publish(0, small_batch("acked"), None)
    await publisher.publish(0, small_batch("kept"), None)
    [first] = await consumer.fetch(0, 1, 1.0)
    await first.ack()
    await asyncio.sleep(0.1)
    nats_server.stop()
    with pytest.raises(BusError):
        await publisher.publish(0, small_batch("during"), None)
    nats_server.start()
    deadline = time.monotonic() + 10
    while True:  # nats-py reconnects on its own
        try:
            await publisher.publish(0, small_batch("after"), None)
            break
        except BusError:
            assert time.monotonic() < deadline, "publisher did not reconnect"
            await asyncio.sleep(0.2)
    keys = [d.batch.receipt.key for d in await consumer.fetch(0, 10, 2.0)]
    assert keys == ["kept", "after"]  # file storage: what was stored survived, what was acked is gone


async def test_no_server_is_one_clear_error() -> None:
    bus = NatsBus(BusConfig(url="nats://127.0.0.1:1", publish_timeout_seconds=1.0), metrics=Metrics(), name="t")
    with pytest.raises(BusError, match=r"cannot connect to NATS at nats://127.0.0.1:1: .*check bus.url"):
        await bus.start()


async def test_a_new_configuration_updates_stream_and_consumers(make_bus: BusFactory) -> None:
    await make_bus("old", stream_max_messages=3, ack_wait_seconds=1.0)
    new = await make_bus("new", stream_max_messages=5, ack_wait_seconds=2.0)
    for tag in "abcde":  # five fit now
        await new.publish(0, small_batch(tag), None)
    js = new._jetstream()
    assert (await js.consumer_info("HONEYATLAS", "events-p0")).config.ack_wait == 2.0
