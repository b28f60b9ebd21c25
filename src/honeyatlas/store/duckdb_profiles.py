"""DuckDB queries behind incidents, attacker and malware profiles and the IoC feed.

Each function takes the store's `read(sql, params)` coroutine (a short-lived cursor in a
worker thread) and returns values from `honeyatlas.incident` / `honeyatlas.profile`.
One profile is one SQL statement: the address's (or sample's) rows are materialised once
and every list is aggregated from them, so a profile costs one scan of the events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import msgspec

from honeyatlas.clock import as_utc as _utc
from honeyatlas.clock import naive_utc as _naive
from honeyatlas.incident import Incident, IncidentKind, doubling_seconds
from honeyatlas.profile import (
    ActivityCounts,
    AttackerProfile,
    AttackerSummary,
    Count,
    Credential,
    CurvePoint,
    IncidentRef,
    MalwareProfile,
    Sighting,
    classify,
)
from honeyatlas.store import IncidentQuery

Read = Callable[[str, list[Any]], Awaitable[list[tuple[Any, ...]]]]

_incident_decoder = msgspec.json.Decoder(Incident)
_SCANS = (str(IncidentKind.HORIZONTAL_SCAN), str(IncidentKind.VERTICAL_SCAN))
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


def _counts(items: list[dict[str, Any]] | None) -> list[Count]:
    return [Count(item["value"], item["count"]) for item in items or []]


async def query_incidents(read: Read, query: IncidentQuery) -> list[Incident]:
    where, params = [], []
    for column, value in (("kind", query.kind), ("status", query.status)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(str(value))
    if query.since is not None:
        where.append("last_seen >= ?")
        params.append(_naive(query.since))
    if query.until is not None:
        where.append("opened_at < ?")
        params.append(_naive(query.until))
    if query.source is not None:
        where.append("(key = ? OR list_contains(sources, ?))")
        params.extend([query.source, query.source])
    sql = "SELECT body FROM incidents"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY last_seen DESC, id LIMIT ?"
    params.append(query.limit)
    return [_incident_decoder.decode(row[0]) for row in await read(sql, params)]


async def get_incident(read: Read, incident_id: str) -> Incident | None:
    rows = await read("SELECT body FROM incidents WHERE id = ?", [incident_id])
    return _incident_decoder.decode(rows[0][0]) if rows else None


async def _incident_refs(read: Read, where: str, params: list[Any]) -> list[IncidentRef]:
    rows = await read(f"SELECT id, kind, status, opened_at FROM incidents WHERE {where} "
                      "ORDER BY opened_at DESC LIMIT 200", params)
    return [IncidentRef(id=i, kind=k, status=s, opened_at=_utc(t)) for i, k, s, t in rows]


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
    incidents = await _incident_refs(read, "key = ? OR list_contains(sources, ?)", [ip, ip])
    counts = ActivityCounts(
        failed_logins=raw["failed"], successful_logins=raw["succeeded"], files=raw["files"], ports=raw["ports"],
        sensors=raw["sensors"], scan_incidents=sum(1 for i in incidents if i.kind in _SCANS),
    )
    return AttackerProfile(
        ip=ip, first_seen=_utc(head["first"]), last_seen=_utc(head["last"]), event_count=head["n"],
        sensor_count=len(sensors or []), sensors=sensors or [], ports=_counts(ports), protocols=_counts(protocols),
        credentials=[Credential(**c) for c in credentials or []], commands=_counts(commands), urls=_counts(urls),
        sha256=_counts(digests), country=head["country"], city=head["city"], asn=head["asn"], org=head["org"],
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
        event_count=head["n"], source_count=head["sources"], sources=_counts(sources), sightings=spread,
        curve=[CurvePoint(s.first_seen, n) for n, s in enumerate(spread, start=1)],
        doubling_seconds=doubling_seconds([s.first_seen for s in spread]), urls=_counts(urls),
        incidents=await _incident_refs(read, "kind = 'epidemic' AND key = ?", [sha256]),
    )


async def attacker_summaries(
    read: Read, *, since: datetime, until: datetime, min_sensors: int, limit: int
) -> list[AttackerSummary]:
    """The IoC feed: public attacker addresses active in [since, until), most active first."""
    rows = await read(
        "SELECT src_ip, min(ts), max(ts), count(*), arg_max(src_country, ts) FILTER (WHERE src_country IS NOT NULL), "
        f"arg_max(src_asn, ts) FILTER (WHERE src_asn IS NOT NULL), {_COUNTS_SQL} FROM events "
        f"WHERE ts >= ? AND ts < ? AND src_ip IS NOT NULL AND NOT list_has_any(flags, {_NOT_SHARED}) "
        "GROUP BY src_ip HAVING count(DISTINCT sensor) >= ? ORDER BY count(*) DESC, src_ip LIMIT ?",
        [_naive(since), _naive(until), min_sensors, limit],
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
    found = []
    for ip, first, last, n, country, asn, failed, succeeded, files, ports, sensors in rows:
        seen_in = kinds.get(ip, set())
        roles = classify(ActivityCounts(failed_logins=failed, successful_logins=succeeded, files=files, ports=ports,
                                        sensors=sensors, scan_incidents=len(seen_in & set(_SCANS))))
        found.append(AttackerSummary(
            ip=ip, first_seen=_utc(first), last_seen=_utc(last), event_count=n, sensor_count=sensors,
            country=country, asn=asn, tags=[*map(str, roles), *sorted(seen_in)],
        ))
    return found
