"""http source: `POST /api/v1/ingest/{format}` with a sensor's bearer token.

Delivery: at-least-once. The response is sent only after every accepted event and every
rejected record (dead-letter store) is durably committed; a client that gets no 200 must
retry. Refusals, in the order they are checked: 404 unknown format, 429 with Retry-After
when the server is saturated (too many ingest requests in flight, or the store queue full:
checked before the token and before the body is read, so a refusal costs its headers, never
its decoding), 401 bad token, 403 a format the sensor may not send (its honeypot's formats
and `auto` unless `honeyatlas sensor set NAME --formats` says otherwise), 413 body or decompressed body or record count over the limit
(a body up to twice `ingest.max_body_bytes` is read and dropped first, so that the client,
still sending, gets the 413 and not a connection reset),
400 undecodable body (kept as a dead letter), 429 when the sensor is over its events-a-second
rate (sources/rates.py; Retry-After: until its bucket refills), 429 again when the batch does not fit, 503
with Retry-After when the store (or, in an ingest process, the bus) fails, and with the
reason when ingest is unavailable for a while (free disk below `storage.min_free_disk_mib`,
the server shutting down: checked with the saturation, before the body is read). Every Retry-After
is `ingest.retry_after_seconds` (a full pipeline's 429 carries the same value, from the
pipeline); senders back off exponentially above it, so one value serves all three refusals.

With an `Idempotency-Key` header (at most 128 characters) a stored batch is remembered, its
answer committed with its events (sources/idempotency.py): a retry with the same key and body gets the first 200 again, marked
`Idempotent-Replayed: true`, without being stored twice; 409 + Retry-After while the first
request with that key is still running, 422 when the key was used with another body.

The body is NDJSON (one record per line) or one JSON array of records, optionally sent with
`Content-Encoding: gzip`. A line that is not JSON is rejected alone, by index.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.exceptions import InternalServerException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from honeyatlas.access import Audience
from honeyatlas.enrichment.sensors import Sensor, SensorDirectory
from honeyatlas.errors import BusError, HoneyatlasError, IngestUnavailable, PipelineFull, StoreError
from honeyatlas.event import RAW_LIMIT_BYTES
from honeyatlas.metrics import Metrics
from honeyatlas.pipeline import Ingest, IngestResult, RawRecord
from honeyatlas.sources.framing import decode_line
from honeyatlas.sources.idempotency import (
    MAX_KEY_LENGTH,
    IdempotencyStore,
    KeyConflict,
    StoredResponse,
    body_digest,
)
from honeyatlas.sources.rates import SensorRates
from honeyatlas.store import Receipt, Receipts

SOURCE = "http"
# Bodies larger than this are decompressed and framed in a worker thread: framing 100,000
# NDJSON lines took ~1-4 s of Python, which on the event loop stalled every other connection
# for as long (docs/performance.md, "Big batches"). The thread still takes the GIL, but the
# interpreter hands it back to the loop every few milliseconds. Smaller bodies (a forwarder
# sends ~100 records, ~50 KB) stay on the loop: a thread hop costs more than framing them.
THREAD_FRAMING_BYTES = 256 * 1024
_decoder = msgspec.json.Decoder()  # for whole JSON-array bodies


class BodyError(Exception):
    """A body refused with `status` and `reason`; `label` is the metric reason (default
    `http_<status>`)."""

    def __init__(self, status: int, reason: str, label: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.label = label or f"http_{status}"


def decompress(body: bytes, max_bytes: int) -> bytes:
    """Gunzip with a bound on the output, so a small bomb cannot fill memory."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise BodyError(400, f"body is not valid gzip: {exc}") from exc
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise BodyError(413, f"decompressed body exceeds {max_bytes} bytes")
    if not inflater.eof:
        raise BodyError(400, "body is not valid gzip: truncated stream")
    return out


