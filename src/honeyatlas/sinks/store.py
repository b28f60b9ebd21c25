"""The store sink: dedupe, correlate, commit durably, then tell the live feed.

What one process (`--role all`) does after normalising a batch, and what a worker does with
each batch it takes from the bus: drop the session events another stream already brought
(transforms/dedupe.py), run the streaming detectors, append events, dead letters, incident
changes and the idempotency receipt in ONE store transaction, and only after the commit
publish to the live feed. The caller (the pipeline, or the worker's bus consumer)
acknowledges its own sender only when `deliver` returns.

A large batch is deduplicated and correlated in slices of `SLICE_EVENTS`, giving the event
loop back between them (the pipeline does the same while adapting, pipeline.py): the
detectors see the same events in the same order, other connections are served meanwhile.

The sink remembers whether the store's last write failed (`write_fault`, shown by
`/api/v1/health`); the next successful write clears it.

Incident growth is saved at most once per `incident_save_interval_seconds` (coalesced by
id); openings and closings are saved with the batch that caused them. A crash loses at most
one interval of growth, which the replay at start recomputes from the stored events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from honeyatlas.errors import StoreError
from honeyatlas.event import Event
from honeyatlas.incident import Incident
from honeyatlas.metrics import Metrics
from honeyatlas.sinks import Delivered, LiveFeed, Streams
from honeyatlas.store import DeadLetter, Receipt, Store
from honeyatlas.transforms.dedupe import SessionDeduplicator

log = logging.getLogger(__name__)

# Events deduplicated, correlated and handed to the live feed between two yields to the event
# loop. Correlating 100,000 events took 3.0-4.2 s in the big-batch runs on a loaded machine
# (docs/performance.md, "Big batches"), so a slice holds the loop 30-40 ms at most.
SLICE_EVENTS = 1000


class Correlate(Protocol):
    """The detectors as the sink runs them: `Correlator` in one process, a worker's
    `SourceStage` in a cluster (transforms/correlate)."""

    @property
    def transitions(self) -> int: ...

    def observe(self, events: list[Event]) -> list[Incident]: ...


class StoreSink:
    def __init__(
        self,
        *,
        store: Store,
        live: LiveFeed,
        deduplicator: SessionDeduplicator,
        metrics: Metrics,
        correlator: Correlate | None = None,
        incident_save_interval_seconds: float = 1.0,
    ) -> None:
        self._store = store
        self._live = live
        self._deduplicator = deduplicator
        self._metrics = metrics
        self._correlator = correlator
        self._unsaved: dict[str, Incident] = {}
        self._save_interval = incident_save_interval_seconds
        self._saved_at = 0.0
        self._write_fault: str | None = None

    @property
    def write_fault(self) -> str | None:
        """Why the store's last write failed, or None when it succeeded (or none was tried)."""
        return self._write_fault

    def has_room_for(self, count: int) -> bool:
        return self._store.has_room_for(count)

    @property
    def pending_events(self) -> int:
        return self._store.pending_events

    async def deliver(
        self,
        *,
        source: str,
        sensor: str,
        events: list[Event],
        streams: Streams,
        dead_letters: list[DeadLetter],
        receipt: Callable[[Delivered], Receipt | None],
    ) -> Delivered:
        kept = events
        if any(stream is not None for stream in streams):
            keep = self._deduplicator.keep
            kept = []
            for start in range(0, len(events), SLICE_EVENTS):
                if start:
                    await asyncio.sleep(0)
                kept.extend(e for e, stream in zip(events[start:start + SLICE_EVENTS],
                                                   streams[start:start + SLICE_EVENTS], strict=True)
                            if stream is None or keep(e, stream))
        delivered = Delivered(len(kept), len(events) - len(kept))
        # Correlated before the commit; a batch the store then refuses was still seen by the
        # detectors (an event_count may run ahead after a retry; distinct sensors and sources cannot).
        incidents: list[Incident] = []
        to_save: list[Incident] = []
        if self._correlator is not None and kept:
            transitions = self._correlator.transitions
            for start in range(0, len(kept), SLICE_EVENTS):
                if start:
                    await asyncio.sleep(0)
                incidents.extend(self._correlator.observe(kept[start:start + SLICE_EVENTS]))
            if len(kept) > SLICE_EVENTS:  # an incident changed in two slices: its latest state once
                incidents = list({incident.id: incident for incident in incidents}.values())
            to_save = self._incidents_to_save(incidents, transitions != self._correlator.transitions)
        await self._append(kept, dead_letters, receipt(delivered), to_save)
        if incidents:
            self._live.publish_incidents(incidents)
        for start in range(0, len(kept), SLICE_EVENTS):
            if start:
                await asyncio.sleep(0)
            self._live.publish(kept[start:start + SLICE_EVENTS])
        if delivered.duplicates:
            self._metrics.inc("honeyatlas_events_dropped_total", delivered.duplicates,
                              component="dedupe", reason="duplicate_session_event")
        return delivered

    async def deliver_incidents(self, incidents: list[Incident], transition: bool) -> None:
        """Incident changes found apart from a batch of events (a worker's keyed stage): saved
        like the batch's own, then told to the live feed."""
        to_save = self._incidents_to_save(incidents, transition)
        if to_save:
            await self._append([], [], None, to_save)
        if incidents:
            self._live.publish_incidents(incidents)

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
            await self._append([], [], None, pending)

    async def _append(self, events: list[Event], dead_letters: list[DeadLetter], receipt: Receipt | None,
                      incidents: list[Incident]) -> None:
        """One store transaction; incident changes it could not save are kept for the next."""
        try:
            await self._store.append(events, dead_letters, receipt, incidents)
        except BaseException as exc:
            for incident in incidents:
                self._unsaved.setdefault(incident.id, incident)
            if isinstance(exc, StoreError):
                self._write_fault = str(exc)
                self._metrics.inc("honeyatlas_store_write_failures_total")
            raise
        self._write_fault = None
