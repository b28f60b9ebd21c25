"""Sharing in the API: the IoC feed, STIX 2.1 bundles and MISP events.

Routes are built by `sharing_routes(context)`. The store chooses the rows (only shareable
addresses: no loopback, private, reserved or demo sources); known research scanners
(`correlation.benign_networks`) are left out here, rows and incidents keyed by them alike,
and so are campaigns below `correlation.export_min_confidence`;
`honeyatlas.share` turns the rest into documents. Ranges default to the last 24 hours and
are bounded to 31 days.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from litestar import Response, get
from litestar.exceptions import NotFoundException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath, FromQuery, QueryParameter

from honeyatlas.incident import Incident
from honeyatlas.profile import AttackerSummary
from honeyatlas.share import ioc_csv, ioc_json, misp_event, stix_bundle
from honeyatlas.store import IncidentQuery
from honeyatlas.store.filters import EventFilter
from honeyatlas.web.access import ANALYST
from honeyatlas.web.api import WebContext
from honeyatlas.web.params import VIEW, Filtered, time_range

MAX_RANGE = timedelta(days=31)
MAX_ROWS = 100_000
FILTERED_EXPORT = ("Takes the filter parameters of docs/api.md (since, until, range, sensor, honeypot, kind, outcome, "
                   "protocol, port, country, asn, src_ip; repeat one for any of): the addresses of the view's "
                   "events; STIX adds the incidents of the window that sensor and src_ip select.")
# A bundle costs about 0.3 ms of CPU per attacker address to build (off the event loop, but
# holding the interpreter): a range's bundle carries the most active 10,000 unless asked for more.
STIX_DEFAULT_ROWS = 10_000
STIX_TYPE = "application/stix+json;version=2.1"


def _range(since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
    start, end = time_range(since, until, default_span=timedelta(hours=24), now=datetime.now(UTC))
    if end - start > MAX_RANGE:
        raise ValidationException("the range is longer than 31 days: narrow since/until")
    return start, end


def sharing_routes(ctx: WebContext) -> list[BaseRouteHandler]:
    identity = ctx.sharing_identity

    benign = ctx.benign

    async def rows(start: datetime, end: datetime, *, min_sensors: int = 1, limit: int = MAX_ROWS,
                   events: EventFilter | None = None) -> list[AttackerSummary]:
        found = await ctx.reads.attacker_summaries(since=start, until=end, min_sensors=min_sensors, limit=limit,
                                                   events=events)
        return [row for row in found if row.ip not in benign]

    min_confidence = ctx.export_min_confidence

    def shared(incidents: list[Incident]) -> list[Incident]:
        """Incidents keyed by a known research scanner (its scans) are not indicators, nor
        campaigns below `correlation.export_min_confidence` (those opened while the
        detector was still learning the background, or on keys not rare enough)."""
        return [i for i in incidents
                if i.key not in benign and (i.confidence is None or i.confidence >= min_confidence)]

    async def incident_and_rows(incident_id: str) -> tuple[Incident, list[AttackerSummary]]:
        incident = await ctx.reads.get_incident(incident_id[:64])
        if incident is None or not shared([incident]):
            raise NotFoundException(f"no shareable incident {incident_id[:64]!r}")
        start = incident.opened_at - timedelta(seconds=incident.window_seconds)
        members = set(incident.sources) | {incident.key}
        found = await rows(start, incident.last_seen + timedelta(seconds=1))
        return incident, [row for row in found if row.ip in members]

    @get("/api/v1/iocs", tags=["sharing"], opt=ANALYST, summary="IoC feed of attacker addresses (CSV or JSON), most active first",
         dependencies=VIEW, description=FILTERED_EXPORT)
    async def iocs(
        view: Filtered,
        format: FromQuery[Literal["json", "csv"]] = "json",
        min_sensors: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_ROWS)] = 10_000,
    ) -> Response[Any]:
        chosen = view.filter
        start, end = _range(chosen.since, chosen.until)
        found = await rows(start, end, min_sensors=min_sensors, limit=limit, events=chosen)
        if format == "csv":
            return Response(await asyncio.to_thread(ioc_csv, found), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="honeyatlas-iocs.csv"'})
        return Response(await asyncio.to_thread(ioc_json, found, datetime.now(UTC)), media_type="application/json")

    @get("/api/v1/stix", tags=["sharing"], opt=ANALYST, summary="STIX 2.1 bundle of a time range: attacker addresses and incidents",
         dependencies=VIEW, description=FILTERED_EXPORT)
    async def stix_range(
        view: Filtered,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_ROWS)] = STIX_DEFAULT_ROWS,
    ) -> Response[Any]:
        chosen = view.filter
        start, end = _range(chosen.since, chosen.until)
        incidents = shared(await ctx.reads.query_incidents(IncidentQuery(
            since=start, until=end, sensors=chosen.sensors, addresses=chosen.addresses, networks=chosen.networks,
            limit=1000)))
        attackers = await rows(start, end, limit=limit, events=chosen)
        bundle = await asyncio.to_thread(stix_bundle, incidents=incidents, attackers=attackers, identity_name=identity,
                             generated_at=datetime.now(UTC))
        return Response(bundle, media_type=STIX_TYPE)

    @get("/api/v1/incidents/{incident_id:str}/stix", tags=["sharing"], opt=ANALYST, summary="STIX 2.1 bundle of one incident")
    async def stix_incident(incident_id: FromPath[str]) -> Response[Any]:
        incident, found = await incident_and_rows(incident_id)
        bundle = await asyncio.to_thread(stix_bundle, incidents=[incident], attackers=found, identity_name=identity,
                             generated_at=datetime.now(UTC))
        return Response(bundle, media_type=STIX_TYPE)

    @get("/api/v1/incidents/{incident_id:str}/misp", tags=["sharing"], opt=ANALYST, summary="MISP event (JSON) of one incident")
    async def misp_incident(incident_id: FromPath[str]) -> dict[str, Any]:
        incident, found = await incident_and_rows(incident_id)
        return await asyncio.to_thread(misp_event, incident=incident, attackers=found, generated_at=datetime.now(UTC))

    return [iocs, stix_range, stix_incident, misp_incident]
