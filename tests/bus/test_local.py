"""The bus's messages, codec and partitioning, and LocalBus (no server)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from honeyatlas.bus import (
    BatchDecoder,
    BatchEncoder,
    EventBatch,
    LocalBus,
    message_id,
    partition_of,
    publish_batch,
    split_by_partition,
)
from honeyatlas.config import BusConfig
from honeyatlas.errors import BusFull
from honeyatlas.event import Event
from honeyatlas.metrics import Metrics
from tests.bus.samples import cowrie_event, full_batch, full_event, small_batch


def test_codec_round_trip_is_exact() -> None:
    batch = full_batch()
    assert set(Event.__struct_fields__) == {f for f in Event.__struct_fields__
                                            if getattr(batch.events[0], f) != getattr(Event, f, object())}
    decoded = BatchDecoder().decode(BatchEncoder().encode(batch))
    assert decoded == batch
    assert decoded.events[0].ts == batch.events[0].ts and decoded.events[0].ts.tzinfo is not None
    assert decoded.dead_letters[0].raw == b"\x00\xff{not json"


def test_codec_keeps_the_instant_of_other_offsets() -> None:
    ts = datetime(2025, 1, 1, 12, 0, 0, 999999, tzinfo=timezone(timedelta(hours=-5)))
    batch = EventBatch(source="x", sensor="s", events=[msgspec.structs.replace(full_event(), ts=ts)],
                       dead_letters=[])
    decoded = BatchDecoder().decode(BatchEncoder().encode(batch))
    assert decoded.events[0].ts == ts  # same instant, to the microsecond (returned in UTC)


def test_partition_is_stable_across_python_runs() -> None:
    ips = ["203.0.113.7", "2001:db8::1", "198.51.100.250"]
    here = [partition_of(ip, 8) for ip in ips]
    code = ("from honeyatlas.bus import partition_of; "
            f"print([partition_of(ip, 8) for ip in {ips!r}])")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert out.strip() == str(here)
    assert here == [partition_of(ip, 8) for ip in ips]
    assert partition_of(None, 8) == 0 and partition_of("", 8) == 0 and partition_of("203.0.113.7", 1) == 0
    spread = {partition_of(f"10.0.{i // 256}.{i % 256}", 8) for i in range(1000)}
    assert spread == set(range(8))


def test_split_groups_events_by_partition_and_keeps_the_rest_with_the_first() -> None:
    batch = EventBatch(source="http", sensor="s", events=[cowrie_event(i) for i in range(50)],
                       dead_letters=full_batch().dead_letters, receipt=full_batch().receipt,
                       streams=[i % 3 if i % 3 < 2 else None for i in range(50)])
    stream_of = {e.id: s for e, s in zip(batch.events, batch.streams or [], strict=True)}
    shares = split_by_partition(batch, 4)
    first = partition_of(batch.events[0].src_ip, 4)
    assert sorted(e.id for s in shares.values() for e in s.events) == sorted(e.id for e in batch.events)
    for partition, share in shares.items():
        assert all(partition_of(e.src_ip, 4) == partition for e in share.events)
        assert [e.id for e in share.events] == [e.id for e in batch.events if partition_of(e.src_ip, 4) == partition]
        assert share.streams == [stream_of[e.id] for e in share.events]
        assert (share.receipt, share.dead_letters) == ((batch.receipt, batch.dead_letters) if partition == first
                                                       else (None, []))
    only_letters = EventBatch(source="http", sensor="s", events=[], dead_letters=batch.dead_letters)
    assert list(split_by_partition(only_letters, 4)) == [0]
    no_twins = msgspec.structs.replace(batch, streams=[None] * 50)
    assert all(share.streams == [] for share in split_by_partition(no_twins, 4).values())
    assert message_id("s", "k", 3) == "s:k:3"


async def test_local_bus_keeps_the_contract() -> None:
    metrics = Metrics()
    bus = LocalBus(BusConfig(partitions=2, stream_max_messages=2, ack_wait_seconds=0.2), metrics=metrics)
    await bus.publish(1, small_batch("a"), "s:a:1")
    await bus.publish(1, small_batch("a"), "s:a:1")  # duplicate: success, stored once
    await bus.publish(1, small_batch("b"))
    assert not bus.has_room_for(1) and bus.pending_events == 2
    with pytest.raises(BusFull):
        await bus.publish(0, small_batch("c"))
    [a, b] = await bus.fetch(1, 10, 0.1)
    assert a.batch.receipt.key == "a" and a.delivered_count == 1
    await a.ack()
    assert await bus.fetch(1, 10, 0.05) == []  # b is in flight
    [again] = await bus.fetch(1, 10, 1.0)  # after ack_wait
    assert again.batch == b.batch and again.delivered_count == 2
    await again.nak()
    [third] = await bus.fetch(1, 10, 0.1)
    assert third.delivered_count == 3
    await third.ack()
    assert bus.pending_events == 0 and bus.has_room_for(1)
    assert metrics.total("honeyatlas_bus_messages_redelivered_total") == 2


async def test_local_bus_publish_batch_live_feed_and_leases() -> None:
    bus = LocalBus(BusConfig(partitions=4, lease_ttl_seconds=1))
    batch = EventBatch(source="http", sensor="s", events=[cowrie_event(i) for i in range(20)], dead_letters=[])
    await publish_batch(bus, batch, key="k")
    await publish_batch(bus, batch, key="k")
    fetched = [d.batch for p in range(4) for d in await bus.fetch(p, 10, 0.01)]
    assert sorted(e.id for b in fetched for e in b.events) == sorted(e.id for e in batch.events)

    got: list[object] = []
    await bus.subscribe_live(got.extend, got.extend)
    await bus.publish_live(batch.events[:2])
    assert got == batch.events[:2]

    assert await bus.acquire("hpfeeds", "a") and not await bus.acquire("hpfeeds", "b")
    assert await bus.renew("hpfeeds", "a") and not await bus.renew("hpfeeds", "b")
    await bus.release("hpfeeds", "a")
    assert await bus.acquire("hpfeeds", "b")
