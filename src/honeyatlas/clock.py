"""Datetime conventions, written once: every moment is UTC.

Aware datetimes travel through the code; the stores write naive UTC where the engine wants
it (DuckDB) and a naive value read back, or given by a caller, is taken to be UTC already.
Imports nothing of ours, holds no state.
"""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def naive_utc(moment: datetime) -> datetime:
    """The same instant as a naive UTC datetime (what DuckDB's TIMESTAMP columns hold)."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment
