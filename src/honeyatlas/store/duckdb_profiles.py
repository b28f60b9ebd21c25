"""DuckDB queries behind incidents, attacker and malware profiles and the IoC feed.

Each function takes the store's `read(sql, params)` coroutine (a short-lived cursor in a
worker thread) and returns values from `honeyatlas.incident` / `honeyatlas.profile`.
One profile is one SQL statement: the address's (or sample's) rows are materialised once
and every list is aggregated from them, so a profile costs one scan of the events.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from honeyatlas.clock import as_utc as _utc
from honeyatlas.clock import naive_utc as _naive
from honeyatlas.incident import Incident, doubling_seconds
from honeyatlas.profile import (
    ActivityCounts,
    AttackerProfile,
    AttackerSummary,
    Credential,
    CurvePoint,
    MalwareProfile,
    Sighting,
    classify,
)
from honeyatlas.store import IncidentQuery, incident_sql
from honeyatlas.store.filters import DUCKDB, EventFilter, where
from honeyatlas.store.incident_sql import SCANS, Dialect, count_items, incident_refs

Read = incident_sql.Read
DIALECT = Dialect(
    param="?", source_listed="list_contains(sources, {p})", timestamp=_naive,
    sensor_listed="list_contains(json_extract_string(body, '$.sensors[*]'), {p})",
    any_source="len(list_filter(sources, lambda a: {condition})) > 0",
    key_is_address="TRUE",  # DuckDB's prefix test only reads text (TRY_CAST): any key is safe
    events=DUCKDB,
)

# Sources that must never leave in a shared feed: labs, NAT artefacts, the demo.
_NOT_SHARED = "['loopback_source', 'private_source', 'reserved_source', 'demo']"
# What `classify` needs, in this order: failed, succeeded, files, ports, sensors.
_COUNTS = (
    "count(*) FILTER (WHERE kind = 'login_attempt' AND outcome = 'failure')",
    "count(*) FILTER (WHERE kind = 'login_attempt' AND outcome = 'success')",
    "count(*) FILTER (WHERE kind IN ('file_download', 'file_upload') OR sha256 IS NOT NULL)",
    "count(DISTINCT dst_port)",
    "count(DISTINCT sensor)",
)
_COUNTS_SQL = ", ".join(_COUNTS)
_COUNTS_STRUCT = "{" + ", ".join(
    f"'{name}': {sql}" for name, sql in zip(("failed", "succeeded", "files", "ports", "sensors"), _COUNTS, strict=True)
) + "}"


def _top(column: str, limit_param: str = "?") -> str:
    """A most-frequent-first list of {value, count} over the materialised rows `a`."""
    return (
        f"(SELECT list({{'value': v, 'count': n}} ORDER BY n DESC, v) FROM "
        f"(SELECT {column} AS v, count(*) AS n FROM a WHERE {column} IS NOT NULL GROUP BY 1 "
        f"ORDER BY n DESC, 1 LIMIT {limit_param}))"
    )


async def query_incidents(read: Read, query: IncidentQuery) -> list[Incident]:
    return await incident_sql.query_incidents(read, query, DIALECT)


async def get_incident(read: Read, incident_id: str) -> Incident | None:
    return await incident_sql.get_incident(read, incident_id, DIALECT)


async def attacker_profile(read: Read, ip: str, limit: int) -> AttackerProfile | None:
    rows = await read(
        "WITH a AS MATERIALIZED (SELECT ts, sensor, kind, outcome, dst_port, protocol, username, password, "
        "command, url, sha256, src_country, src_city, src_asn, src_org FROM events WHERE src_ip = ?) "
        "SELECT (SELECT {'first': min(ts), 'last': max(ts), 'n': count(*), "
        "'country': arg_max(src_country, ts) FILTER (WHERE src_country IS NOT NULL), "
        "'city': arg_max(src_city, ts) FILTER (WHERE src_city IS NOT NULL), "
        "'asn': arg_max(src_asn, ts) FILTER (WHERE src_asn IS NOT NULL), "
        "'org': arg_max(src_org, ts) FILTER (WHERE src_org IS NOT NULL), "
        f"'counts': {_COUNTS_STRUCT}}} FROM a), "
        "(SELECT list(DISTINCT sensor ORDER BY sensor) FROM a), "
        f"{_top('dst_port')}, {_top('protocol')}, "
        "(SELECT list({'username': username, 'password': password, 'attempts': n, 'succeeded': ok} "
        "ORDER BY n DESC, username, password) FROM (SELECT username, password, count(*) AS n, "
        "bool_or(outcome = 'success') AS ok FROM a WHERE kind = 'login_attempt' "
        "AND (username IS NOT NULL OR password IS NOT NULL) GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT ?)), "
        f"{_top('command')}, {_top('url')}, {_top('sha256')}",
        [ip, limit, limit, limit, limit, limit, limit],
    )
    return None if not rows or not rows[0][0]["n"] else await _attacker(read, ip, rows[0])


async def _attacker(read: Read, ip: str, row: tuple[Any, ...]) -> AttackerProfile:
    head, sensors, ports, protocols, credentials, commands, urls, digests = row
    raw = head["counts"]
    incidents = await incident_refs(read, "key = ? OR list_contains(sources, ?)", [ip, ip])
    counts = ActivityCounts(
        failed_logins=raw["failed"], successful_logins=raw["succeeded"], files=raw["files"], ports=raw["ports"],
        sensors=raw["sensors"], scan_incidents=sum(1 for i in incidents if i.kind in SCANS),
    )
    return AttackerProfile(
        ip=ip, first_seen=_utc(head["first"]), last_seen=_utc(head["last"]), event_count=head["n"],
        sensor_count=len(sensors or []), sensors=sensors or [], ports=count_items(ports), protocols=count_items(protocols),
        credentials=[Credential(**c) for c in credentials or []], commands=count_items(commands), urls=count_items(urls),
        sha256=count_items(digests), country=head["country"], city=head["city"], asn=head["asn"], org=head["org"],
        incidents=incidents, classification=classify(counts), counts=counts,
    )


async def malware_profile(read: Read, sha256: str, limit: int) -> MalwareProfile | None:
    rows = await read(
        "WITH a AS MATERIALIZED (SELECT ts, sensor, src_ip, url, md5 FROM events WHERE sha256 = ?) "
        "SELECT (SELECT {'first': min(ts), 'last': max(ts), 'n': count(*), 'sources': count(DISTINCT src_ip)} "
        "FROM a), (SELECT list(DISTINCT md5 ORDER BY md5) FILTER (WHERE md5 IS NOT NULL) FROM a), "
        "(SELECT list({'sensor': sensor, 'first_seen': f, 'last_seen': l, 'sources': s, 'events': n} "
        "ORDER BY f, sensor) FROM (SELECT sensor, min(ts) AS f, max(ts) AS l, count(DISTINCT src_ip) AS s, "
        f"count(*) AS n FROM a GROUP BY sensor)), {_top('src_ip')}, {_top('url')}",
        [sha256, limit, limit],
    )
    if not rows or not rows[0][0]["n"]:
        return None
    head, md5s, sightings, sources, urls = rows[0]
    spread = [
        Sighting(sensor=s["sensor"], first_seen=_utc(s["first_seen"]), last_seen=_utc(s["last_seen"]),
                 sources=s["sources"], events=s["events"])
        for s in sightings or []
    ]
    return MalwareProfile(
        sha256=sha256, md5=md5s or [], first_seen=_utc(head["first"]), last_seen=_utc(head["last"]),
        event_count=head["n"], source_count=head["sources"], sources=count_items(sources), sightings=spread,
        curve=[CurvePoint(s.first_seen, n) for n, s in enumerate(spread, start=1)],
        doubling_seconds=doubling_seconds([s.first_seen for s in spread]), urls=count_items(urls),
        incidents=await incident_refs(read, "kind = 'epidemic' AND key = ?", [sha256]),
    )


async def attacker_summaries(
    read: Read, *, since: datetime, until: datetime, min_sensors: int, limit: int, events: EventFilter | None = None
) -> list[AttackerSummary]:
    """The IoC feed: public attacker addresses active in [since, until) in the events `events`
    selects (its window ignored), most active first."""
    condition, params = where((events or EventFilter()).window(since, until), DUCKDB)
    rows = await read(
        "SELECT src_ip, min(ts), max(ts), count(*), arg_max(src_country, ts) FILTER (WHERE src_country IS NOT NULL), "
        f"arg_max(src_asn, ts) FILTER (WHERE src_asn IS NOT NULL), {_COUNTS_SQL} FROM events "
        f"WHERE {condition} AND src_ip IS NOT NULL AND NOT list_has_any(flags, {_NOT_SHARED}) "
        "GROUP BY src_ip HAVING count(DISTINCT sensor) >= ? ORDER BY count(*) DESC, src_ip LIMIT ?",
        [*params, min_sensors, limit],
    )
    kinds: dict[str, set[str]] = {}
    if rows:
        ips = [row[0] for row in rows]
        for ip, kind in await read(
            "SELECT DISTINCT s.ip, i.kind FROM incidents i, unnest(i.sources) AS s(ip) "
            "WHERE i.last_seen >= ? AND i.opened_at < ? AND s.ip IN (SELECT unnest(?::VARCHAR[]))",
            [_naive(since), _naive(until), ips],
        ):
            kinds.setdefault(ip, set()).add(kind)
    return await asyncio.to_thread(_summaries, rows, kinds)  # up to 100,000 rows: seconds of Python


def _summaries(rows: list[tuple[Any, ...]], kinds: dict[str, set[str]]) -> list[AttackerSummary]:
    found = []
    for ip, first, last, n, country, asn, failed, succeeded, files, ports, sensors in rows:
        seen_in = kinds.get(ip, set())
        roles = classify(ActivityCounts(failed_logins=failed, successful_logins=succeeded, files=files, ports=ports,
                                        sensors=sensors, scan_incidents=len(seen_in & set(SCANS))))
        found.append(AttackerSummary(
            ip=ip, first_seen=_utc(first), last_seen=_utc(last), event_count=n, sensor_count=sensors,
            country=country, asn=asn, tags=[*map(str, roles), *sorted(seen_in)],
        ))
    return found
