"""PostgreSQL queries behind incidents, attacker and malware profiles and the IoC feed.

The same answers as duckdb_profiles.py, in PostgreSQL's dialect: each function takes a
`read(sql, params)` coroutine (the store runs a profile's statements in one snapshot) and
returns values from `honeyatlas.incident` / `honeyatlas.profile`. Lists are aggregated as
JSON (`json_agg`, decoded by the driver); timestamps are read as columns, never through JSON.
What must not live here: DDL, writes, and rules that decide what an attacker is (profile.classify).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

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
from honeyatlas.store.filters import POSTGRES, EventFilter, where
from honeyatlas.store.incident_sql import SCANS, Dialect, count_items, incident_refs

Read = incident_sql.Read
DIALECT = Dialect(
    param="%s", source_listed="sources @> ARRAY[{p}]::text[]", timestamp=lambda moment: moment,
    # json, not jsonb: a body may hold \u0000, which jsonb refuses (postgres_schema.py)
    sensor_listed="EXISTS (SELECT 1 FROM json_array_elements_text(body::json -> 'sensors') AS t(s) WHERE s = {p})",
    any_source="EXISTS (SELECT 1 FROM unnest(sources) AS s(a) WHERE {condition})",
    # Keys are addresses, address groups, hashes or fingerprints: cast only what is address text.
    key_is_address="(key ~ '^[0-9]{1,3}(\\.[0-9]{1,3}){3}$' OR key ~ '^[0-9a-f]{0,4}(:[0-9a-f]{0,4}){2,7}$')",
    events=POSTGRES,
)

# Sources that must never leave in a shared feed: labs, NAT artefacts, the demo.
_NOT_SHARED = "ARRAY['loopback_source', 'private_source', 'reserved_source', 'demo']::text[]"
# What `classify` needs, in this order: failed, succeeded, files, ports, sensors.
_COUNTS_SQL = ", ".join((
    "count(*) FILTER (WHERE kind = 'login_attempt' AND outcome = 'failure')",
    "count(*) FILTER (WHERE kind = 'login_attempt' AND outcome = 'success')",
    "count(*) FILTER (WHERE kind IN ('file_download', 'file_upload') OR sha256 IS NOT NULL)",
    "count(DISTINCT dst_port)",
    "count(DISTINCT sensor)",
))


def _latest(column: str) -> str:
    """The latest non-null value of a column over the grouped rows (DuckDB's arg_max)."""
    return f"(array_agg({column} ORDER BY ts DESC) FILTER (WHERE {column} IS NOT NULL))[1]"


def _top(column: str) -> str:
    """A most-frequent-first JSON list of {value, count} over the materialised rows `a`."""
    return (
        "(SELECT json_agg(json_build_object('value', v, 'count', n) ORDER BY n DESC, v) FROM "
        f"(SELECT {column} AS v, count(*) AS n FROM a WHERE {column} IS NOT NULL GROUP BY 1 "
        "ORDER BY n DESC, 1 LIMIT %(limit)s) t)"
    )


async def query_incidents(read: Read, query: IncidentQuery) -> list[Incident]:
    return await incident_sql.query_incidents(read, query, DIALECT)


async def get_incident(read: Read, incident_id: str) -> Incident | None:
    return await incident_sql.get_incident(read, incident_id, DIALECT)


async def attacker_profile(read: Read, ip: str, limit: int) -> AttackerProfile | None:
    rows = await read(
        "WITH a AS MATERIALIZED (SELECT ts, sensor, kind, outcome, dst_port, protocol, username, password, "
        "command, url, sha256, src_country, src_city, src_asn, src_org FROM events WHERE src_ip = %(ip)s) "
        f"SELECT min(ts), max(ts), count(*), {_latest('src_country')}, {_latest('src_city')}, "
        f"{_latest('src_asn')}, {_latest('src_org')}, {_COUNTS_SQL}, "
        "(SELECT json_agg(DISTINCT sensor ORDER BY sensor) FROM a), "
        f"{_top('dst_port')}, {_top('protocol')}, "
        "(SELECT json_agg(json_build_object('username', username, 'password', password, 'attempts', n, "
        "'succeeded', ok) ORDER BY n DESC, username, password) FROM (SELECT username, password, count(*) AS n, "
        "bool_or(outcome = 'success') AS ok FROM a WHERE kind = 'login_attempt' "
        "AND (username IS NOT NULL OR password IS NOT NULL) GROUP BY 1, 2 ORDER BY n DESC, 1, 2 LIMIT %(limit)s) c), "
        f"{_top('command')}, {_top('url')}, {_top('sha256')} FROM a",
        {"ip": ip, "limit": limit},
    )
    if not rows or not rows[0][2]:
        return None
    (first, last, n, country, city, asn, org, failed, succeeded, files, ports, sensor_count,
     sensors, port_counts, protocols, credentials, commands, urls, digests) = rows[0]
    incidents = await incident_refs(read, "key = %s OR sources @> ARRAY[%s]::text[]", [ip, ip])
    counts = ActivityCounts(
        failed_logins=failed, successful_logins=succeeded, files=files, ports=ports, sensors=sensor_count,
        scan_incidents=sum(1 for i in incidents if i.kind in SCANS),
    )
    return AttackerProfile(
        ip=ip, first_seen=first, last_seen=last, event_count=n, sensor_count=len(sensors or []),
        sensors=sensors or [], ports=count_items(port_counts), protocols=count_items(protocols),
        credentials=[Credential(**c) for c in credentials or []], commands=count_items(commands), urls=count_items(urls),
        sha256=count_items(digests), country=country, city=city, asn=asn, org=org,
        incidents=incidents, classification=classify(counts), counts=counts,
    )


async def malware_profile(read: Read, sha256: str, limit: int) -> MalwareProfile | None:
    rows = await read(
        "WITH a AS MATERIALIZED (SELECT ts, sensor, src_ip, url, md5 FROM events WHERE sha256 = %(sha256)s) "
        "SELECT min(ts), max(ts), count(*), count(DISTINCT src_ip), "
        "(SELECT json_agg(DISTINCT md5 ORDER BY md5) FROM a WHERE md5 IS NOT NULL), "
        f"{_top('src_ip')}, {_top('url')} FROM a",
        {"sha256": sha256, "limit": limit},
    )
    if not rows or not rows[0][2]:
        return None
    first, last, n, source_count, md5s, sources, urls = rows[0]
    spread = [
        Sighting(sensor=sensor, first_seen=f, last_seen=lt, sources=s, events=e)
        for sensor, f, lt, s, e in await read(
            "SELECT sensor, min(ts) AS f, max(ts), count(DISTINCT src_ip), count(*) FROM events "
            "WHERE sha256 = %s GROUP BY sensor ORDER BY f, sensor", [sha256])
    ]
    return MalwareProfile(
        sha256=sha256, md5=md5s or [], first_seen=first, last_seen=last, event_count=n, source_count=source_count,
        sources=count_items(sources), sightings=spread,
        curve=[CurvePoint(s.first_seen, i) for i, s in enumerate(spread, start=1)],
        doubling_seconds=doubling_seconds([s.first_seen for s in spread]), urls=count_items(urls),
        incidents=await incident_refs(read, "kind = 'epidemic' AND key = %s", [sha256]),
    )


async def attacker_summaries(
    read: Read, *, since: datetime, until: datetime, min_sensors: int, limit: int, events: EventFilter | None = None
) -> list[AttackerSummary]:
    """The IoC feed: public attacker addresses active in [since, until) in the events `events`
    selects (its window ignored), most active first."""
    condition, params = where((events or EventFilter()).window(since, until), POSTGRES)
    rows = await read(
        f"SELECT src_ip, min(ts), max(ts), count(*), {_latest('src_country')}, {_latest('src_asn')}, {_COUNTS_SQL} "
        f"FROM events WHERE {condition} AND src_ip IS NOT NULL AND NOT flags && {_NOT_SHARED} "
        "GROUP BY src_ip HAVING count(DISTINCT sensor) >= %s ORDER BY count(*) DESC, src_ip LIMIT %s",
        [*params, min_sensors, limit],
    )
    kinds: dict[str, set[str]] = {}
    if rows:
        for ip, kind in await read(
            "SELECT DISTINCT s.ip, i.kind FROM incidents i, unnest(i.sources) AS s(ip) "
            "WHERE i.last_seen >= %s AND i.opened_at < %s AND s.ip = ANY(%s)",
            [since, until, [row[0] for row in rows]],
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
            ip=ip, first_seen=first, last_seen=last, event_count=n, sensor_count=sensors,
            country=country, asn=asn, tags=[*map(str, roles), *sorted(seen_in)],
        ))
    return found
