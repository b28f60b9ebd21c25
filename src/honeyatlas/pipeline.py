"""The ingest pipeline every source feeds: adapter -> geolocate -> batch sink.

A source hands over a batch of raw records already framed (one per index) together with
the authenticated sensor. The pipeline turns each record into events with the named
adapter, rejects what cannot be used into the dead-letter store with a reason, geolocates,
and hands the batch to its `BatchSink` (sinks/__init__.py): in one process the store sink
(dedupe, correlate, durable commit, live feed), in an ingest process the bus publisher. It
returns only once the sink has made the batch durable, so a source acknowledges exactly
what is kept. Every record is counted: received, accepted, rejected (by reason), never
silently lost.

The one rule on event times lives here, not in the adapters: an event dated more than
`max_future_skew` after its arrival gets the receive time and a warning that keeps the
sensor's time. Every format and every source passes this loop (adapters built outside
honeyatlas included, which may build their Event without adapters/fields.py), and only here
is the receive time of the whole batch known.

A large batch must not hold the event loop: the loop gives way every `YIELD_EVERY` records,
so health checks, queries and other sensors are served while a 100,000-record batch is
adapted (docs/performance.md, "Big batches"). At shutdown `drain` lets the ingests in flight
finish (bounded); one still adapting when the bound passes is abandoned at its next yield,
before anything of it reached the sink, and its sender gets a 503: a batch is either stored
and acknowledged whole or refused whole, never half.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol

import msgspec

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters.detect import AUTO, AutoDetector
from honeyatlas.enrichment.sensors import Sensor
from honeyatlas.errors import IngestUnavailable, PipelineFull, RecordIgnored, RecordRejected
from honeyatlas.event import MAX_WARNINGS, RAW_LIMIT_BYTES, Event, derived_event_id
from honeyatlas.metrics import Metrics
from honeyatlas.sinks import BatchSink, Delivered, Streams
from honeyatlas.store import DeadLetter, Receipt
from honeyatlas.transforms.geolocate import Geolocator

log = logging.getLogger(__name__)

# Records adapted between two yields to the event loop. Measured on 100,000 cowrie records in
# process, the collector tuned as `serve` tunes it (docs/performance.md, "Big batches"): every
# 100 records the loop waited at most 73 ms (p99 18 ms), every 500 at most 78 ms (p99 59 ms),
# every 2,000 154 ms; never, the whole 3 s. A yield costs ~9 us, under 0.3 % of 100 records'
# ~3 ms, within the noise of the batch times (28.6-34.8 us per record across the runs).
YIELD_EVERY = 100


class RawRecord(msgspec.Struct, frozen=True):
    """One record as framed by a source: its position, its bytes, and its decoded value.

    `error` is set instead of `value` when the source could not decode it (bad JSON line).
    """

    index: int
    raw: bytes
    value: object = None
    error: str | None = None


class Rejection(msgspec.Struct, frozen=True):
    index: int
    reason: str


class IngestResult(msgspec.Struct, frozen=True):
    accepted: int  # records that produced events (accepted + rejected + ignored == records given)
    events: int  # events stored (a record may produce several)
    rejected: list[Rejection]  # unusable records, kept in the dead-letter store
    ignored: list[Rejection]  # valid records that are not attacker activity (counted, not stored)
    duplicates: int  # events dropped because another stream already brought them
    warned: int  # events stored with at least one adapter warning


class Ingest(Protocol):
    """What a source needs from the pipeline: nothing else (sources/*.py)."""

    def formats(self) -> list[str]: ...

    def input_kind(self, fmt: str) -> str: ...

    def admit(self, source: str, record_count: int) -> None: ...

    async def ingest(
        self,
        *,
        source: str,
        fmt: str,
        sensor: Sensor,
        records: list[RawRecord],
        receipt: Callable[[IngestResult], Receipt] | None = None,
        identity: bytes | None = None,
    ) -> IngestResult: ...


class Guard(Protocol):
    """A condition that refuses ingest while it lasts (the data directory's free-space floor)."""

    def refusal(self) -> tuple[str, str] | None:
        """(metric label, reason) when ingest must be refused now, else None. Cheap: called
        on every admission."""


class Pipeline:
    """The `Ingest` every source feeds: adapt and geolocate each record, then hand the batch
    to a `BatchSink` (the store sink in one process, the bus in an ingest process)."""

    def __init__(
        self,
        *,
        adapters: dict[str, Adapter],
        geolocator: Geolocator,
        sink: BatchSink,
        metrics: Metrics,
        sensor_timezone: tzinfo,
        retry_after_seconds: int,
        max_future_skew: timedelta,
        guards: Sequence[Guard] = (),
    ) -> None:
        self.adapters = adapters
        self._detector = AutoDetector(adapters)
        self._geolocator = geolocator
        self._sink = sink
        self._metrics = metrics
        self._timezone = sensor_timezone
        self._retry_after = retry_after_seconds
        self._max_future_skew = max_future_skew
        self._guards = guards
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closing = False  # drain started: admit nothing new
        self._abandon = False  # drain bound passed: ingests still adapting give up
        # format -> stream index for session deduplication: 0 per-event log, 1 session summary
        self._streams: dict[str, int] = {}
        for adapter in adapters.values():
            if adapter.summary_of is not None and adapter.summary_of in adapters:
                self._streams[adapter.name] = 1
                self._streams[adapter.summary_of] = 0

    def formats(self) -> list[str]:
        """Every format name a source may ask for, `auto` included."""
        return sorted([*self.adapters, AUTO])

    def input_kind(self, fmt: str) -> str:
        """How a source should frame records of `fmt`: "json", "text" or "auto" (JSON, else text)."""
        return "auto" if fmt == AUTO else self.adapters[fmt].input

    def admit(self, source: str, record_count: int) -> None:
        """Refuse early, before any work: 503 causes (shutting down, a guard such as the disk
        floor) as `IngestUnavailable`, a full sink as `PipelineFull`. Counts the refusal."""
        refusal = ("shutting_down", "the server is shutting down") if self._closing else None
        for guard in self._guards:
            refusal = refusal or guard.refusal()
        if refusal is not None:
            self._metrics.inc("honeyatlas_requests_refused_total", source=source, reason=refusal[0])
            raise IngestUnavailable(refusal[0], f"{refusal[1]}; retry later", self._retry_after)
        if not self._sink.has_room_for(record_count):
            self._metrics.inc("honeyatlas_requests_refused_total", source=source, reason="pipeline_full")
            raise PipelineFull(self._retry_after)

    @property
    def in_flight(self) -> int:
        """Ingests started and not returned yet."""
        return self._in_flight

    async def drain(self, timeout_seconds: float) -> None:
        """Admit nothing more and wait for the ingests in flight. Those not done within
        `timeout_seconds` and still adapting give up at their next yield (IngestUnavailable,
        nothing of them delivered); a batch already handed to the sink is waited for until
        its commit, so call this before the sink's store or bus stops."""
        self._closing = True
        if self._in_flight:
            log.info("waiting up to %g s for %d ingests in flight", timeout_seconds, self._in_flight)
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_seconds)
        except TimeoutError:
            self._abandon = True
            log.warning("%d ingests still in flight after %g s: abandoning those not yet delivered",
                        self._in_flight, timeout_seconds)
            await self._idle.wait()

    def _adapt(self, fmt: str, record: RawRecord, ctx: RecordContext) -> tuple[str, list[Event]]:
        adapter = self._detector.pick(record.value) if fmt == AUTO else self.adapters[fmt]
        return adapter.name, adapter.adapt(record.value, ctx)

    async def ingest(
        self,
        *,
        source: str,
        fmt: str,
        sensor: Sensor,
        records: list[RawRecord],
        receipt: Callable[[IngestResult], Receipt] | None = None,
        identity: bytes | None = None,
    ) -> IngestResult:
        """Adapt, enrich and durably deliver one batch. `receipt`, when given, builds the record
        of this answer that is committed together with the batch (idempotent sources).
        `identity`, when given, names the batch for good (sensor, idempotency key, body
        digest): its events get ids derived from it (`derived_event_id`), so the same batch
        sent again brings the same ids and a store keyed by id keeps it once."""
        self._in_flight += 1
        self._idle.clear()
        try:
            return await self._ingest(source, fmt, sensor, records, receipt, identity)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    async def _ingest(
        self,
        source: str,
        fmt: str,
        sensor: Sensor,
        records: list[RawRecord],
        receipt: Callable[[IngestResult], Receipt] | None,
        identity: bytes | None,
    ) -> IngestResult:
        received = datetime.now(UTC)
        latest = received + self._max_future_skew
        events: list[Event] = []
        streams: Streams = []
        dead: list[DeadLetter] = []
        rejected: list[Rejection] = []
        ignored: list[Rejection] = []
        warned = 0
        self._metrics.inc("honeyatlas_records_received_total", len(records), source=source, format=fmt)
        for position, record in enumerate(records):
            if position % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # give the loop to the other connections
                if self._abandon:
                    self._metrics.inc("honeyatlas_requests_refused_total", source=source, reason="shutting_down")
                    raise IngestUnavailable("shutting_down", "the server shut down before the batch was stored; "
                                            "nothing of it was kept, send it again", self._retry_after)
            reason = record.error
            produced: list[Event] = []
            used = fmt
            if reason is None:
                ctx = RecordContext(
                    sensor=sensor.name,
                    honeypot=sensor.honeypot,
                    received=received,
                    timezone=self._timezone,
                    raw=record.raw[: RAW_LIMIT_BYTES * 4].decode("utf-8", "replace"),
                    demo=sensor.demo,
                )
                try:
                    used, produced = self._adapt(fmt, record, ctx)
                except RecordRejected as exc:
                    reason = exc.reason
                except RecordIgnored as exc:
                    ignored.append(Rejection(record.index, exc.reason))
                    self._metrics.inc("honeyatlas_records_ignored_total", source=source, reason=_reason_label(exc.reason))
                    continue
                except Exception:  # an adapter bug must not stop the stream
                    log.exception("adapter %s failed on record %d from %s", fmt, record.index, sensor.name)
                    reason = "adapter_error"
                if reason is None and not produced:
                    reason = "no events in record"
            if reason is not None:
                rejected.append(Rejection(record.index, reason))
                dead.append(
                    DeadLetter(
                        ts=received, source=source, sensor=sensor.name, format=fmt, index=record.index,
                        reason=reason, raw=record.raw[:RAW_LIMIT_BYTES],
                    )
                )
                self._metrics.inc("honeyatlas_records_rejected_total", source=source, reason=_reason_label(reason))
                continue
            stream = self._streams.get(used)
            for ordinal, event in enumerate(produced):
                if identity is not None:  # from the sensor's time, so that a retry brings the same id
                    seed = b"%s|%d|%d" % (identity, record.index, ordinal)
                    event = msgspec.structs.replace(event, id=derived_event_id(event.ts, seed))
                if event.ts > latest:
                    event = _dated_on_arrival(event, received, self._max_future_skew)
                if event.warnings:
                    warned += 1
                events.append(self._geolocator.apply(event, sensor))
                streams.append(stream)
        accepted = len(records) - len(rejected) - len(ignored)

        def result_of(delivered: Delivered) -> IngestResult:
            return IngestResult(accepted=accepted, events=delivered.events, rejected=rejected, ignored=ignored,
                                duplicates=delivered.duplicates, warned=warned)

        delivered = await self._sink.deliver(
            source=source, sensor=sensor.name, events=events, streams=streams, dead_letters=dead,
            receipt=(lambda d: receipt(result_of(d))) if receipt is not None else (lambda d: None),
        )
        if delivered.events:
            self._metrics.inc("honeyatlas_events_accepted_total", delivered.events, source=source, sensor=sensor.name)
        if warned:
            self._metrics.inc("honeyatlas_event_warnings_total", warned, source=source)
        return result_of(delivered)


def _dated_on_arrival(event: Event, received: datetime, skew: timedelta) -> Event:
    """The event at its receive time, with a warning that keeps the time its sensor gave."""
    note = (f"time {event.ts.isoformat()} is more than {skew.total_seconds():g} s after arrival "
            "(ingest.max_future_skew_seconds); receive time used")
    return msgspec.structs.replace(event, ts=received, warnings=(*event.warnings[: MAX_WARNINGS - 1], note))


def _reason_label(reason: str) -> str:
    """A bounded metric label: the stable head of a reason ("invalid JSON: ..." -> "invalid JSON")."""
    return reason.split(":", 1)[0][:64]
