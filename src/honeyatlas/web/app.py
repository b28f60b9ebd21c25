"""Application factories, one per role: `create_app` (one process: every route),
`create_web_app` (map, queries, live stream) and `create_ingest_app` (the ingest route).

Security headers are set on every response: the map page runs under a strict Content
Security Policy (no inline script, nothing from another origin), so even a string that
slipped past the front-end's text-only rendering could not run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from litestar import Litestar, Response, get
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
from honeyatlas.store import Receipts
from honeyatlas.web.api import WebContext, api_routes, ops_routes
from honeyatlas.web.errors import EXCEPTION_HANDLERS
from honeyatlas.web.incidents import incident_routes
from honeyatlas.web.live import live_route
from honeyatlas.web.sharing import sharing_routes

STATIC_DIR = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _secure(response: Response) -> Response:  # type: ignore[type-arg]
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@get("/", include_in_schema=False)
async def index() -> File:
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
    )


def _queries(context: WebContext) -> list[BaseRouteHandler]:
    """The map page, the query API, the exports and the live stream."""
    assert context.live is not None
    return [
        *api_routes(context),
        *incident_routes(context),
        *sharing_routes(context),
        live_route(context.live),
        index,
        create_static_files_router(path="/static", directories=[STATIC_DIR], name="static"),
    ]


def create_app(context: WebContext, ingest: IngestContext) -> Litestar:
    """One process (`--role all`): ingest, queries, map and live stream."""
    return _litestar([_ingest(ingest), *_queries(context)])


def create_web_app(context: WebContext) -> Litestar:
    """A web process: map, queries and live stream; no ingest route (sensors talk to ingest)."""
    return _litestar(_queries(context))


def create_ingest_app(context: WebContext, ingest: IngestContext) -> Litestar:
    """An ingest process: the ingest route, plus health and metrics for load balancers and
    Prometheus; no map and no queries."""
    return _litestar([_ingest(ingest), *ops_routes(context)])


def create_ops_app(context: WebContext) -> Litestar:
    """A worker: health and metrics only."""
    return _litestar(ops_routes(context))


def _litestar(handlers: list[BaseRouteHandler]) -> Litestar:
    return Litestar(
        route_handlers=handlers,
        after_request=_secure,
        exception_handlers=EXCEPTION_HANDLERS,  # store errors: 503 with the reason (web/errors.py)
        openapi_config=OpenAPIConfig(
            title="honeyatlas",
            version=__version__,
            description="Central service for honeypot and IDS streams: ingest, query, live map.",
            path="/api/v1",
            render_plugins=[JsonRenderPlugin()],
        ),
        debug=False,
    )
