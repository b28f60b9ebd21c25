"""Query parameters read once for every route: dates, and the filter language of the views.

A client may send any date Python's calendar holds (years 1 to 9999, any offset), but a
route then shifts it to UTC, subtracts a default span or aligns it on a histogram bucket,
and near the calendar's ends any of those overflows (an OverflowError, so a 500). So every
date a route receives passes through `query_time`, which reads it as UTC and clamps it into
[EARLIEST, LATEST]: a date outside asks for "everything before/after", which the bound
answers the same (possibly empty) way. Ranges with defaults are built by `time_range`.

The filter language (issue 13) is one dependency, `view_filter`, which every route of a view
takes (`dependencies=VIEW`): the events, summary, histogram, incidents, exports and the
events export all read the same parameters the same way, and the OpenAPI document describes
them once, from here. Repeating a parameter means "any of"; a bad value is a 400 that says
which parameter and why.

What must not live here: per-route rules beyond the range itself (bucket counts, row limits).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeAlias, TypeVar

import msgspec
from litestar.di import NamedDependency, Provide
from litestar.exceptions import ValidationException
from litestar.params import Parameter

from honeyatlas.event import Kind, Outcome
from honeyatlas.incident import IncidentKind
from honeyatlas.store.filters import MAX_VALUES, EventFilter

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


# `range`: a window ending now, as the page's URL carries it.
RANGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(hours=24),
          "7d": timedelta(days=7), "30d": timedelta(days=30)}
_MAX_TEXT = 200  # a sensor, honeypot or protocol name longer than this names nothing stored
_COUNTRY = re.compile(r"^[A-Za-z]{2}$")
E = TypeVar("E", Kind, Outcome, IncidentKind)


@dataclass(frozen=True)
class View:
    """A view's filter as asked, and whether a window was given at all (`since`, `until` or
    `range`; a route without one applies its own default span). `kind` stays text until a
    route reads it: an event kind everywhere, an incident kind on /api/v1/incidents."""

    unkinded: EventFilter
    kind: tuple[str, ...]
    windowed: bool

    @property
    def filter(self) -> EventFilter:
        return msgspec.structs.replace(self.unkinded, kinds=_enums("kind", self.kind, Kind))

    @property
    def incident_kinds(self) -> tuple[IncidentKind, ...]:
        return _enums("kind", self.kind, IncidentKind)

    @property
    def filtered(self) -> bool:
        return self.windowed or bool(self.kind) or bool(self.unkinded.dimensions)


def _doc(text: str) -> Any:
    return Parameter(description=text, required=False)


async def view_filter(
    since: Annotated[datetime | None, _doc("Events at or after this moment (ISO 8601; naive: UTC).")] = None,
    until: Annotated[datetime | None, _doc("Events before this moment (ISO 8601; naive: UTC).")] = None,
    range: Annotated[str | None, _doc(
        "A window ending now: 15m, 1h, 24h, 7d or 30d. Not together with since or until.")] = None,
    sensor: Annotated[list[str] | None, _doc("Sensor name; repeat for any of.")] = None,
    honeypot: Annotated[list[str] | None, _doc("Honeypot software (cowrie, dionaea...); repeat for any of.")] = None,
    kind: Annotated[list[str] | None, _doc(
        "Event kind (docs/events.md: login_attempt, command...); repeat for any of. "
        "On /api/v1/incidents: the incident kind.")] = None,
    outcome: Annotated[list[str] | None, _doc("Outcome: success, failure or unknown; repeat for any of.")] = None,
    protocol: Annotated[list[str] | None, _doc("Application protocol (ssh, telnet, http...); repeat for any of.")] = None,
    port: Annotated[list[str] | None, _doc("Destination port, 0-65535; repeat for any of.")] = None,
    country: Annotated[list[str] | None, _doc("Source country, ISO 3166-1 alpha-2 (CN); repeat for any of.")] = None,
    asn: Annotated[list[str] | None, _doc("Source autonomous system number (4134 or AS4134); repeat for any of.")
                   ] = None,
    src_ip: Annotated[list[str] | None, _doc(
        "Source address (203.0.113.7) or CIDR prefix (203.0.113.0/24, 2001:db8::/32); repeat for any of.")] = None,
) -> View:
    """The filter language's parameters as one `View`; 400 with the reason on a bad value."""
    if range is not None:
        if since is not None or until is not None:
            raise ValidationException("range and since/until together: range is a window ending now; pass one or "
                                      "the other")
        if range not in RANGES:
            raise ValidationException(f"range: {range[:20]!r} is not one of {', '.join(RANGES)}")
        end = datetime.now(UTC)
        start, end = end - RANGES[range], end
    else:
        start, end = query_time(since), query_time(until)
        if start is not None and end is not None and start >= end:
            raise ValidationException("since must be before until")
    addresses, networks = _sources(_many("src_ip", src_ip))
    view = View(
        unkinded=EventFilter(
            since=start, until=end,
            sensors=_texts("sensor", sensor), honeypots=_texts("honeypot", honeypot),
            outcomes=_enums("outcome", outcome, Outcome),
            protocols=_texts("protocol", protocol),
            ports=_numbers("port", port, 0, 65535),
            countries=tuple(dict.fromkeys(_country(c) for c in _many("country", country))),
            asns=_numbers("asn", [a[2:] if a[:2].upper() == "AS" else a for a in _many("asn", asn)], 0, 2**32 - 1),
            addresses=addresses, networks=networks,
        ),
        kind=tuple(dict.fromkeys(_many("kind", kind))),
        windowed=start is not None or end is not None,
    )
    return view


