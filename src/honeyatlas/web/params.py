"""Date query parameters, read once for every route: `since`, `until` and a cursor's moment.

A client may send any date Python's calendar holds (years 1 to 9999, any offset), but a
route then shifts it to UTC, subtracts a default span or aligns it on a histogram bucket,
and near the calendar's ends any of those overflows (an OverflowError, so a 500). So every
date a route receives passes through `query_time`, which reads it as UTC and clamps it into
[EARLIEST, LATEST]: a date outside asks for "everything before/after", which the bound
answers the same (possibly empty) way. Ranges with defaults are built by `time_range`.
What must not live here: per-route rules beyond the range itself (bucket counts, row limits).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from litestar.exceptions import ValidationException

# Two years inside the calendar's ends: room for the widest histogram bucket (366 days) to be
# aligned below `since`, for a default 24-hour span before `until`, and for a UTC offset.
EARLIEST = datetime(3, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 1, 1, tzinfo=UTC)


def query_time(value: datetime | None) -> datetime | None:
    """A date parameter as an aware UTC datetime within [EARLIEST, LATEST] (naive: taken as UTC)."""
    if value is None:
        return None
    if value.year < EARLIEST.year:  # checked before shifting: year 1 at +01:00 has no UTC form
        return EARLIEST
    if value.year > LATEST.year:
        return LATEST
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return min(max(moment, EARLIEST), LATEST)


def time_range(since: datetime | None, until: datetime | None, *, default_span: timedelta,
               now: datetime) -> tuple[datetime, datetime]:
    """[start, end) from optional bounds: `until` defaults to now, `since` to `default_span`
    before the end; 400 unless start is before end."""
    end = query_time(until) or now
    start = query_time(since) or end - default_span  # from EARLIEST: still inside the calendar
    if start >= end:
        raise ValidationException("since must be before until")
    return start, end
