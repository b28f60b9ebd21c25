"""The data directory's free-space floor (`storage.min_free_disk_mib`).

Below the floor, ingest is refused at admission with a 503 and the reason, before a body is
read, instead of a commit failing half-way through a full disk; `/api/v1/health` shows it
and ingest resumes by itself once space comes back. `statvfs` is asked at most once per
`CHECK_INTERVAL_SECONDS` (admission runs on every request); what lives here is that check and
nothing else.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from honeyatlas.metrics import Metrics

# How long a statvfs answer is trusted: a request costs one clock read, a disk that fills at
# 100 MB/s overshoots the floor by at most 100 MB.
CHECK_INTERVAL_SECONDS = 1.0
_MIB = 1024 * 1024


class DiskFloor:
    """`refusal()` (pipeline.Guard) while the free space of `path`'s file system is below
    `min_free_mib`; 0 disables the floor (the free space is still measured and shown)."""

    def __init__(self, path: Path, *, min_free_mib: int, metrics: Metrics) -> None:
        self._path = path
        self._min_free = min_free_mib * _MIB
        self._checked_at = -CHECK_INTERVAL_SECONDS
        self._free: int | None = None
        self._error: str | None = None
        metrics.gauge("honeyatlas_disk_free_bytes", self._gauge)

    def _gauge(self) -> list[tuple[tuple[tuple[str, str], ...], float]]:
        free = self._measure()
        return [] if free is None else [((), free)]

    def _measure(self) -> int | None:
        """Free bytes for an unprivileged writer, None when they cannot be measured."""
        now = time.monotonic()
        if now - self._checked_at >= CHECK_INTERVAL_SECONDS:
            self._checked_at = now
            try:
                stats = os.statvfs(self._path)
            except OSError as exc:  # the directory went away: say so, do not refuse for it
                self._error = f"cannot measure free space of {self._path}: {exc.strerror}"
            else:
                self._free, self._error = stats.f_bavail * stats.f_frsize, None
        return None if self._error is not None else self._free

    def refusal(self) -> tuple[str, str] | None:
        free = self._measure()
        if self._min_free and free is not None and free < self._min_free:
            return ("disk_low", f"free disk space of {self._path} is {free // _MIB} MiB, below "
                                f"storage.min_free_disk_mib ({self._min_free // _MIB} MiB)")
        return None

    def fault(self) -> str | None:
        """The reason for health: below the floor, or unmeasurable."""
        refusal = self.refusal()
        return refusal[1] if refusal is not None else self._error
