"""The ingest pipeline every source feeds: adapter -> transforms -> store -> live hub.

A source hands over a batch of raw records already framed (one per index) together with
the authenticated sensor. The pipeline turns each record into events with the named
adapter, rejects what cannot be used into the dead-letter store with a reason, enriches,
correlates (incidents are stored in the same transaction as the events), waits until the store has durably committed the batch, and only then publishes to the live
hub and returns, so a source can acknowledge exactly what is stored. Every record is
counted: received, accepted, rejected (by reason), never silently lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

import msgspec

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters.detect import AUTO, AutoDetector
from honeyatlas.enrichment.sensors import Sensor
from honeyatlas.errors import PipelineFull, RecordIgnored, RecordRejected
from honeyatlas.event import RAW_LIMIT_BYTES, Event
from honeyatlas.metrics import Metrics
from honeyatlas.sinks.hub import LiveHub
from honeyatlas.store import DeadLetter, Receipt, Store
from honeyatlas.transforms.correlate import Correlator
from honeyatlas.transforms.dedupe import SessionDeduplicator
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
    accepted: int  # records that produced events (accepted + rejected + ignored == records given)
    events: int  # events stored (a record may produce several)
    rejected: list[Rejection]  # unusable records, kept in the dead-letter store
    ignored: list[Rejection]  # valid records that are not attacker activity (counted, not stored)
    duplicates: int  # events dropped because another stream already brought them
    warned: int  # events stored with at least one adapter warning


class Pipeline:
    def __init__(
        self,
        *,
        adapters: dict[str, Adapter],
        geolocator: Geolocator,
        deduplicator: SessionDeduplicator,
        store: Store,
        hub: LiveHub,
        metrics: Metrics,
        sensor_timezone: tzinfo,
        retry_after_seconds: int,
        correlator: Correlator | None = None,
    ) -> None:
        self.adapters = adapters
        self._detector = AutoDetector(adapters)
        self._geolocator = geolocator
        self._deduplicator = deduplicator
        self._store = store
        self._hub = hub
        self._metrics = metrics
        self._timezone = sensor_timezone
        self._retry_after = retry_after_seconds
        self._correlator = correlator
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
        """Refuse early, before any work, when the store queue cannot take the batch."""
        if not self._store.has_room_for(record_count):
            self._metrics.inc("honeyatlas_requests_refused_total", source=source, reason="pipeline_full")
            raise PipelineFull(self._retry_after)

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
    ) -> IngestResult:
        """Adapt, enrich and durably store one batch. `receipt`, when given, builds the record
        of this answer that the store commits in the same transaction (idempotent sources)."""
        received = datetime.now(UTC)
        events: list[Event] = []
        dead: list[DeadLetter] = []
        rejected: list[Rejection] = []
        ignored: list[Rejection] = []
        warned = duplicates = 0
        self._metrics.inc("honeyatlas_records_received_total", len(records), source=source, format=fmt)
        for record in records:
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
            for event in produced:
                if stream is not None and not self._deduplicator.keep(event, stream):
                    duplicates += 1
                    continue
                if event.warnings:
                    warned += 1
                events.append(self._geolocator.apply(event, sensor))
        result = IngestResult(
            accepted=len(records) - len(rejected) - len(ignored), events=len(events), rejected=rejected,
            ignored=ignored, duplicates=duplicates, warned=warned,
        )
        # Correlated before the commit so incident changes are stored with the events that
        # caused them; a batch the store then refuses was still seen by the detectors (an
        # event_count may run ahead after a retry; distinct sensors and sources cannot).
        incidents = self._correlator.observe(events) if self._correlator is not None and events else []
        await self._store.append(events, dead, receipt(result) if receipt is not None else None, incidents)
        if incidents:
            self._hub.publish_incidents(incidents)
        if events:
            self._hub.publish(events)
            self._metrics.inc("honeyatlas_events_accepted_total", len(events), source=source, sensor=sensor.name)
        if warned:
            self._metrics.inc("honeyatlas_event_warnings_total", warned, source=source)
        if duplicates:
            self._metrics.inc(
                "honeyatlas_events_dropped_total", duplicates, component="dedupe", reason="duplicate_session_event"
            )
        return result


def _reason_label(reason: str) -> str:
    """A bounded metric label: the stable head of a reason ("invalid JSON: ..." -> "invalid JSON")."""
    return reason.split(":", 1)[0][:64]
