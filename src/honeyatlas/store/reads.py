"""Read admission, shared by both backends: bounded read slots in front of the API's queries.

A query route's read takes one of `storage.max_concurrent_reads` slots; when they are all
taken it waits, at most `storage.max_queued_reads` reads wait, and none waits longer than
`storage.query_timeout_seconds`. A read that finds the queue full or waits too long is
refused with `ReadsBusy` (the API answers 503 with Retry-After), counted in
`honeyatlas_queries_refused_total{query, reason}`. So a flood of expensive reads queues
behind a few slots instead of taking every core from the writer, and nothing waits forever.

The reads ingest and health depend on (idempotency receipts, the schema version, the replay
at start) do not pass through here: each backend gives them a lane of their own, so no
amount of API reads can delay an acknowledgement.

What must not live here: running the query or cancelling it (each backend does, with its
own mechanism: DuckDB interrupts the cursor, PostgreSQL has `statement_timeout`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from honeyatlas.errors import ReadsBusy
from honeyatlas.metrics import Metrics


class ReadSlots:
    def __init__(self, *, concurrent: int, queued: int, wait_seconds: float, metrics: Metrics) -> None:
        self._slots = asyncio.Semaphore(concurrent)
        self.concurrent = concurrent  # the backend runs this many reads at once (threads, connections)
        self._queued = queued
        self._wait = wait_seconds
        # When a read is refused, every running one has ended (or been cancelled) by then.
        self.retry_after_seconds = max(1, math.ceil(wait_seconds))
        self._metrics = metrics
        self.running = 0
        self.waiting = 0
        metrics.gauge("honeyatlas_queries_running", lambda: [((), self.running)])
        metrics.gauge("honeyatlas_queries_waiting", lambda: [((), self.waiting)])

    def _refuse(self, query: str, reason: str, detail: str) -> ReadsBusy:
        self._metrics.inc("honeyatlas_queries_refused_total", query=query, reason=reason)
        return ReadsBusy(query, detail, self.retry_after_seconds)

    @asynccontextmanager
    async def slot(self, query: str) -> AsyncIterator[None]:
        """Hold one read slot for the body; `ReadsBusy` when none is to be had in time."""
        if self._slots.locked() and self.waiting >= self._queued:
            raise self._refuse(query, "queue_full", f"{self.running} reads running and {self.waiting} waiting")
        self.waiting += 1
        try:
            async with asyncio.timeout(self._wait):
                await self._slots.acquire()
        except TimeoutError:
            raise self._refuse(query, "wait_timeout", f"no read slot free within {self._wait:g} s") from None
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()
