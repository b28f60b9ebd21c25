"""The ingest pipeline every source feeds: adapter -> transforms -> store -> live hub.

A source hands over a batch of raw records already framed (one per index) together with
the authenticated sensor. The pipeline turns each record into events with the named
adapter, rejects what cannot be used into the dead-letter store with a reason, enriches,
waits until the store has durably committed the batch, and only then publishes to the live
hub and returns, so a source can acknowledge exactly what is stored. Every record is
counted: received, accepted, rejected (by reason), never silently lost.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo

import msgspec

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.enrichment.sensors import Sensor
from honeyatlas.errors import PipelineFull, RecordRejected
from honeyatlas.event import RAW_LIMIT_BYTES, Event
from honeyatlas.metrics import Metrics
from honeyatlas.sinks.hub import LiveHub
from honeyatlas.store import DeadLetter, Store
from honeyatlas.transforms.geolocate import Geolocator

log = logging.getLogger(__name__)


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
    accepted: int  # records that produced events (accepted + len(rejected) == records given)
    events: int  # events stored (a record may produce several)
    rejected: list[Rejection]


class Pipeline:
    def __init__(
        self,
        *,
        adapters: dict[str, Adapter],
        geolocator: Geolocator,
        store: Store,
        hub: LiveHub,
        metrics: Metrics,
        sensor_timezone: tzinfo,
        retry_after_seconds: int,
    ) -> None:
        self.adapters = adapters
        self._geolocator = geolocator
        self._store = store
        self._hub = hub
        self._metrics = metrics
        self._timezone = sensor_timezone
        self._retry_after = retry_after_seconds

    def admit(self, source: str, record_count: int) -> None:
        """Refuse early, before any work, when the store queue cannot take the batch."""
        if not self._store.has_room_for(record_count):
            self._metrics.inc("honeyatlas_requests_refused_total", source=source, reason="pipeline_full")
            raise PipelineFull(self._retry_after)

    async def ingest(
        self, *, source: str, fmt: str, sensor: Sensor, records: list[RawRecord]
    ) -> IngestResult:
        adapter = self.adapters[fmt]
        received = datetime.now(UTC)
        events: list[Event] = []
        dead: list[DeadLetter] = []
        rejected: list[Rejection] = []
        warned = 0
        self._metrics.inc("honeyatlas_records_received_total", len(records), source=source, format=fmt)
        for record in records:
            reason = record.error
            produced: list[Event] = []
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
                    produced = adapter.adapt(record.value, ctx)
                except RecordRejected as exc:
                    reason = exc.reason
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
            for event in produced:
                if event.warnings:
                    warned += 1
                events.append(self._geolocator.apply(event, sensor))
        await self._store.append(events, dead)
        if events:
            self._hub.publish(events)
            self._metrics.inc("honeyatlas_events_accepted_total", len(events), source=source, sensor=sensor.name)
        if warned:
            self._metrics.inc("honeyatlas_event_warnings_total", warned, source=source)
        return IngestResult(accepted=len(records) - len(rejected), events=len(events), rejected=rejected)


def _reason_label(reason: str) -> str:
    """A bounded metric label: the stable head of a reason ("invalid JSON: ..." -> "invalid JSON")."""
    return reason.split(":", 1)[0][:64]
