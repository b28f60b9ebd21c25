"""The correlation runtime around the detectors: rebuilt from the store at start, incident
growth saved periodically, the rest saved at stop.

Used by the roles that correlate: `all` (one `Correlator`) and `worker` (its two stages,
`WorkerCorrelation`, which keeps from the replay what its partitions own).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from honeyatlas.config import CorrelationConfig
from honeyatlas.errors import HoneyatlasError
from honeyatlas.event import Event
from honeyatlas.incident import Incident, IncidentStatus
from honeyatlas.sinks.store import StoreSink
from honeyatlas.store import IncidentQuery, Store
from honeyatlas.tasks import cancel_and_wait, every

log = logging.getLogger(__name__)


class Replayable(Protocol):
    """What a restart rebuild needs from the detectors (`Correlator` has it)."""

    def replay_windows(self) -> tuple[float, float]: ...

    def replay(self, events: list[Event]) -> dict[str, Incident]: ...

    def end_rebuild(self, produced: dict[str, Incident], stored_open: list[Incident]) -> list[Incident]: ...


class CorrelationRuntime:
    def __init__(self, correlator: Replayable, *, settings: CorrelationConfig, store: Store, sink: StoreSink):
        self.correlator = correlator
        self._settings = settings
        self._store = store
        self._sink = sink
        self._saver: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._settings.replay_max_events:
            await self._rebuild()
        self._saver = every(self._settings.save_interval_seconds, self._sink.save_incidents, name="incident-saver",
                            on_error=lambda exc: log.warning("saving incidents failed: %s", exc))

    async def stop(self) -> None:
        await cancel_and_wait(self._saver)
        self._saver = None
        try:
            await self._sink.save_incidents()
        except HoneyatlasError as exc:  # the replay at the next start recomputes them
            log.warning("saving incidents at stop failed: %s", exc)

    async def _rebuild(self) -> None:
        started = time.monotonic()
        correlator = self.correlator
        recent, payloads = correlator.replay_windows()
        produced: dict[str, Incident] = {}
        count = 0
        # In chunks: the whole replay at once (200,000 events by default) left a server
        # started on a big store at ~1 GiB RSS.
        async for chunk in self._store.events_for_replay(
            window_seconds=recent, payload_window_seconds=payloads, limit=self._settings.replay_max_events
        ):
            count += len(chunk)
            produced.update(await asyncio.to_thread(correlator.replay, chunk))
        stored_open = await self._store.query_incidents(
            IncidentQuery(status=IncidentStatus.OPEN, limit=self._settings.max_open_incidents)
        )
        if not produced and not stored_open:
            return
        changes = correlator.end_rebuild(produced, stored_open)
        if changes:
            await self._store.append([], [], None, changes)
        log.info("correlation state rebuilt from %d stored events in %.1f s", count, time.monotonic() - started)