def frame_records(body: bytes, max_records: int, input_kind: str = "json") -> list[RawRecord]:
    """Split a body into records: a JSON array, or one record per line (blank lines skipped).

    `input_kind` is the adapter's: "json" lines are decoded (a bad line is rejected alone),
    "text" lines are kept as text, "auto" tries JSON and falls back to text.
    """
    stripped = body.lstrip()
    if not stripped:
        raise BodyError(400, "empty body: send NDJSON lines or a JSON array of records")
    if stripped[:1] == b"[":
        try:
            values = _decoder.decode(stripped)
        except msgspec.DecodeError as exc:
            raise BodyError(400, f"body starts with '[' but is not a valid JSON array: {exc}") from exc
        if len(values) > max_records:
            raise BodyError(413, f"{len(values)} records exceed the limit of {max_records} per request")
        return [RawRecord(i, msgspec.json.encode(v), v) for i, v in enumerate(values)]
    records: list[RawRecord] = []
    for line in body.split(b"\n"):
        line = line.strip()
        if not line:
            continue
        if len(records) >= max_records:
            raise BodyError(413, f"more than {max_records} records in one request")
        records.append(decode_line(line, len(records), input_kind))
    if all(r.error is not None for r in records):
        raise BodyError(400, "no line of the body is valid JSON: send NDJSON lines or a JSON array")
    return records


