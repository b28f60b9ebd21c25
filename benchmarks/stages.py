"""The ingest path cut into its stages, each timed alone in this process: where an event's CPU goes.

The server runs these stages for every accepted event, on one event loop (the store's
Arrow conversion on its writer thread, which shares the GIL). Their sum is a floor for the
server's CPU per event before HTTP, the commit and the hub's sends: 50,000 events/s on one
core leaves 20 us for all of it. Each stage gets the previous stage's real output (cowrie
records from the lab sample with public sources, as the ingest benchmark sends them) and
runs with the garbage collector tuned as `honeyatlas serve` tunes it. Five rounds (the
stateful stages fresh each round); each figure is the median round.

A cluster's ingest process runs only the first stages and then publishes: `HOT_PATH` names
them, and "bus batch" is the message encoding of bus/__init__.py (split by partition, one
msgpack message per share, as `NatsBus.publish` encodes it); benchmarks/roles.py adds the
publish itself, measured against a real NATS server.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from benchmarks.harness import Context, Figure
from benchmarks.records import BATCH, Batches, bundled_geoip, load_adapters_one_by_one

BUDGET_US = 1e6 / 50_000  # the ingest target, one core
BUS_BATCH = "bus batch (split by partition + msgpack)"
# What a cluster's ingest process runs per event before the publish (issue 11's hot path).
HOT_PATH = ("frame + decode (msgspec)", "record context", "cowrie adapter (normalise, bound)", "geolocate (cached)",
            BUS_BATCH)


def measure(ctx: Context) -> dict[str, float]:
    """Median CPU per event (us) of every stage, in pipeline order; rounds kept in ctx.extra."""
    from honeyatlas.adapters import RecordContext
    from honeyatlas.bus import BatchEncoder, EventBatch, split_by_partition
    from honeyatlas.cli import GC_THRESHOLDS
    from honeyatlas.config import Config
    from honeyatlas.enrichment.sensors import Sensor
    from honeyatlas.metrics import Metrics
    from honeyatlas.sinks.hub import LiveHub
    from honeyatlas.sources.framing import decode_line
    from honeyatlas.store.duckdb import events_to_arrow
    from honeyatlas.transforms.correlate import Correlator
    from honeyatlas.transforms.dedupe import SessionDeduplicator
    from honeyatlas.transforms.geolocate import Geolocator

    count = ctx.size(50_000, 2_000)
    lines = [line for body in Batches().prebuilt(count // BATCH, "st") for line in body.splitlines()]
    cowrie = load_adapters_one_by_one()[0]["cowrie"]
    config = Config()
    geoip = bundled_geoip(config.geoip.cache_size)
    geolocator = Geolocator(geoip, cache_size=config.geoip.cache_size)
    sensor = Sensor(name="bench", honeypot="cowrie", lat=50.11, lon=8.68)
    received = datetime.now(UTC)
    live = config.live
    encoder = BatchEncoder()
    partitions = config.bus.partitions
    rounds: list[dict[str, float]] = []

    def one_round() -> dict[str, float]:
        """Every stage once, stateful ones fresh, each fed the previous stage's output."""
        deduplicator = SessionDeduplicator(ttl_seconds=config.ingest.session_dedup_ttl_seconds,
                                           max_sessions=config.ingest.session_dedup_max_sessions)
        correlator = Correlator(config.correlation)
        hub = LiveHub(frame_interval_seconds=live.frame_interval_seconds, client_queue_events=live.client_queue_events,
                      snapshot_events=live.snapshot_events, heartbeat_seconds=live.heartbeat_seconds,
                      max_clients=live.max_clients, metrics=Metrics())
        timings: dict[str, float] = {}

        def timed(name: str, work: Callable[[], Any]) -> Any:
            # CPU time of this process, not wall time: with other work on the machine (load 4-5
            # on 2 cores), wall-clock medians of the same build varied 2x between back-to-back
            # runs (cowrie adapter 10.0-18.8 us); CPU time does not count the time spent waiting.
            began = time.process_time()
            out = work()
            timings[name] = (time.process_time() - began) / len(lines) * 1e6
            return out

        def hub_frames(events: list[Any]) -> None:
            for i in range(0, len(events), 1000):  # ~1,000 events a frame: 5,000 events/s, 0.2 s ticks
                hub.publish(events[i : i + 1000])
                hub.flush()

        records = timed("frame + decode (msgspec)", lambda: [decode_line(line, i, "json") for i, line in enumerate(lines)])
        contexts = timed("record context", lambda: [
            RecordContext(sensor=sensor.name, honeypot=sensor.honeypot, received=received, timezone=UTC,
                          raw=r.raw.decode("utf-8", "replace")) for r in records])
        events = timed("cowrie adapter (normalise, bound)",
                       lambda: [e for r, c in zip(records, contexts, strict=True) for e in cowrie.adapt(r.value, c)])
        events = timed("geolocate (cached)", lambda: [geolocator.apply(e, sensor) for e in events])
        timed(BUS_BATCH, lambda: [
            encoder.encode(share)
            for i in range(0, len(events), BATCH)
            for share in split_by_partition(EventBatch(source="http", sensor=sensor.name, events=events[i : i + BATCH],
                                                       dead_letters=[]), partitions).values()])
        timed("session dedupe", lambda: [deduplicator.keep(e, 0) for e in events])
        timed("correlate (5 detectors)",
              lambda: [correlator.observe(events[i : i + BATCH]) for i in range(0, len(events), BATCH)])
        timed("Arrow batch (store writer)",
              lambda: [events_to_arrow(events[i : i + 1000]) for i in range(0, len(events), 1000)])
        timed("live hub (publish, one frame encoded)", lambda: hub_frames(events))
        return timings

    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        for _ in range(ctx.size(5, 1)):
            rounds.append(one_round())
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        geoip.close()
    timings = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    ctx.extra["stages"] = {"records": len(lines), "rounds": rounds, "us_per_event_median": timings,
                           "budget_us_at_50k": BUDGET_US}
    return timings


def stages(ctx: Context) -> list[Figure]:
    timings = measure(ctx)
    # The bus batch is the cluster's, not the single process's: reported, not in the sum.
    total = sum(us for name, us in timings.items() if name != BUS_BATCH)
    figures = [Figure("stages", name, us, "us/event", higher_is_better=False,
                      notes=f"{us / BUDGET_US:.0%} of the 20 us an event may cost at 50,000/s")
               for name, us in timings.items()]
    figures.append(Figure("stages", "sum of the stages", total, "us/event", higher_is_better=False,
                          target=f"< {BUDGET_US:g}",
                          notes=f"{1e6 / total:,.0f} events/s on one core before HTTP, commit and sends"))
    return figures
