"""hpfeeds source: an hpfeeds endpoint (the broker side) that honeypots publish to directly.

A honeypot's hpfeeds output (cowrie `hpfeeds3`, dionaea, glastopf, OpenCanary, ...) connects
here as it would to an hpfeeds broker: it gets OP_INFO with a fresh 4-byte nonce, must send
OP_AUTH first (`SHA1(nonce ‖ secret)`, checked against the sensor registry in constant time),
then publishes. Every refusal uses the reference broker's exact OP_ERROR text, closes the
connection and is counted in `honeyatlas_requests_refused_total{source="hpfeeds",reason}`.
Subscribing is refused: this endpoint only ingests (`sources/hpfeeds_subscriber.py` reads
from an existing broker instead). After `honeyatlas sensor rotate` both the new secret and the
replaced one log in until the grace ends; `honeyatlas sensor revoke` also ends the sensor's
open connections within about a second (`reason="sensor_revoked"`).

Delivery: best-effort. hpfeeds has no acknowledgement, so a publisher never learns whether
a message was stored; messages in a batch not yet handed to the store are lost if the
process dies. Messages are batched (`max_batch_records`, `max_batch_bytes`, or
`max_batch_delay_seconds`, whichever comes first) into one `Ingest.ingest` call per
(sensor, format). While a connection's batch is being stored, or the pipeline is full,
nothing more is read from that connection: the kernel buffers fill and TCP pushes back on
the publisher, so memory stays bounded (one batch, one frame and one read buffer per
connection, `max_connections` connections, at most `max_connections_per_address` of them
from one client address: more are closed at once and counted in
`honeyatlas_connections_refused_total{listener="hpfeeds",reason="per_address_limit"}`).

The channel names the format (`DEFAULT_CHANNEL_FORMATS`, overridable; others are `auto`);
binary channels (malware files, `glastopf.files`) are counted as ignored, never parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import hmac
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Mapping, Sequence

from honeyatlas.adapters.detect import AUTO
from honeyatlas.enrichment.sensors import Sensor, SensorDirectory
from honeyatlas.errors import ConfigError, HoneyatlasError, PipelineFull
from honeyatlas.metrics import Metrics
from honeyatlas.pipeline import Ingest
from honeyatlas.sources.framing import decode_line
from honeyatlas.sources.hpfeeds_protocol import (
    DIGEST_BYTES,
    Auth,
    Decoder,
    Error,
    Info,
    Message,
    ProtocolError,
    Publish,
    Subscribe,
    Unsubscribe,
    auth_digest,
    encode,
)
from honeyatlas.sources.limits import AddressLimiter
from honeyatlas.store.registry import ANY_CHANNEL
from honeyatlas.tasks import cancel_and_wait

SOURCE = "hpfeeds"
READ_CHUNK_BYTES = 64 * 1024
REVOCATION_CHECK_SECONDS = 1.0
log = logging.getLogger(__name__)

DEFAULT_CHANNEL_FORMATS: dict[str, str] = {
    "cowrie.sessions": "cowrie-sessions",
    "kippo.sessions": "cowrie-sessions",
    "dionaea.connections": "dionaea-connections",
    "dionaea.capture": "dionaea-capture",
    "glastopf.events": "glastopf",
    "conpot.events": "conpot",
    "snort.alerts": "snort-hpfeeds",
    "suricata.events": "suricata-hpfeeds",
    "opencanary.events": "opencanary",
}
# Channels whose payload is not a JSON record (shell-style patterns).
DEFAULT_BINARY_CHANNELS: tuple[str, ...] = ("mwbinary.*", "glastopf.files")


class ChannelRouter:
    """Channel name -> format name, or None for a binary channel that is not parsed."""

    def __init__(
        self, overrides: Mapping[str, str] | None = None, binary_channels: Sequence[str] = DEFAULT_BINARY_CHANNELS
    ) -> None:
        self._formats = {**DEFAULT_CHANNEL_FORMATS, **(overrides or {})}
        self._binary = tuple(binary_channels)

    def check(self, formats: Sequence[str], key: str) -> None:
        """Fail at start, naming the setting, when a channel maps to a format that does not exist."""
        for channel, fmt in self._formats.items():
            if fmt not in formats:
                raise ConfigError(f"{key}.{channel}", f"unknown format {fmt!r}; known formats: {', '.join(formats)}")

    def format_for(self, channel: str) -> str | None:
        if channel in self._formats:
            return self._formats[channel]
        if any(fnmatch.fnmatchcase(channel, pattern) for pattern in self._binary):
            return None
        return AUTO


class PayloadBatcher:
    """Collects payloads and hands them to the pipeline in batches, one call per (sensor, format).

    Used by one coroutine at a time (a connection or the subscriber), so it needs no lock.
    `flush()` waits, retrying, while the pipeline is full: the caller reads nothing
    meanwhile, which is the backpressure.
    """

    def __init__(
        self,
        *,
        pipeline: Ingest,
        metrics: Metrics,
        source: str,
        max_records: int,
        max_bytes: int,
        max_delay_seconds: float,
        max_full_wait_seconds: float = 1.0,
    ) -> None:
        self._pipeline = pipeline
        self._metrics = metrics
        self._source = source
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._max_delay = max_delay_seconds
        self._max_full_wait = max_full_wait_seconds
        self._groups: dict[tuple[str, str], tuple[Sensor, list[bytes]]] = {}
        self._records = 0
        self._bytes = 0
        self._first_at: float | None = None

    @property
    def pending(self) -> int:
        return self._records

    @property
    def full(self) -> bool:
        return self._records >= self._max_records or self._bytes >= self._max_bytes

    def deadline(self) -> float | None:
        """The monotonic time by which the pending payloads must be flushed, or None."""
        return None if self._first_at is None else self._first_at + self._max_delay

    def add(self, sensor: Sensor, fmt: str, payload: bytes) -> None:
        group = self._groups.setdefault((sensor.name, fmt), (sensor, []))
        group[1].append(payload)
        self._records += 1
        self._bytes += len(payload)
        if self._first_at is None:
            self._first_at = time.monotonic()

    async def flush(self, *, final: bool = False) -> None:
        """Ingest everything pending. `final`: one try only; what the pipeline cannot take is
        dropped and counted (used when the connection or the service is going away)."""
        groups = list(self._groups.items())
        self._groups = {}
        self._records = self._bytes = 0
        self._first_at = None
        for position, ((_, fmt), (sensor, payloads)) in enumerate(groups):
            try:
                admitted = await self._admit(len(payloads), final)
            except asyncio.CancelledError:  # stopped while waiting: keep them for the final flush
                for (_, kept_fmt), (kept_sensor, kept) in groups[position:]:
                    for payload in kept:
                        self.add(kept_sensor, kept_fmt, payload)
                raise
            if not admitted:
                self._drop(len(payloads), "pipeline_full_at_close")
                continue
            kind = self._pipeline.input_kind(fmt)
            records = [decode_line(payload.strip(), i, kind) for i, payload in enumerate(payloads)]
            try:
                await self._pipeline.ingest(source=self._source, fmt=fmt, sensor=sensor, records=records)
            except HoneyatlasError as exc:  # best-effort source: nobody to tell, so count and go on
                log.warning("hpfeeds: %d records from %s not stored: %s", len(records), sensor.name, exc)
                self._drop(len(records), "store_error")

    async def _admit(self, count: int, final: bool) -> bool:
        """Wait until the pipeline admits `count` records; False when `final` and it is full."""
        wait = 0.05
        while True:
            try:
                self._pipeline.admit(self._source, count)
                return True
            except PipelineFull as exc:
                if final:
                    return False
                await asyncio.sleep(min(wait, exc.retry_after_seconds, self._max_full_wait))
                wait *= 2

    def _drop(self, count: int, reason: str) -> None:
        self._metrics.inc("honeyatlas_records_dropped_total", count, source=self._source, reason=reason)


def _keepalive(writer: asyncio.StreamWriter) -> None:
    """Notice dead peers (sensors behind NAT go away silently), as the reference broker does."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 6)