class InFlight:
    """Ingest requests past authentication and not answered yet, and their bound (one event
    loop: no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    @property
    def full(self) -> bool:
        return self.count >= self.limit

    def __enter__(self) -> None:
        self.count += 1

    def __exit__(self, *exc: object) -> None:
        self.count -= 1


def _result_body(result: IngestResult) -> dict[str, Any]:
    return {
        "accepted": result.accepted,
        "events": result.events,
        "rejected": [{"index": r.index, "reason": r.reason} for r in result.rejected],
        "ignored": [{"index": r.index, "reason": r.reason} for r in result.ignored],
        "duplicates": result.duplicates,
    }


def _replay(body: bytes) -> Response[Any]:
    return Response(body, status_code=200, media_type="application/json", headers={"Idempotent-Replayed": "true"})


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> Response[dict[str, str]]:
    return Response({"error": reason}, status_code=status, headers=headers)


def ingest_route(
    *,
    pipeline: Ingest,
    registry: SensorDirectory,
    receipts: Receipts,
    metrics: Metrics,
    max_body_bytes: int,
    max_decompressed_bytes: int,
    max_records_per_request: int,
    idempotency: IdempotencyStore | None = None,
    max_in_flight_requests: int = 32,
    retry_after_seconds: int = 1,
    rates: SensorRates | None = None,
) -> HTTPRouteHandler:
    """Build the ingest handler bound to this service's components; `rates` limits each
    sensor's events a second (None: no limit)."""
    in_flight = InFlight(max_in_flight_requests)
    busy = {"Retry-After": str(retry_after_seconds)}
    metrics.gauge("honeyatlas_ingest_requests_in_flight", lambda: [((("source", SOURCE),), in_flight.count)])

    @post(
        "/api/v1/ingest/{fmt:str}",
        request_max_body_size=None,  # enforced below, with a 413 that says the limit
        summary="Ingest a batch of raw records from a sensor",
        description=(
            "NDJSON or a JSON array of raw records in the given format, optionally gzip-encoded. "
            "Answers only after the accepted events are durably stored."
        ),
        tags=["ingest"],
        opt={"audience": Audience.INGEST},  # the sensor token is checked below
    )
    async def ingest(request: Request[Any, Any, Any], fmt: FromPath[str]) -> Response[Any]:
        if fmt not in pipeline.formats():
            metrics.inc("honeyatlas_requests_refused_total", source=SOURCE, reason="unknown_format")
            known = ", ".join(pipeline.formats())
            return _error(404, f"unknown format {fmt[:64]!r}; known formats: {known}")
        # Saturation first: under overload most requests end here, so this refusal must not
        # even pay for the token check (a SQLite lookup and a SHA-256).
        if in_flight.full:
            metrics.inc("honeyatlas_requests_refused_total", source=SOURCE, reason="too_many_in_flight")
            return _error(429, f"{in_flight.count} ingest requests in flight; retry later", busy)
        try:
            pipeline.admit(SOURCE, 1)  # counts its refusal itself
        except PipelineFull:
            return _error(429, "the pipeline is full; retry later", busy)
        except IngestUnavailable as exc:
            return _error(503, exc.reason, busy)
        token = bearer_token(request)
        sensor = registry.authenticate(token) if token else None
        if sensor is None:
            metrics.inc("honeyatlas_requests_refused_total", source=SOURCE, reason="unauthorized")
            return _error(
                401,
                "missing, unknown or revoked sensor token: send Authorization: Bearer <token>",
                {"WWW-Authenticate": 'Bearer realm="honeyatlas ingest"'},
            )
        if fmt not in sensor.allowed_formats(pipeline.formats()):
            metrics.inc("honeyatlas_requests_refused_total", source=SOURCE, reason="format_not_allowed")
            allowed = ", ".join(sorted(sensor.allowed_formats(pipeline.formats())))
            return _error(403, f"sensor {sensor.name!r} may not send format {fmt!r} (allowed: {allowed}); "
                               f"see `honeyatlas sensor set {sensor.name} --formats`")
        with in_flight:
            return await _admitted(request, fmt, sensor)

    async def _admitted(request: Request[Any, Any, Any], fmt: str, sensor: Sensor) -> Response[Any]:
        key = request.headers.get("idempotency-key") if idempotency is not None else None
        if key is not None and not 0 < len(key) <= MAX_KEY_LENGTH:
            metrics.inc("honeyatlas_requests_refused_total", source=SOURCE, reason="bad_idempotency_key")
            return _error(400, f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
        try:
            body = await _read_body(request, max_body_bytes)
        except BodyError as exc:
            metrics.inc("honeyatlas_requests_refused_total", source=SOURCE, reason=exc.label)
            return _error(exc.status, exc.reason)
        if key is None or idempotency is None:
            return await _process(request, fmt, sensor, body)
        digest = body_digest(body)
        try:
            stored = idempotency.check(sensor.name, key, digest)
        except KeyConflict as exc:
            metrics.inc("honeyatlas_requests_refused_total", source=SOURCE, reason=f"idempotency_{exc.status}")
            return _error(exc.status, exc.reason, busy if exc.status == 409 else None)
        if stored is not None:
            return _replay(stored.body)
        try:
            # The SQLite key store is a cache; the receipt committed with the events is the truth,
            # so a server killed between the two still answers a retry from the receipt.
            committed = await receipts.find_receipt(sensor.name, key)
            if committed is not None:
                if committed.digest != digest:
                    metrics.inc("honeyatlas_requests_refused_total", source=SOURCE, reason="idempotency_422")
                    return _error(422, "Idempotency-Key was already used with a different body")
                idempotency.remember(sensor.name, key, digest, StoredResponse(200, committed.response))
                return _replay(committed.response)

            def receipt(result: IngestResult) -> Receipt:
                return Receipt(sensor=sensor.name, key=key, digest=digest,
                               response=msgspec.json.encode(_result_body(result)))

            response = await _process(request, fmt, sensor, body, receipt, b"%s|%s|%s" % (
                sensor.name.encode(), key.encode("utf-8", "surrogatepass"), digest))
            if response.status_code == 200:
                idempotency.remember(
                    sensor.name, key, digest, StoredResponse(200, msgspec.json.encode(response.content))
                )
            return response
        finally:
            idempotency.release(sensor.name, key)

    def _records_of(body: bytes, gzipped: bool, input_kind: str) -> list[RawRecord]:
        data = decompress(body, max_decompressed_bytes) if gzipped else body
        return frame_records(data, max_records_per_request, input_kind)

    async def _process(
        request: Request[Any, Any, Any],
        fmt: str,
        sensor: Sensor,
        body: bytes,
        receipt: Callable[[IngestResult], Receipt] | None = None,
        identity: bytes | None = None,
    ) -> Response[Any]:
        gzipped = request.headers.get("content-encoding", "").lower() in ("gzip", "x-gzip")
        try:
            if len(body) > THREAD_FRAMING_BYTES:  # big: off the event loop (see the constant)
                records = await asyncio.to_thread(_records_of, body, gzipped, pipeline.input_kind(fmt))
            else:
                records = _records_of(body, gzipped, pipeline.input_kind(fmt))
        except BodyError as exc:
            metrics.inc("honeyatlas_requests_refused_total", source=SOURCE, reason=exc.label)
            if exc.status == 400:  # kept as a dead letter (index -1: the whole body), capped by the pipeline
                with contextlib.suppress(PipelineFull, HoneyatlasError):
                    await pipeline.ingest(source=SOURCE, fmt=fmt, sensor=sensor,
                                          records=[RawRecord(-1, body[: RAW_LIMIT_BYTES * 4], error=exc.reason)])
            return _error(exc.status, exc.reason)
        wait = rates.take(sensor, len(records)) if rates is not None else 0.0
        if wait:
            metrics.inc("honeyatlas_requests_refused_total", source=SOURCE, reason="sensor_rate")
            metrics.inc("honeyatlas_sensor_rate_limited_total", sensor=sensor.name)
            retry = SensorRates.retry_after(wait)
            return _error(429, f"sensor {sensor.name!r} is over its rate of {rates.limits(sensor)[0]:g} events/s "
                               f"(retry in {retry} s)", {"Retry-After": str(retry)})
        try:
            pipeline.admit(SOURCE, len(records))
            result = await pipeline.ingest(source=SOURCE, fmt=fmt, sensor=sensor, records=records, receipt=receipt,
                                           identity=identity)
        except PipelineFull as exc:
            return _error(429, str(exc), {"Retry-After": str(exc.retry_after_seconds)})
        except IngestUnavailable as exc:  # counted by the pipeline
            return _error(503, exc.reason, {"Retry-After": str(exc.retry_after_seconds)})
        except (StoreError, BusError) as exc:
            metrics.inc("honeyatlas_requests_refused_total", source=SOURCE, reason="store_error")
            return _error(503, f"not stored, retry later: {exc}", busy)
        return Response(_result_body(result), status_code=200)

    return ingest


async def _read_body(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The body, or a 413 when it is over `limit` bytes.

    A body over the limit by at most `limit` more bytes is read to its end and dropped before
    the 413 (memory: still at most `limit`): answering while the client is still sending
    leaves unread bytes behind, the server then closes with a TCP reset, and clients that
    finish sending before they read (Python's urllib) report the reset instead of the 413. A longer body is not worth
    reading: it gets its 413 at once, and such a client sees a reset."""
    declared = request.headers.get("content-length")
    declared = declared if declared is not None and declared.isdigit() else None
    too_large = BodyError(413, f"body {f'of {declared} bytes ' if declared else ''}exceeds the limit of {limit} bytes")
    drain_limit = 2 * limit
    if declared is not None and int(declared) > drain_limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limit:
                chunks.append(chunk)
            elif size > drain_limit:
                break
            else:
                chunks.clear()
    except InternalServerException as exc:  # Litestar's "client disconnected prematurely"
        # The connection ended inside the body (the client went away, or was closed at a
        # deadline): nothing to store, nobody to answer; counted so that it is not silent.
        raise BodyError(400, f"the body ended after {size} bytes: {exc.detail}", "body_incomplete") from exc
    if size > limit:
        raise too_large
    return b"".join(chunks)
