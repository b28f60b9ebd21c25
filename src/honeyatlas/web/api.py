"""The JSON query API (`/api/v1/...`) and the Prometheus `/metrics` endpoint.

Handlers are built by `api_routes(context)` as closures over the service's components, so
there is no global state and tests can build as many apps as they like.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import AsyncIterator, Callable, Container
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get
from litestar.exceptions import PermissionDeniedException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.params import FromQuery, QueryParameter
from litestar.response import Stream

from honeyatlas import __version__, clock
from honeyatlas.access import Role
from honeyatlas.config import IngestConfig
from honeyatlas.enrichment.sensors import SensorDirectory
from honeyatlas.event import Event
from honeyatlas.metrics import Metrics
from honeyatlas.share.events import (
    events_csv,
    events_csv_head,
    events_csv_tail,
    events_json,
    events_json_head,
    events_json_tail,
)
from honeyatlas.sinks import LiveClients
from honeyatlas.store import Backlog, Counts, EventQuery, Store, TopItem
from honeyatlas.transforms.redact import PublicView
from honeyatlas.web.access import ADMIN, ANALYST, OPEN, PUBLIC
from honeyatlas.web.params import VIEW, Filtered, time_range


@dataclass(frozen=True)
class WebContext:
    """Everything the query side of the web layer may touch, handed over by the composition
    root. Only protocols: the same routes serve one process (DuckDB, the local hub) and a
    web role (PostgreSQL, a hub fed from the bus)."""

    registry: SensorDirectory
    store: Store | None  # None in an ingest process: it serves no queries and writes nothing
    backlog: Backlog  # what health reports as pending: the store's queue, or the bus's
    metrics: Metrics
    ingest_settings: IngestConfig
    formats: list[str]
    live: LiveClients | None = None  # None in an ingest process (no WebSocket)
    geoip_status: Callable[[], dict[str, Any]] | None = None  # None where nothing geolocates
    # Faults the service runs degraded with, by component ("disk", "store", "geoip"): health
    # says "degraded" and lists them (docs/reliability.md, Faults).
    faults: Callable[[], dict[str, str]] = dict
    role: str = "all"
    sharing_identity: str = "honeyatlas"  # who STIX and MISP exports say they come from
    # Known research scanners (`correlation.benign_networks`): labelled on their profile,
    # never exported as indicators.
    benign: Container[str] = ()
    export_min_confidence: float = 0.5  # `correlation.export_min_confidence`: campaigns below it are not exported
    public: PublicView | None = None  # the public view's redaction, when it is on
    started_monotonic: float = field(default_factory=time.monotonic)

    @property
    def reads(self) -> Store:
        """The store the query routes read; only apps with queries are built with one."""
        if self.store is None:
            raise RuntimeError("this process serves no queries (an ingest process)")
        return self.store


class PipelineCounts(msgspec.Struct):
    rejected: int
    dropped: int
    ignored: int
    refused_requests: int


class SummaryView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Without a window or filter, the live answer: `counts` and the top-N of the last 24 hours.
    With one: the window, its `total` and its top-N lists (store.WINDOW_TOP_DIMENSIONS)."""

    counts: Counts | None = None
    since: datetime | None = None
    until: datetime | None = None
    total: int | None = None  # events of the window and filter
    top: dict[str, list[TopItem]]
    pipeline: PipelineCounts  # this process's counters (in a cluster: see each ingest process's /metrics)
    generated_at: datetime


class EventPage(msgspec.Struct):
    events: list[Event]
    next_cursor: str | None


class HistogramBucket(msgspec.Struct, omit_defaults=True):
    start: datetime  # the bucket covers [start, start + bucket_seconds), cut by since and until
    count: int
    kinds: dict[str, int] | None = None  # with by_kind=true: events per kind (kinds with none left out)


class Histogram(msgspec.Struct):
    since: datetime
    until: datetime
    bucket_seconds: int
    buckets: list[HistogramBucket]  # every bucket from the one holding `since` to the one before `until`
    generated_at: datetime


