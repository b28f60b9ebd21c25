"""Idempotency keys for the ingest sources: a retried batch is answered, not stored again.

A client (the `honeyatlas forward` agent) sends `Idempotency-Key: <key>` with each batch. After
the pipeline has durably stored a batch, the source remembers (sensor, key) -> the 200 response
and a digest of the body; a retry with the same key and body gets that response back without
touching the pipeline. A key reused with another body is refused (422), and a key whose first
request is still being processed is refused with 409 + Retry-After, so two concurrent copies
cannot both be stored.

Keys live in SQLite (`idempotency.sqlite3` in the data directory, WAL) so that they survive a
server restart: a client that lost the response when the server died retries after the
restart and must still be recognised. Bounded: keys older than `ttl_seconds` are ignored and
pruned, and each sensor keeps at most `max_keys_per_sensor` (oldest pruned first); prunes are
counted in `honeyatlas_idempotency_keys_pruned_total{reason}`.

This file is a fast cache and the home of in-flight claims. The truth is the receipt the
store commits in the same transaction as the batch's events (`Store.append(receipt=...)`,
table `idempotency_receipts`): the HTTP source consults it when this cache has no entry, so
a server killed after the events commit and before `remember` still answers the retry from
the receipt instead of storing the batch twice.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path

import msgspec

from honeyatlas.metrics import Metrics

MAX_KEY_LENGTH = 128

_SCHEMA = """CREATE TABLE IF NOT EXISTS idempotency_keys (
    sensor TEXT NOT NULL,
    key TEXT NOT NULL,
    body_sha256 BLOB NOT NULL,
    status INTEGER NOT NULL,
    response BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (sensor, key)
)"""
_PRUNE_EVERY = 64  # remembers per sensor between two size prunes


class StoredResponse(msgspec.Struct, frozen=True):
    status: int
    body: bytes  # the JSON body sent the first time


class KeyConflict(Exception):
    """The key is known with another body (422), or its first request is still running (409)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def body_digest(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


class IdempotencyStore:
    def __init__(
        self, path: Path, *, ttl_seconds: float, max_keys_per_sensor: int, metrics: Metrics | None = None
    ) -> None:
        self._path = path
        self._ttl = ttl_seconds
        self._max_per_sensor = max_keys_per_sensor
        self._metrics = metrics
        self._con: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._running: set[tuple[str, str]] = set()  # keys whose first request is being processed
        self._since_prune: dict[str, int] = {}

    def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None, timeout=10)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")  # WAL: commits survive a killed process
        con.execute(_SCHEMA)
        self._con = con
        self._prune_expired()

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _db(self) -> sqlite3.Connection:
        if self._con is None:
            raise RuntimeError("idempotency store is not open")
        return self._con

    def check(self, sensor: str, key: str, digest: bytes) -> StoredResponse | None:
        """The response stored for this key, or None when the request must be processed.

        On None the key is claimed until `release`; raises KeyConflict when the key belongs
        to another body or is claimed by a request still running.
        """
        with self._lock:
            row = self._db().execute(
                "SELECT body_sha256, status, response FROM idempotency_keys"
                " WHERE sensor = ? AND key = ? AND created >= ?",
                (sensor, key, time.time() - self._ttl),
            ).fetchone()
            if row is not None:
                if bytes(row[0]) != digest:
                    raise KeyConflict(422, "Idempotency-Key was already used with a different body")
                if self._metrics is not None:
                    self._metrics.inc("honeyatlas_idempotency_replays_total")
                return StoredResponse(status=row[1], body=bytes(row[2]))
            if (sensor, key) in self._running:
                raise KeyConflict(409, "a request with this Idempotency-Key is still being processed; retry")
            self._running.add((sensor, key))
            return None

    def remember(self, sensor: str, key: str, digest: bytes, response: StoredResponse) -> None:
        """Record the response of a stored batch; call only after the store committed it."""
        with self._lock:
            self._db().execute(
                "INSERT OR REPLACE INTO idempotency_keys VALUES (?, ?, ?, ?, ?, ?)",
                (sensor, key, digest, response.status, response.body, time.time()),
            )
            count = self._since_prune.get(sensor, 0) + 1
            self._since_prune[sensor] = count
        if count >= _PRUNE_EVERY:
            self._prune_sensor(sensor)

    def release(self, sensor: str, key: str) -> None:
        """End the claim taken by `check` (whether or not the request succeeded)."""
        with self._lock:
            self._running.discard((sensor, key))

    def _prune_sensor(self, sensor: str) -> None:
        with self._lock:
            self._since_prune[sensor] = 0
            db = self._db()
            expired = db.execute(
                "DELETE FROM idempotency_keys WHERE sensor = ? AND created < ?", (sensor, time.time() - self._ttl)
            ).rowcount
            surplus = db.execute(
                "DELETE FROM idempotency_keys WHERE sensor = ? AND rowid NOT IN"
                " (SELECT rowid FROM idempotency_keys WHERE sensor = ? ORDER BY created DESC LIMIT ?)",
                (sensor, sensor, self._max_per_sensor),
            ).rowcount
        self._count_pruned("expired", expired)
        self._count_pruned("size", surplus)

    def _prune_expired(self) -> None:
        with self._lock:
            expired = self._db().execute(
                "DELETE FROM idempotency_keys WHERE created < ?", (time.time() - self._ttl,)
            ).rowcount
        self._count_pruned("expired", expired)

    def _count_pruned(self, reason: str, count: int) -> None:
        if count and self._metrics is not None:
            self._metrics.inc("honeyatlas_idempotency_keys_pruned_total", count, reason=reason)

    def __len__(self) -> int:
        with self._lock:
            row = self._db().execute("SELECT count(*) FROM idempotency_keys").fetchone()
        return int(row[0])
