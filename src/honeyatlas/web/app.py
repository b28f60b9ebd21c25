"""Application factory: `create_app(context)` returns the Litestar app with every route.

Security headers are set on every response: the map page runs under a strict Content
Security Policy (no inline script, nothing from another origin), so even a string that
slipped past the front-end's text-only rendering could not run.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Litestar, Response, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.response import File
from litestar.static_files import create_static_files_router

from honeyatlas import __version__
from honeyatlas.sources.http import ingest_route
from honeyatlas.web.api import WebContext, api_routes
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


def create_app(context: WebContext) -> Litestar:
    ingest = context.ingest_settings
    handlers = [
        ingest_route(
            pipeline=context.pipeline,
            registry=context.registry,
            store=context.store,
            metrics=context.metrics,
            max_body_bytes=ingest.max_body_bytes,
            max_decompressed_bytes=ingest.max_decompressed_bytes,
            max_records_per_request=ingest.max_records_per_request,
            max_in_flight_requests=ingest.max_in_flight_requests,
            idempotency=context.idempotency,
        ),
        *api_routes(context),
        *incident_routes(context),
        *sharing_routes(context),
        live_route(context.hub),
        index,
        create_static_files_router(path="/static", directories=[STATIC_DIR], name="static"),
    ]
    return Litestar(
        route_handlers=handlers,
        after_request=_secure,
        openapi_config=OpenAPIConfig(
            title="honeyatlas",
            version=__version__,
            description="Central service for honeypot and IDS streams: ingest, query, live map.",
            path="/api/v1",
            render_plugins=[JsonRenderPlugin()],
        ),
        debug=False,
    )
