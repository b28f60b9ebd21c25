"""Application factories, one per role: `create_app` (one process: every route),
`create_web_app` (map, queries, live stream) and `create_ingest_app` (the ingest route).

Every route declares its audience (web/access.py); one guard enforces it for the app.
Security headers are set on every response: the map page runs under a strict Content
Security Policy (no inline script, nothing from another origin), so even a string that
slipped past the front-end's text-only rendering could not run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from litestar import Litestar, Router, get
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.response import File
from litestar.static_files import create_static_files_router

from honeyatlas import __version__
from honeyatlas.config import IngestConfig
from honeyatlas.enrichment.sensors import SensorDirectory
from honeyatlas.metrics import Metrics
from honeyatlas.pipeline import Ingest
from honeyatlas.sources.http import ingest_route
from honeyatlas.sources.idempotency import IdempotencyStore
from honeyatlas.sources.rates import SensorRates
from honeyatlas.store import Receipts
from honeyatlas.web.access import OPEN, AccessPolicy
from honeyatlas.web.api import WebContext, api_routes, ops_routes
from honeyatlas.web.errors import EXCEPTION_HANDLERS, refuse_nul
from honeyatlas.web.incidents import incident_routes
from honeyatlas.web.live import live_route
from honeyatlas.web.login import login_routes
from honeyatlas.web.sharing import sharing_routes

STATIC_DIR = Path(__file__).parent / "static"


@get(["/", "/attackers/{ip:str}", "/incidents/{incident_id:str}", "/malware/{sha256:str}"],
     include_in_schema=False, opt=OPEN)
async def index() -> File:
    """The page shell, also at the shareable addresses of an attacker, an incident and a
    payload: the page reads the path and asks the API (which checks who asks) for the data."""
    return File(STATIC_DIR / "index.html", content_disposition_type="inline", media_type="text/html")


@dataclass(frozen=True)
class IngestContext:
    """What the HTTP ingest route needs: the pipeline, who may send, past answers."""

    pipeline: Ingest
    registry: SensorDirectory
    receipts: Receipts
    metrics: Metrics
    settings: IngestConfig
    idempotency: IdempotencyStore | None = None


def _ingest(ingest: IngestContext) -> HTTPRouteHandler:
    settings = ingest.settings
    return ingest_route(
        pipeline=ingest.pipeline,
        registry=ingest.registry,
        receipts=ingest.receipts,
        metrics=ingest.metrics,
        max_body_bytes=settings.max_body_bytes,
        max_decompressed_bytes=settings.max_decompressed_bytes,
        max_records_per_request=settings.max_records_per_request,
        max_in_flight_requests=settings.max_in_flight_requests,
        retry_after_seconds=settings.retry_after_seconds,
        idempotency=ingest.idempotency,
        rates=SensorRates(events_per_second=settings.sensor_events_per_second,
                          burst_events=settings.sensor_burst_events),
    )


def _queries(context: WebContext, access: AccessPolicy) -> list[BaseRouteHandler]:
    """The map page, the query API, the exports, the live stream and the login routes."""
    assert context.live is not None
    return [
        *api_routes(context),
        *incident_routes(context),
        *sharing_routes(context),
        *login_routes(access),
        live_route(context.live),
        index,
        create_static_files_router(path="/static", directories=[STATIC_DIR], name="static", opt=OPEN),
    ]


def create_app(context: WebContext, ingest: IngestContext, access: AccessPolicy) -> Litestar:
    """One process (`--role all`): ingest, queries, map and live stream."""
    return _litestar([_ingest(ingest), *_queries(context, access)], access)


def create_web_app(context: WebContext, access: AccessPolicy) -> Litestar:
    """A web process: map, queries and live stream; no ingest route (sensors talk to ingest)."""
    return _litestar(_queries(context, access), access)


def create_ingest_app(context: WebContext, ingest: IngestContext, access: AccessPolicy) -> Litestar:
    """An ingest process: the ingest route, plus health and metrics for load balancers and
    Prometheus; no map and no queries."""
    return _litestar([_ingest(ingest), *ops_routes(context)], access)


def create_ops_app(context: WebContext, access: AccessPolicy) -> Litestar:
    """A worker: health and metrics only."""
    return _litestar(ops_routes(context), access)


def _litestar(handlers: list[BaseRouteHandler], access: AccessPolicy) -> Litestar:
    """Every route passes `access.guard` (its declared audience, the Host allow-list, the
    live stream's Origin); every response gets the security headers (a strict Content
    Security Policy: no inline script, nothing from another origin) from `access.before_send`."""
    return Litestar(
        route_handlers=handlers,
        guards=[access.guard],
        before_send=[access.before_send],
        exception_handlers=EXCEPTION_HANDLERS,  # store errors: 503 with the reason (web/errors.py)
        before_request=refuse_nul,  # 400: no stored value holds a NUL (web/errors.py)
        openapi_config=OpenAPIConfig(
            title="honeyatlas",
            version=__version__,
            description="Central service for honeypot and IDS streams: ingest, query, live map.",
            # The document is open: it describes routes, not data (and the fuzz tests read it).
            # Its own routes (/api/v1, /api/v1/{path}: an HTML 404 for anything else) are
            # left out of the document: they serve it, they are not the API.
            openapi_router=Router(path="/api/v1", route_handlers=[], opt=OPEN, include_in_schema=False),
            render_plugins=[JsonRenderPlugin()],
        ),
        debug=False,
    )
