"""Incident reads both backends run the same way, written once for a small SQL `Dialect`.

DuckDB and PostgreSQL differ here only in their placeholders, in how a list column is
searched, and in how a timestamp goes in (DuckDB's columns hold naive UTC). What differs
more (profiles, the IoC feed) stays in duckdb_profiles.py and postgres_profiles.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from honeyatlas.clock import as_utc
from honeyatlas.incident import Incident, IncidentKind
from honeyatlas.profile import Count, IncidentRef
from honeyatlas.store import IncidentQuery
from honeyatlas.store.filters import SqlDialect

Read = Callable[[str, Any], Awaitable[list[tuple[Any, ...]]]]

SCANS = (str(IncidentKind.HORIZONTAL_SCAN), str(IncidentKind.VERTICAL_SCAN))
_decoder = msgspec.json.Decoder(Incident)


@dataclass(frozen=True)
class Dialect:
    param: str  # the placeholder: "?" or "%s"
    source_listed: str  # a condition on `sources` holding the parameter, with {p} for the placeholder
    timestamp: Callable[[datetime], datetime]  # a moment as the engine takes it
    sensor_listed: str  # a condition on the body's `sensors` holding the parameter {p}
    any_source: str  # a condition: some element `a` of `sources` satisfies {condition}
    key_is_address: str  # a condition true only when `key` is address text (a cast would not fail)
    events: SqlDialect  # how the event filter's pieces are written (an address in a prefix)


def count_items(items: list[dict[str, Any]] | None) -> list[Count]:
    return [Count(item["value"], item["count"]) for item in items or []]


async def query_incidents(read: Read, query: IncidentQuery, dialect: Dialect) -> list[Incident]:
    p = dialect.param
    where: list[str] = []
    params: list[Any] = []
    if query.kinds:
        where.append(f"kind IN ({', '.join([p] * len(query.kinds))})")
        params.extend(str(kind) for kind in query.kinds)
    if query.status is not None:
        where.append(f"status = {p}")
        params.append(str(query.status))
    if query.sensors:
        where.append("(" + " OR ".join([dialect.sensor_listed.format(p=p)] * len(query.sensors)) + ")")
        params.extend(query.sensors)
    involved: list[str] = []  # src_ip: the key or a listed source is the address or in the prefix
    for address in query.addresses:
        involved.append(f"key = {p} OR {dialect.source_listed.format(p=p)}")
        params.extend([address, address])
    for text in query.networks:
        network = ipaddress.ip_network(text)
        on_key, key_params = dialect.events.in_network(network, p, "key")
        on_source, source_params = dialect.events.in_network(network, p, "a")
        # CASE, not AND: only CASE makes PostgreSQL test the guard before it casts
        involved.append(f"CASE WHEN {dialect.key_is_address} THEN {on_key} ELSE FALSE END "
                        f"OR {dialect.any_source.format(condition=on_source)}")
        params.extend([*key_params, *source_params])
    if involved:
        where.append("(" + " OR ".join(f"({one})" for one in involved) + ")")
    if query.since is not None:
        where.append(f"last_seen >= {p}")
        params.append(dialect.timestamp(query.since))
    if query.until is not None:
        where.append(f"opened_at < {p}")
        params.append(dialect.timestamp(query.until))
    if query.source is not None:
        where.append(f"(key = {p} OR {dialect.source_listed.format(p=p)})")
        params.extend([query.source, query.source])
    sql = "SELECT body FROM incidents"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY last_seen DESC, id LIMIT {p}"
    params.append(query.limit)
    return [_decoder.decode(row[0]) for row in await read(sql, params)]


async def get_incident(read: Read, incident_id: str, dialect: Dialect) -> Incident | None:
    rows = await read(f"SELECT body FROM incidents WHERE id = {dialect.param}", [incident_id])
    return _decoder.decode(rows[0][0]) if rows else None


async def incident_refs(read: Read, where: str, params: list[Any]) -> list[IncidentRef]:
    """The incidents matching `where` (written in the caller's dialect), newest first."""
    rows = await read(f"SELECT id, kind, status, opened_at FROM incidents WHERE {where} "
                      "ORDER BY opened_at DESC LIMIT 200", params)
    return [IncidentRef(id=i, kind=k, status=s, opened_at=as_utc(t)) for i, k, s, t in rows]