MAX_HISTOGRAM_BUCKETS = 10_000
MAX_EVENTS_PAGE = 10_000
EXPORT_MAX_EVENTS = 100_000  # documented in docs/api.md
EXPORT_PAGE_EVENTS = 2_000
FILTERED = ("Takes the filter parameters (since, until, range, sensor, honeypot, kind, outcome, protocol, port, "
            "country, asn, src_ip; repeat one for any of), described in docs/api.md.")


class SensorView(msgspec.Struct):
    name: str
    honeypot: str
    label: str | None
    lat: float | None
    lon: float | None
    demo: bool
    revoked: bool
    created_at: datetime | None
    last_seen: datetime | None
    events_1h: int
    rate_per_minute: float
    rejected_1h: int  # records of this sensor kept in the dead-letter store in the last hour
    status: str  # active | silent | never_seen | revoked


class DeadLetterView(msgspec.Struct):
    ts: datetime
    source: str
    sensor: str | None
    format: str
    index: int
    reason: str
    raw: str


def encode_cursor(event: Event) -> str:
    return base64.urlsafe_b64encode(f"{event.ts.isoformat()}|{event.id}".encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
        ts_text, event_id = raw.split("|", 1)
        return clock.as_utc(datetime.fromisoformat(ts_text)), event_id  # ours are UTC: never overflows
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationException("invalid cursor: pass the next_cursor of a previous page unchanged") from exc


def api_routes(ctx: WebContext) -> list[BaseRouteHandler]:
    @get("/api/v1/events", tags=["query"], opt=ANALYST, dependencies=VIEW,
         summary="Stored events of a view, newest first (order=asc: oldest first, a replay), with cursor paging",
         description=FILTERED)
    async def events(
        view: Filtered,
        order: Annotated[Literal["desc", "asc"], QueryParameter(
            description="desc: newest first; asc: oldest first (replay a window)")] = "desc",
        # Up to 10,000 a page: a replay at 1000x reads a window page after page, and 1,000-event
        # pages made a 100,000-event replay take 30.6 s instead of 3.6 s (frontend/README.md).
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_EVENTS_PAGE)] = 100,
        cursor: FromQuery[str | None] = None,
    ) -> EventPage:
        query = EventQuery(filter=view.filter, order=order, limit=limit,
                           cursor=decode_cursor(cursor) if cursor else None)
        found = await ctx.reads.query_events(query)
        next_cursor = encode_cursor(found[-1]) if len(found) == limit else None
        return EventPage(events=found, next_cursor=next_cursor)

    @get("/api/v1/events/export", tags=["query"], opt=ANALYST, dependencies=VIEW,
         summary="The events of a view as CSV or JSON, streamed, at most `limit`",
         description=FILTERED + f" At most {EXPORT_MAX_EVENTS:,} events (`limit`); the header "
         "X-Honeyatlas-Export-Limit says the cap, and the end of the body whether it cut the export (JSON: "
         "`truncated`; CSV: a last line `# truncated: ...`). docs/api.md describes both formats.")
    async def export(
        view: Filtered,
        format: FromQuery[Literal["json", "csv"]] = "json",
        order: FromQuery[Literal["desc", "asc"]] = "desc",
        limit: Annotated[int, QueryParameter(ge=1, le=EXPORT_MAX_EVENTS)] = EXPORT_MAX_EVENTS,
    ) -> Stream:
        chosen = view.filter  # a bad value is a 400 before the stream starts
        as_csv = format == "csv"

        async def read(cursor: tuple[datetime, str] | None, count: int) -> list[Event]:
            return await ctx.reads.query_events(EventQuery(filter=chosen, order=order, cursor=cursor, limit=count))

        async def body() -> AsyncIterator[bytes]:
            """Page by page, each page read in a read slot of its own (a long export never holds
            one); at the cap, one more event read says whether the export was cut."""
            yield events_csv_head().encode() if as_csv else events_json_head(limit)
            cursor, sent = None, 0
            while sent < limit:
                page = await read(cursor, min(EXPORT_PAGE_EVENTS, limit - sent))
                if not page:
                    break
                yield events_csv(page).encode() if as_csv else events_json(page, first=sent == 0)
                sent += len(page)
                cursor = (page[-1].ts, page[-1].id)
            truncated = sent == limit and bool(await read(cursor, 1))
            yield events_csv_tail(truncated, limit).encode() if as_csv else events_json_tail(truncated)

        media = "text/csv; charset=utf-8" if as_csv else "application/json"
        return Stream(body(), media_type=media, headers={
            "X-Honeyatlas-Export-Limit": str(limit),
            "Content-Disposition": f'attachment; filename="honeyatlas-events.{format}"',
        })

    @get("/api/v1/stats/summary", tags=["query"], opt=PUBLIC, dependencies=VIEW,
         summary="Counts for 1 m / 1 h / 24 h and top-N lists (24 h); with a window or filter, that view's total "
                 "and top-N lists",
         description="Exact, from rollups the store keeps up to date every few seconds plus the newest events, "
                     "and from the raw events where a filter asks more than the rollups carry. " + FILTERED)
    async def summary(request: Request[Any, Any, Any], view: Filtered,
                      top: Annotated[int, QueryParameter(ge=1, le=100)] = 10) -> SummaryView:
        now = datetime.now(UTC)
        public = request.state.principal is None and ctx.public is not None  # the public view
        counted = PipelineCounts(
            rejected=int(ctx.metrics.total("honeyatlas_records_rejected_total")),
            dropped=int(ctx.metrics.total("honeyatlas_records_dropped_total")),
            ignored=int(ctx.metrics.total("honeyatlas_records_ignored_total")),
            refused_requests=int(ctx.metrics.total("honeyatlas_requests_refused_total")),
        )
        if not view.filtered:  # the live page's answer
            found = await ctx.reads.summary(now, top)
            tops = ctx.public.top(found.top) if public and ctx.public else found.top
            return SummaryView(counts=found.counts, top=tops, pipeline=counted, generated_at=now)
        if public and (view.unkinded.sensors or view.unkinded.addresses or view.unkinded.networks):
            raise PermissionDeniedException("sensor and src_ip filters need the analyst audience: sign in")
        start, end = time_range(view.unkinded.since, view.unkinded.until, default_span=timedelta(hours=24), now=now)
        windowed = await ctx.reads.window_summary(view.filter.window(start, end), top)
        tops = ctx.public.top(windowed.top) if public and ctx.public else windowed.top
        return SummaryView(since=start, until=end, total=windowed.total, top=tops, pipeline=counted,
                           generated_at=now)

    @get(
        "/api/v1/stats/histogram", tags=["query"], dependencies=VIEW, opt=ANALYST,
        summary="Events per time bucket (optionally per kind), exact",
        description=(
            "Buckets are aligned on multiples of bucket_seconds (a multiple of 60) since the Unix epoch and "
            f"cover since <= ts < until (default: the last 24 hours); at most {MAX_HISTOGRAM_BUCKETS} buckets. "
            "Counted from per-minute rollups plus the raw events at both ends, so a day costs milliseconds, "
            "when the filter restricts at most the kind; from the raw events of the window otherwise. " + FILTERED
        ),
    )
    async def histogram(
        view: Filtered,
        bucket_seconds: Annotated[int, QueryParameter(ge=60, le=366 * 86400)] = 3600,
        by_kind: FromQuery[bool] = False,
    ) -> Histogram:
        now = datetime.now(UTC)
        if bucket_seconds % 60:
            raise ValidationException("bucket_seconds must be a multiple of 60")
        chosen = view.filter
        start, end = time_range(chosen.since, chosen.until, default_span=timedelta(hours=24), now=now)
        width = timedelta(seconds=bucket_seconds)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        first = epoch + (start - epoch) // width * width
        count = -((first - end) // width)  # buckets from `first` until `end`, the last one partial
        if count > MAX_HISTOGRAM_BUCKETS:
            raise ValidationException(
                f"{count} buckets asked, at most {MAX_HISTOGRAM_BUCKETS}: widen bucket_seconds or narrow since/until"
            )
        buckets = [HistogramBucket(start=first + i * width, count=0, kinds={} if by_kind else None)
                   for i in range(count)]
        for bucket_start, kind, n in await ctx.reads.histogram(start, end, bucket_seconds, by_kind, chosen):
            bucket = buckets[(bucket_start - first) // width]
            bucket.count += n
            if bucket.kinds is not None and kind is not None:
                bucket.kinds[kind] = n
        return Histogram(since=start, until=end, bucket_seconds=bucket_seconds, buckets=buckets, generated_at=now)

    @get("/api/v1/sensors", tags=["sensors"], opt=ANALYST,
         summary="Registered sensors: last seen, event rate, rejected records, status (active, silent...)")
    async def sensors() -> dict[str, list[SensorView]]:
        now = datetime.now(UTC)
        activity = await ctx.reads.sensor_activity(now)
        silent_after = ctx.ingest_settings.sensor_silent_after_seconds
        views = []
        for s in ctx.registry.list():
            seen = activity.get(s.name)
            last_seen = seen.last_seen if seen else None
            if s.revoked:
                status = "revoked"
            elif last_seen is None:
                status = "never_seen"
            elif (now - last_seen).total_seconds() > silent_after:
                status = "silent"
            else:
                status = "active"
            views.append(
                SensorView(
                    name=s.name, honeypot=s.honeypot, label=s.label, lat=s.lat, lon=s.lon, demo=s.demo,
                    revoked=s.revoked, created_at=s.created_at,
                    last_seen=last_seen,
                    events_1h=seen.events_1h if seen else 0,
                    rate_per_minute=round(seen.events_1h / 60, 3) if seen else 0.0,
                    rejected_1h=seen.rejected_1h if seen else 0,
                    status=status,
                )
            )
        return {"sensors": views}

    @get("/api/v1/rejected", tags=["query"], opt=ADMIN, summary="Most recent records kept in the dead-letter store")
    async def rejected(limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100) -> dict[str, list[DeadLetterView]]:
        letters = await ctx.reads.dead_letters(limit)
        return {
            "rejected": [
                DeadLetterView(
                    ts=d.ts, source=d.source, sensor=d.sensor, format=d.format, index=d.index, reason=d.reason,
                    raw=d.raw[:2048].decode("utf-8", "replace"),
                )
                for d in letters
            ]
        }

    return [events, export, summary, histogram, sensors, rejected, *ops_routes(ctx)]


def ops_routes(ctx: WebContext) -> list[BaseRouteHandler]:
    """Health and metrics: served by every role."""

    @get("/api/v1/health", tags=["ops"], opt=OPEN, summary="Liveness and component status")
    async def health(request: Request[Any, Any, Any]) -> dict[str, Any]:
        faults = ctx.faults()
        found = {
            "status": "degraded" if faults else "ok",
            "faults": faults,
            "version": __version__,
            "uptime_seconds": round(time.monotonic() - ctx.started_monotonic, 1),
            "role": ctx.role,
            "store": {
                "schema_version": await ctx.store.schema_version() if ctx.store is not None else None,
                "pending_events": ctx.backlog.pending_events,
            },
            "live": {"clients": ctx.live.client_count if ctx.live is not None else 0},
            "geoip": ctx.geoip_status() if ctx.geoip_status is not None else None,
            "formats": ctx.formats,
        }
        principal = request.state.principal
        # Open to anyone (load balancers): file paths (the data directory, GeoIP files) only
        # for admins; everyone else reads "<path>" where one was.
        return found if principal is not None and principal.role is Role.ADMIN else _without_paths(found)

    @get("/metrics", tags=["ops"], opt=ANALYST, summary="Prometheus text exposition", media_type="text/plain; version=0.0.4")
    async def metrics() -> Response[str]:
        return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")

    return [health, metrics]


_PATH = re.compile(r"(?<![\w])(?:\.{1,2}|[A-Za-z]:)?(?:[/\\][\w.@+~-]+)+[/\\]?")


def _without_paths(value: Any) -> Any:
    """`value` with every file path in its strings replaced by "<path>"."""
    if isinstance(value, str):
        return _PATH.sub("<path>", value)
    if isinstance(value, dict):
        return {key: _without_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_paths(item) for item in value]
    return value
