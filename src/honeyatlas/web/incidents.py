"""Correlation in the API: incidents, attacker and malware profiles.

Routes are built by `incident_routes(context)` like the rest of the API. Path values are
validated before they reach the store (an address must parse, a hash must be 64 hex
digits), and a miss is a 404 that says what was looked up.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

import msgspec
from litestar import get
from litestar.exceptions import NotFoundException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery, QueryParameter

from honeyatlas.incident import Incident, IncidentStatus
from honeyatlas.profile import AttackerProfile, MalwareProfile
from honeyatlas.store import IncidentQuery
from honeyatlas.web.access import ANALYST
from honeyatlas.web.api import WebContext
from honeyatlas.web.params import VIEW, Filtered

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class IncidentList(msgspec.Struct):
    incidents: list[Incident]
    ignored: list[str]  # filter parameters that describe events, not incidents: accepted, no effect


# The filter parameters that describe events only: an incident has no port, country... of its own.
_EVENT_ONLY = ("honeypots", "honeypot"), ("outcomes", "outcome"), ("protocols", "protocol"), ("ports", "port"), \
    ("countries", "country"), ("asns", "asn")


def canonical_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError as exc:
        raise ValidationException("not an IP address: pass an IPv4 or IPv6 address") from exc


def canonical_sha256(text: str) -> str:
    if not _SHA256.match(text):
        raise ValidationException("not a SHA-256: pass 64 hexadecimal digits")
    return text.lower()


def incident_routes(ctx: WebContext) -> list[BaseRouteHandler]:
    @get("/api/v1/incidents", tags=["correlation"], opt=ANALYST,
         summary="Incidents (multi-sensor attackers, scans, campaigns, epidemics), most recently active first",
         dependencies=VIEW,
         description="Takes the filter parameters of docs/api.md, meaning for incidents: since/until/range, "
                     "active in the window (last seen at or after since, opened before until); sensor, involving "
                     "that sensor; src_ip, keyed by or listing the address, or an address in the prefix; kind, "
                     "the incident kind. honeypot, outcome, protocol, port, country and asn describe events: "
                     "accepted, no effect, listed in `ignored`. Repeat a parameter for any of.")
    async def incidents(
        view: Filtered,
        status: FromQuery[IncidentStatus | None] = None,
        source: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> IncidentList:
        asked = view.unkinded
        query = IncidentQuery(kinds=view.incident_kinds, status=status, since=asked.since, until=asked.until,
                              source=canonical_ip(source) if source else None, sensors=asked.sensors,
                              addresses=asked.addresses, networks=asked.networks, limit=limit)
        ignored = [name for field, name in _EVENT_ONLY if getattr(asked, field)]
        return IncidentList(incidents=await ctx.reads.query_incidents(query), ignored=ignored)

    @get("/api/v1/incidents/{incident_id:str}", tags=["correlation"], opt=ANALYST,
         summary="One incident with its members and timeline")
    async def incident(incident_id: FromPath[str]) -> Incident:
        found = await ctx.reads.get_incident(incident_id[:64])
        if found is None:
            raise NotFoundException(f"no incident {incident_id[:64]!r}")
        return found

    @get("/api/v1/attackers/{ip:str}", tags=["correlation"], opt=ANALYST,
         summary="Attacker profile: activity, sensors, credentials, commands, payloads, incidents, classification")
    async def attacker(ip: FromPath[str], limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 20) -> AttackerProfile:
        address = canonical_ip(ip)
        found = await ctx.reads.attacker_profile(address, limit)
        if found is None:
            raise NotFoundException(f"no events from {address}")
        return msgspec.structs.replace(found, benign=True) if address in ctx.benign else found

    @get("/api/v1/malware/{sha256:str}", tags=["correlation"], opt=ANALYST,
         summary="Malware sample: where and when it was seen, by whom, and its spread")
    async def malware(sha256: FromPath[str], limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 20) -> MalwareProfile:
        digest = canonical_sha256(sha256)
        found = await ctx.reads.malware_profile(digest, limit)
        if found is None:
            raise NotFoundException(f"no events with sample {digest}")
        return found

    return [incidents, incident, attacker, malware]
