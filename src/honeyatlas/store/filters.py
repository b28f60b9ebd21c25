"""The filter language of the query API, as one struct, compiled to SQL once per dialect.

`EventFilter` is what a view asks for: a window (`since <= ts < until`) and, per dimension,
the values any of which an event may have (an empty tuple: any value). The web layer builds
it from query parameters (web/params.py); every store read of events takes it. `where`
compiles it to a condition with bound parameters only (every value is attacker data) for
DuckDB or PostgreSQL; the two differ in their placeholder, in how a timestamp goes in
(DuckDB's columns hold naive UTC) and in how an address is tested against a prefix.

Addresses are stored as the canonical text `ipaddress` gives (adapters/fields.py: IPv4
dotted quad, IPv6 compressed lower case, IPv4-mapped as IPv4). An exact address is compared
as text. A prefix: PostgreSQL casts to `inet` (`<<=`); the installed DuckDB has no `inet`
extension offline, so there an IPv4 address becomes an integer (for `events.src_ip` the
stored one, `src_ip_v4`: duckdb_addresses.py) and an IPv6 one its 32 hex digits (a fixed
width, so text order is numeric order), compared with the prefix's range.

What must not live here: reading rows, rollups (duckdb_stats.py, postgres_stats.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from honeyatlas.clock import naive_utc
from honeyatlas.event import Kind, Outcome
from honeyatlas.store import duckdb_addresses

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The most values one parameter may repeat: bounds the SQL a request can build.
MAX_VALUES = 50


class EventFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Events with `since <= ts < until` having, for every non-empty tuple, one of its values."""

    since: datetime | None = None
    until: datetime | None = None
    sensors: tuple[str, ...] = ()
    honeypots: tuple[str, ...] = ()
    kinds: tuple[Kind, ...] = ()
    outcomes: tuple[Outcome, ...] = ()
    protocols: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()  # destination
    countries: tuple[str, ...] = ()  # source, ISO 3166-1 alpha-2, upper case
    asns: tuple[int, ...] = ()  # source
    addresses: tuple[str, ...] = ()  # source, canonical text
    networks: tuple[str, ...] = ()  # source prefixes ("198.51.100.0/24"), canonical, never a single address

    @property
    def dimensions(self) -> set[str]:
        """The dimensions the filter restricts, besides the window."""
        return {name for name in _COLUMNS if getattr(self, name)} | ({"networks"} if self.networks else set())

    def window(self, since: datetime, until: datetime) -> EventFilter:
        return msgspec.structs.replace(self, since=since, until=until)


# dimension -> (column, how a value is bound)
_COLUMNS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "sensors": ("sensor", str),
    "honeypots": ("honeypot", str),
    "kinds": ("kind", str),
    "outcomes": ("outcome", str),
    "protocols": ("protocol", str),
    "ports": ("dst_port", int),
    "countries": ("src_country", str),
    "asns": ("src_asn", int),
    "addresses": ("src_ip", str),
}


@dataclass(frozen=True)
class SqlDialect:
    param: str  # the placeholder: "?" or "%s"
    timestamp: Callable[[datetime], datetime]  # a moment as the engine takes it
    # (condition, params): the text column or expression `column` holds an address in the network
    in_network: Callable[[Network, str, str], tuple[str, list[Any]]]


def _duckdb_in_network(network: Network, p: str, column: str = "src_ip") -> tuple[str, list[Any]]:
    low, high = network.network_address, network.broadcast_address
    if network.version == 4 and column == "src_ip":  # the events' own integer: a range the zone maps skip
        return f"{duckdb_addresses.COLUMN} BETWEEN {p} AND {p}", [int(low), int(high)]
    if network.version == 4:
        number = " + ".join(f"TRY_CAST(split_part({column}, '.', {i + 1}) AS BIGINT) * {256 ** (3 - i)}"
                            for i in range(4))
        # The fixed leading octets as a text prefix first: cheap, and it skips most rows.
        octets = network.prefixlen // 8
        prefix = ".".join(str(low).split(".")[:octets]) + ("." if octets else "")
        if network.prefixlen % 8 == 0:  # /8, /16, /24: the text prefix is the whole test
            return f"(starts_with({column}, {p}) AND {column} NOT LIKE '%:%')", [prefix]
        return (f"(starts_with({column}, {p}) AND {column} NOT LIKE '%:%' AND ({number}) BETWEEN {p} AND {p})",
                [prefix, int(low), int(high)])
    # Canonical compressed text -> 8 groups: a "::" stands for the groups the colons leave
    # out (one colon per group once a leading or trailing "::" gets a "0" beside it).
    padded = (f"CASE WHEN {column} LIKE '::%' THEN '0' ELSE '' END || {column} || "
              f"CASE WHEN {column} LIKE '%::' THEN '0' ELSE '' END")
    colons = f"(length({padded}) - length(replace({padded}, ':', '')))"
    full = f"replace({padded}, '::', ':' || repeat('0:', 8 - {colons}))"
    hex32 = f"array_to_string(list_transform(string_split({full}, ':'), lambda g: lpad(g, 4, '0')), '')"
    # No IPv6 text has an IPv4 key: `IS NULL` lets the zone maps skip the row groups of IPv4 events.
    guard = f"{duckdb_addresses.COLUMN} IS NULL AND " if column == "src_ip" else ""
    return (f"({guard}{column} LIKE '%:%' AND {hex32} BETWEEN {p} AND {p})",
            [f"{int(low):032x}", f"{int(high):032x}"])


def _postgres_in_network(network: Network, p: str, column: str = "src_ip") -> tuple[str, list[Any]]:
    return f"{column}::inet <<= {p}::inet", [str(network)]


DUCKDB = SqlDialect(param="?", timestamp=naive_utc, in_network=_duckdb_in_network)
POSTGRES = SqlDialect(param="%s", timestamp=lambda moment: moment, in_network=_postgres_in_network)


def where(events: EventFilter, dialect: SqlDialect) -> tuple[str, list[Any]]:
    """The filter as one SQL condition on `events` and its parameters, in order ("TRUE" when
    it restricts nothing)."""
    p = dialect.param
    conditions: list[str] = []
    params: list[Any] = []
    if events.since is not None:
        conditions.append(f"ts >= {p}")
        params.append(dialect.timestamp(events.since))
    if events.until is not None:
        conditions.append(f"ts < {p}")
        params.append(dialect.timestamp(events.until))
    for name, (column, bind) in _COLUMNS.items():
        values: tuple[Any, ...] = getattr(events, name)
        if name == "addresses" and events.networks:
            continue  # joined with the prefixes below: one src_ip condition
        if values:
            conditions.append(f"{column} IN ({', '.join([p] * len(values))})")
            params.extend(bind(v) for v in values)
    if events.networks:
        alternatives: list[str] = []
        if events.addresses:
            alternatives.append(f"src_ip IN ({', '.join([p] * len(events.addresses))})")
            params.extend(events.addresses)
        for text in events.networks:
            condition, bound = dialect.in_network(ipaddress.ip_network(text), p, "src_ip")
            alternatives.append(condition)
            params.extend(bound)
        conditions.append("(" + " OR ".join(alternatives) + ")")
    return (" AND ".join(conditions) or "TRUE"), params