def _many(name: str, values: list[str] | None) -> list[str]:
    found = values or []
    if len(found) > MAX_VALUES:
        raise ValidationException(f"{name}: {len(found)} values, at most {MAX_VALUES}")
    return found


def _texts(name: str, values: list[str] | None) -> tuple[str, ...]:
    found = _many(name, values)
    for value in found:
        if not value or len(value) > _MAX_TEXT:
            raise ValidationException(f"{name}: a value must have 1 to {_MAX_TEXT} characters")
    return tuple(dict.fromkeys(found))


def _enums(name: str, values: Iterable[str] | None, catalogue: type[E]) -> tuple[E, ...]:
    found = []
    for value in _many(name, list(values or ())):
        try:
            found.append(catalogue(value))
        except ValueError:
            raise ValidationException(
                f"{name}: unknown value {value[:40]!r}; one of {', '.join(sorted(map(str, catalogue)))}") from None
    return tuple(dict.fromkeys(found))


def _numbers(name: str, values: list[str] | None, low: int, high: int) -> tuple[int, ...]:
    found = []
    for value in _many(name, values):
        if not value.isascii() or not value.isdigit() or len(value) > 10 or not low <= int(value) <= high:
            raise ValidationException(f"{name}: {value[:20]!r} is not a whole number from {low} to {high}")
        found.append(int(value))
    return tuple(dict.fromkeys(found))


def _country(value: str) -> str:
    if not _COUNTRY.match(value):
        raise ValidationException(f"country: {value[:20]!r} is not a two-letter ISO 3166-1 code")
    return value.upper()


def _sources(values: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Addresses and prefixes in the stored text form (IPv4-mapped as IPv4); a /32 or /128 is an address."""
    addresses: list[str] = []
    networks: list[str] = []
    for value in values:
        try:
            network = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValidationException(
                f"src_ip: {value[:50]!r} is neither an address nor a CIDR prefix (203.0.113.0/24)") from None
        if network.num_addresses == 1:
            address = network.network_address
            if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
                address = address.ipv4_mapped
            addresses.append(str(address))
        else:
            networks.append(str(network))
    return tuple(dict.fromkeys(addresses)), tuple(dict.fromkeys(networks))


# How a route takes the view: `view: Filtered` with `dependencies=VIEW`.
VIEW = {"view": Provide(view_filter)}
Filtered: TypeAlias = NamedDependency[View]
