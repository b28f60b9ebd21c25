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
import time
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo

import msgspec

from honeyatlas.adapters import Adapter, RecordContext
from honeyatlas.adapters.detect import AUTO, AutoDetector
from honeyatlas.enrichment.sensors import Sensor
from honeyatlas.errors import PipelineFull, RecordIgnored, RecordRejected
from honeyatlas.event import RAW_LIMIT_BYTES, Event
from honeyatlas.incident import Incident
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
        incident_save_interval_seconds: float = 1.0,
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
        # Incident growth is saved at most once per interval (coalesced by id); openings and
        # closings are saved with the batch that caused them. A crash loses at most one
        # interval of growth, which the replay at start recomputes from the stored events.
        self._unsaved: dict[str, Incident] = {}
        self._save_interval = incident_save_interval_seconds
        self._saved_at = 0.0
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
        # Correlated before the commit; a batch the store then refuses was still seen by the
        # detectors (an event_count may run ahead after a retry; distinct sensors and sources cannot).
        incidents: list[Incident] = []
        to_save: list[Incident] = []
        if self._correlator is not None and events:
            transitions = self._correlator.transitions
            incidents = self._correlator.observe(events)
            to_save = self._incidents_to_save(incidents, transitions != self._correlator.transitions)
        try:
            await self._store.append(events, dead, receipt(result) if receipt is not None else None, to_save)
        except BaseException:
            for incident in to_save:
                self._unsaved.setdefault(incident.id, incident)
            raise
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


    def _incidents_to_save(self, incidents: list[Incident], transition: bool) -> list[Incident]:
        for incident in incidents:
            self._unsaved[incident.id] = incident
        now = time.monotonic()
        if not self._unsaved or not (transition or now - self._saved_at >= self._save_interval):
            return []
        self._saved_at = now
        pending, self._unsaved = list(self._unsaved.values()), {}
        return pending

    async def save_incidents(self) -> None:
        """Save incident changes still held back (called periodically and at stop)."""
        if self._unsaved:
            self._saved_at = time.monotonic()
            pending, self._unsaved = list(self._unsaved.values()), {}
            try:
                await self._store.append([], [], None, pending)
            except BaseException:
                for incident in pending:
                    self._unsaved.setdefault(incident.id, incident)
                raise


def _reason_label(reason: str) -> str:
    """A bounded metric label: the stable head of a reason ("invalid JSON: ..." -> "invalid JSON")."""
    return reason.split(":", 1)[0][:64]