class _Refused(Exception):
    """End a connection: `reason` is the metric label, `error` the OP_ERROR text (None: send nothing)."""

    def __init__(self, reason: str, error: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error


class MessageReader:
    """Messages from one stream: reads only when the decoder has no complete message."""

    def __init__(self, reader: asyncio.StreamReader, decoder: Decoder) -> None:
        self._reader = reader
        self._decoder = decoder

    async def next(self, timeout: float | None) -> Message | None:
        """The next message; None at end of stream; TimeoutError when nothing came in time;
        ProtocolError for a broken frame, also one cut short by the end of the stream."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            message = self._decoder.next()
            if message is not None:
                return message
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            data = await asyncio.wait_for(self._reader.read(READ_CHUNK_BYTES), remaining)
            if not data:
                self._decoder.close()  # bytes left of a frame: ProtocolError, counted like any broken frame
                return None
            self._decoder.feed(data)


class HpfeedsEndpoint:
    def __init__(
        self,
        *,
        pipeline: Ingest,
        registry: SensorDirectory,
        metrics: Metrics,
        host: str,
        port: int,
        broker_name: str = "honeyatlas",
        ssl_context: ssl.SSLContext | None = None,
        channel_formats: Mapping[str, str] | None = None,
        binary_channels: Sequence[str] = DEFAULT_BINARY_CHANNELS,
        max_connections: int = 1024,
        max_connections_per_address: int = 32,
        auth_timeout_seconds: float = 10.0,
        max_message_bytes: int = 1024**2,
        max_batch_records: int = 500,
        max_batch_bytes: int = 4 * 1024**2,
        max_batch_delay_seconds: float = 0.1,
    ) -> None:
        self._pipeline = pipeline
        self._registry = registry
        self._metrics = metrics
        self._host = host
        self._port = port
        self._name = broker_name
        self._ssl = ssl_context
        self._router = ChannelRouter(channel_formats, binary_channels)
        self._max_connections = max_connections
        self._per_address = AddressLimiter(SOURCE, max_connections_per_address, metrics)
        self._auth_timeout = auth_timeout_seconds
        self._max_message_bytes = max_message_bytes
        self._batch_limits = (max_batch_records, max_batch_bytes, max_batch_delay_seconds)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._sensors: dict[asyncio.Task[None], str] = {}  # authenticated connections: whose
        self._watch: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with port 0); only after start()."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("hpfeeds endpoint is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        self._router.check(self._pipeline.formats(), "hpfeeds.channel_formats")
        try:
            self._server = await asyncio.start_server(
                self._accept, self._host, self._port, ssl=self._ssl, limit=READ_CHUNK_BYTES,
                ssl_handshake_timeout=self._auth_timeout if self._ssl else None,
            )
        except OSError as exc:
            raise OSError(f"hpfeeds: cannot listen on {self._host}:{self._port}: {exc.strerror}") from exc
        log.info("hpfeeds endpoint listening on %s:%d%s", self._host, self.port, " (TLS)" if self._ssl else "")
        self._watch = asyncio.create_task(self._close_revoked(), name="hpfeeds-revocations")

    async def stop(self) -> None:
        """Stop accepting, end every connection after storing what it already sent."""
        await cancel_and_wait(self._watch)
        self._watch = None
        if self._server is not None:
            self._server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self._max_connections:
            self._refused("too_many_connections")
            await _close(writer)
            return
        slot = self._per_address.acquire(writer.get_extra_info("peername"))
        if slot is None:
            await _close(writer)
            return
        self._connections.add(task)
        _keepalive(writer)
        batcher = PayloadBatcher(
            pipeline=self._pipeline, metrics=self._metrics, source=SOURCE, max_records=self._batch_limits[0],
            max_bytes=self._batch_limits[1], max_delay_seconds=self._batch_limits[2],
        )
        try:
            await self._session(reader, writer, batcher)
        except _Refused as refusal:
            self._refused(refusal.reason)
            if refusal.error is not None:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    writer.write(encode(Error(refusal.error)))
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass  # the publisher went away; what it sent is flushed below
        except asyncio.CancelledError:
            pass  # stop(): store what was already received, then close
        except Exception:
            log.exception("hpfeeds: connection from %s failed", writer.get_extra_info("peername"))
        finally:
            try:
                await batcher.flush(final=True)
            finally:
                self._connections.discard(task)
                self._sensors.pop(task, None)
                self._per_address.release(slot)
                await _close(writer)

    def _refused(self, reason: str) -> None:
        self._metrics.inc("honeyatlas_requests_refused_total", source=SOURCE, reason=reason)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, batcher: PayloadBatcher) -> None:
        nonce = secrets.token_bytes(4)
        writer.write(encode(Info(self._name, nonce)))
        messages = MessageReader(reader, Decoder(self._max_message_bytes))
        try:
            first = await messages.next(self._auth_timeout)
        except TimeoutError:
            raise _Refused("auth_timeout") from None
        except ProtocolError:
            raise _Refused("protocol_error") from None
        if first is None:
            return
        if not isinstance(first, Auth):
            raise _Refused("first_message_not_auth", "First message was not AUTH")
        sensor, channels = self._authenticate(first, nonce)
        task = asyncio.current_task()
        if task is not None:
            self._sensors[task] = sensor.name
        ident = first.ident
        while True:
            deadline = batcher.deadline()
            if deadline is not None and time.monotonic() >= deadline:
                await batcher.flush()
                continue
            try:
                message = await messages.next(None if deadline is None else deadline - time.monotonic())
            except TimeoutError:
                continue  # the batch is due: flushed at the top of the loop
            except ProtocolError:
                raise _Refused("protocol_error") from None
            if message is None:
                return
            if isinstance(message, Publish):
                self._publish(message, ident, sensor, channels, batcher)
                if batcher.full:
                    await batcher.flush()  # nothing is read meanwhile: backpressure
            elif isinstance(message, Subscribe):
                raise _Refused(
                    "subscribe_refused", f"Authkey not allowed to sub here. ident={ident}, chan={message.channel}"
                )
            elif isinstance(message, Unsubscribe):
                continue  # never subscribed here: nothing to undo
            else:  # a second AUTH, or INFO/ERROR, which only a broker sends
                raise _Refused("unexpected_message")

    def _authenticate(self, auth: Auth, nonce: bytes) -> tuple[Sensor, list[str]]:
        # The current secret and, while `sensor rotate`'s grace lasts, the one it replaced.
        found = self._registry.hpfeeds_secrets(auth.ident)
        # The same work whether or not the ident exists.
        accepted = found[1] if found is not None else [secrets.token_urlsafe(24)]
        matches = [hmac.compare_digest(auth_digest(nonce, secret), auth.digest) for secret in accepted]
        if not any(matches) or found is None or len(auth.digest) != DIGEST_BYTES:
            raise _Refused("auth_failed", f"Authentication failed for {auth.ident}")
        sensor, _, channels = found
        return sensor, channels

    async def _close_revoked(self) -> None:
        """End the connections of sensors revoked since they logged in: checked every
        REVOCATION_CHECK_SECONDS (a cached registry read per connected sensor), so a
        `honeyatlas sensor revoke` cuts a live publisher within about a second, plus the
        registry cache's age in a cluster (`storage.registry_cache_seconds`)."""
        while True:
            await asyncio.sleep(REVOCATION_CHECK_SECONDS)
            for task, name in list(self._sensors.items()):
                current = self._registry.get(name)
                if current is None or current.revoked:
                    self._refused("sensor_revoked")
                    log.warning("hpfeeds: sensor %r revoked: closing its connection", name)
                    self._sensors.pop(task, None)
                    task.cancel()

    def _publish(
        self, message: Publish, ident: str, sensor: Sensor, channels: list[str], batcher: PayloadBatcher
    ) -> None:
        if message.ident != ident:
            raise _Refused("ident_mismatch", f"Invalid authkey in message, ident={message.ident}")
        if message.channel not in channels and ANY_CHANNEL not in channels:
            raise _Refused(
                "channel_forbidden", f"Authkey not allowed to pub here. ident={ident}, chan={message.channel}"
            )
        fmt = self._router.format_for(message.channel)
        if fmt is None:
            self._metrics.inc("honeyatlas_records_received_total", source=SOURCE, format="binary")
            self._metrics.inc("honeyatlas_records_ignored_total", source=SOURCE, reason="binary_channel")
            return
        batcher.add(sensor, fmt, message.payload)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), 2)
