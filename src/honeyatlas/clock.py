"""Datetime conventions, written once: every moment is UTC.

Aware datetimes travel through the code; the stores write naive UTC where the engine wants
it (DuckDB) and a naive value read back, or given by a caller, is taken to be UTC already.
Imports nothing of ours, holds no state.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def naive_utc(moment: datetime) -> datetime:
    """The same instant as a naive UTC datetime (what DuckDB's TIMESTAMP columns hold)."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment


def floor_to(moment: datetime, step: timedelta) -> datetime:
    """The latest multiple of `step` since the Unix epoch at or before `moment` (naive or aware,
    kept as it came): the start of its minute, hour or UTC day."""
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return epoch + (moment - epoch) // step * step


def ceil_to(moment: datetime, step: timedelta) -> datetime:
    """The earliest multiple of `step` since the Unix epoch at or after `moment`."""
    floor = floor_to(moment, step)
    return floor if floor == moment else floor + step
