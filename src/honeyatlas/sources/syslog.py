"""syslog source: honeypot events sent as syslog over UDP, TCP or TLS.

One `SyslogListener` serves one listen address (`parse_listen("tcp:0.0.0.0:5514")`). Each
message's header is parsed by `syslog_parse`; its body (a JSON line or a CEF line) becomes
one `RawRecord` for the pipeline in the listener's format (default `auto`), batched into
`pipeline.ingest` calls of at most `batch_max_messages`, waiting at most
`batch_linger_seconds` for a batch to fill.

Sensor attribution: syslog carries no credentials, so the listener decides. With a
listener-wide `sensor`, every message belongs to that registered sensor (the operator tied
the port to it); otherwise the message's HOSTNAME must be the name of a registered, active
sensor AND the message must come from an address the sensor may send syslog from
(`honeyatlas sensor add|set NAME --syslog-from ADDRESS_OR_CIDR`): a HOSTNAME is text anyone
who reaches the port can type. Anything else is refused and counted
(`honeyatlas_requests_refused_total{source="syslog", reason="unknown_sensor"|
"address_not_allowed"}`); it is not dead-lettered, because a dead letter belongs to a
sensor and anyone who can reach the port could fill the store with them.

Delivery, per transport:
- UDP: best-effort. No acknowledgement; the kernel drops datagrams when its buffer is full.
  Inside honeyatlas a bounded queue holds datagrams until the pipeline takes them; when the
  queue or the pipeline is full the messages are dropped and counted as records, as they
  were not adapted yet (`honeyatlas_records_dropped_total{source="syslog",
  reason="queue_full"|"pipeline_full"}`).
- TCP and TLS: no loss under load, no acknowledgement. When the pipeline is full the
  listener stops reading that connection, so TCP flow control slows the sender instead of
  dropping. But syslog has no application acknowledgement: on a crash or restart what was
  read and not yet committed (at most one batch per connection) and what sits in kernel
  buffers is lost. For at-least-once delivery use the HTTP source.

Bounds: a message over `max_message_bytes` (UDP: dropped; TCP: the connection is closed),
at most `max_connections` TCP connections (more are closed at once), at most
`max_connections_per_address` from one client address (more are closed at once, counted in
`honeyatlas_connections_refused_total{listener="syslog",reason="per_address_limit"}`), a
connection idle for `idle_timeout_seconds` is closed (counted in
`honeyatlas_connections_timed_out_total{listener="syslog",phase="idle"}`). A framing error
closes that connection only, and is counted
(`honeyatlas_requests_refused_total{source="syslog",reason="oversize"|"bad_octet_count"|
"truncated"}`); the listener keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import ssl
import time
from collections import deque
from collections.abc import Iterable
from typing import Literal
from urllib.parse import parse_qsl

import msgspec

from honeyatlas.adapters.detect import AUTO
from honeyatlas.enrichment.sensors import Sensor, SensorDirectory
from honeyatlas.errors import HoneyatlasError, PipelineFull, StoreError
from honeyatlas.metrics import Metrics
from honeyatlas.pipeline import Ingest, RawRecord
from honeyatlas.sources.framing import decode_line
from honeyatlas.sources.limits import AddressLimiter
from honeyatlas.sources.syslog_parse import SyslogMessage, TcpFramer, parse_message

SOURCE = "syslog"
READ_BYTES = 65536
STOP_GRACE_SECONDS = 5.0
_WARN_EVERY_SECONDS = 60.0
_LISTEN = re.compile(r"^(udp|tcp|tls):(\[[0-9A-Fa-f:.%\w]+\]|[^:\[\]/?\s]+):(\d{1,5})(?:\?(.*))?$")
_LISTEN_OPTIONS = ("format", "sensor")

log = logging.getLogger(__name__)


class ListenAddress(msgspec.Struct, frozen=True, kw_only=True):
    transport: Literal["udp", "tcp", "tls"]
    host: str  # without brackets for IPv6
    port: int
    format: str = AUTO  # the pipeline format of every message body
    sensor: str | None = None  # every message belongs to this sensor; None: by HOSTNAME

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    """`udp:HOST:PORT`, `tcp:HOST:PORT` or `tls:HOST:PORT` (IPv6 host in brackets), with
    optional `?format=NAME&sensor=NAME`. Raises ValueError saying what to write."""
    usage = (
        "write udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT (an IPv6 host in brackets, e.g. tcp:[::]:6514), "
        "optionally followed by ?format=NAME&sensor=NAME"
    )
    match = _LISTEN.match(text.strip())
    if match is None:
        raise ValueError(f"invalid syslog listen address {text!r}: {usage}")
    transport, host, port, query = match.groups()
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid syslog listen address {text!r}: port {port} is not 0-65535")
    options: dict[str, str] = {}
    try:
        pairs = parse_qsl(query or "", keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ValueError(f"invalid syslog listen address {text!r}: options read ?format=NAME&sensor=NAME") from exc
    for key, value in pairs:
        if key not in _LISTEN_OPTIONS or key in options or not value:
            raise ValueError(
                f"invalid syslog listen address {text!r}: option {key!r} is unknown, repeated or empty; "
                f"options are {', '.join(_LISTEN_OPTIONS)}"
            )
        options[key] = value
    return ListenAddress(
        transport=transport,  # type: ignore[arg-type]
        host=host.strip("[]"),
        port=int(port),
        format=options.get("format", AUTO),
        sensor=options.get("sensor"),
    )


def tls_server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A TLS server context for a `tls:` listener (TLS 1.2 or newer). Reads the files."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


class SyslogLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_message_bytes: int = 65536
    max_connections: int = 1000
    max_connections_per_address: int = 32
    idle_timeout_seconds: float = 3600.0
    batch_max_messages: int = 500
    batch_linger_seconds: float = 0.1
    udp_queue_messages: int = 10000
    tls_handshake_timeout_seconds: float = 10.0


class _Received(msgspec.Struct, frozen=True):
    raw: bytes
    message: SyslogMessage
    peer: str  # the sender's address: a HOSTNAME is believed only from the sensor's own


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, listener: SyslogListener) -> None:
        self._listener = listener

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._listener._datagram(data, addr[0])

    def error_received(self, exc: Exception) -> None:  # ICMP errors and the like: nothing to do
        log.debug("syslog UDP socket error: %s", exc)


class SyslogListener:
    def __init__(
        self,
        address: ListenAddress,
        *,
        pipeline: Ingest,
        registry: SensorDirectory,
        metrics: Metrics,
        limits: SyslogLimits | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if address.format not in pipeline.formats():
            raise HoneyatlasError(
                f"syslog listener {address}: unknown format {address.format!r}; known formats: "
                f"{', '.join(pipeline.formats())}"
            )
        if (address.transport == "tls") != (ssl_context is not None):
            raise HoneyatlasError(f"syslog listener {address}: a tls: listener needs a TLS context, and only it does")
        self.address = address
        self._pipeline = pipeline
        self._registry = registry
        self._metrics = metrics
        self._limits = limits or SyslogLimits()
        self._ssl = ssl_context
        self._per_address = AddressLimiter(SOURCE, self._limits.max_connections_per_address, metrics)
        self._input_kind = pipeline.input_kind(address.format)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._reading: set[asyncio.Task[None]] = set()  # connections waiting for bytes, not delivering
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_queue: deque[tuple[bytes, str]] = deque()  # (datagram, sender address)
        self._udp_wake = asyncio.Event()
        self._udp_batch_ready = asyncio.Event()
        self._udp_drainer: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_warning = 0.0

    @property
    def bound(self) -> tuple[str, int]:
        """The address actually listened on (the real port when asked for port 0)."""
        if self._udp is not None:
            return self._udp.get_extra_info("sockname")[:2]
        if self._server is not None:
            return self._server.sockets[0].getsockname()[:2]
        raise HoneyatlasError(f"syslog listener {self.address} is not started")

    async def start(self) -> None:
        if self.address.sensor is not None:
            sensor = self._registry.get(self.address.sensor)
            if sensor is None or sensor.revoked:
                raise HoneyatlasError(
                    f"syslog listener {self.address}: no active sensor named {self.address.sensor!r}; "
                    "add it with `honeyatlas sensor add`"
                )
        host, port = self.address.host, self.address.port
        try:
            if self.address.transport == "udp":
                loop = asyncio.get_running_loop()
                self._udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self), local_addr=(host, port))
                self._udp_drainer = asyncio.create_task(self._drain_udp(), name=f"syslog {self.address}")
            else:
                self._server = await asyncio.start_server(
                    self._serve_connection, host, port, ssl=self._ssl,
                    ssl_handshake_timeout=self._limits.tls_handshake_timeout_seconds if self._ssl else None,
                )
        except OSError as exc:
            raise HoneyatlasError(f"cannot listen for syslog on {self.address}: {exc.strerror}") from exc

    async def stop(self) -> None:
        """Stop listening, deliver what was already read, close every connection."""
        self._stopping = True
        if self._udp is not None:
            self._udp.close()
            self._udp_wake.set()
            self._udp_batch_ready.set()
            if self._udp_drainer is not None:
                await self._finish([self._udp_drainer])
            if self._udp_queue:  # the drainer ran out of grace time
                self._drop("shutdown", len(self._udp_queue))
                self._udp_queue.clear()
            self._udp = None
        if self._server is not None:
            self._server.close()
            for task in self._reading:
                task.cancel()  # a handler cancelled while reading delivers what it has, then closes
            await self._finish(list(self._connections))
            await self._server.wait_closed()
            self._server = None

    @staticmethod
    async def _finish(tasks: list[asyncio.Task[None]]) -> None:
        """Give tasks a grace period to deliver, then cancel what is left."""
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    # --- shared: attribution and delivery -------------------------------------------------

    def _refuse(self, reason: str, count: int = 1) -> None:
        self._metrics.inc("honeyatlas_requests_refused_total", count, source=SOURCE, reason=reason)

    def _drop(self, reason: str, count: int) -> None:
        self._metrics.inc("honeyatlas_records_dropped_total", count, source=SOURCE, reason=reason)

    def _warn(self, text: str, *args: object) -> None:
        """A warning at most once a minute per listener: senders can repeat a mistake fast."""
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY_SECONDS:
            self._last_warning = now
            log.warning("syslog %s: " + text, self.address, *args)

    def _record(self, index: int, received: _Received) -> RawRecord:
        body = received.message.body.strip()
        if not body:
            return RawRecord(index, received.raw, error="empty syslog message body")
        record = decode_line(body, index, self._input_kind)
        timestamp = received.message.timestamp
        if isinstance(record.value, str) and timestamp is not None:
            # A text body (CEF) carries no time of its own when it comes from cowrie: keep the
            # header's, in front, where the text adapters read a syslog or RFC 3339 time.
            return RawRecord(index, received.raw, f"{timestamp} {record.value}")
        return RawRecord(index, received.raw, record.value, record.error)

    def _by_sensor(self, batch: Iterable[_Received]) -> list[tuple[Sensor, list[RawRecord]]]:
        """Records grouped by the sensor they are attributed to; the rest refused and counted."""
        sensors: dict[str, Sensor | None] = {}
        groups: dict[str, tuple[Sensor, list[RawRecord]]] = {}
        unknown: list[str | None] = []
        strangers: list[tuple[str, str]] = []
        for received in batch:
            name = self.address.sensor or received.message.hostname
            if name is not None and name not in sensors:
                found = self._registry.get(name)
                sensors[name] = None if found is None or found.revoked else found
            sensor = sensors.get(name) if name is not None else None
            if sensor is None:
                unknown.append(name)
                continue
            if self.address.sensor is None and not _sent_by(sensor, received.peer):
                strangers.append((sensor.name, received.peer))
                continue
            records = groups.setdefault(sensor.name, (sensor, []))[1]
            records.append(self._record(len(records), received))
        if strangers:
            self._refuse("address_not_allowed", len(strangers))
            self._warn(
                "refused %d message(s) whose HOSTNAME names a sensor they were not sent from, e.g. %r from %s; "
                "allow the address with `honeyatlas sensor set %s --syslog-from ADDRESS`",
                len(strangers), strangers[0][0], strangers[0][1], strangers[0][0],
            )
        if unknown:
            self._refuse("unknown_sensor", len(unknown))
            self._warn(
                "refused %d message(s) from unknown or revoked sensors, e.g. HOSTNAME %r; register the sensor "
                "under its syslog HOSTNAME or give the listener a sensor", len(unknown), unknown[0],
            )
        return list(groups.values())

    async def _ingest(self, sensor: Sensor, records: list[RawRecord]) -> None:
        try:
            await self._pipeline.ingest(source=SOURCE, fmt=self.address.format, sensor=sensor, records=records)
        except StoreError as exc:
            self._drop("store_error", len(records))
            log.error("syslog %s: %d message(s) of %s not stored: %s", self.address, len(records), sensor.name, exc)

    @staticmethod
    def _parse(frames: Iterable[bytes], peer: str) -> list[_Received]:
        return [_Received(frame, parse_message(frame), peer) for frame in frames]

    # --- UDP ------------------------------------------------------------------------------

    def _datagram(self, data: bytes, peer: str) -> None:
        if len(data) > self._limits.max_message_bytes:
            self._refuse("oversize")
            return
        if len(self._udp_queue) >= self._limits.udp_queue_messages:
            self._drop("queue_full", 1)
            return
        self._udp_queue.append((data, peer))
        self._udp_wake.set()
        if len(self._udp_queue) >= self._limits.batch_max_messages:
            self._udp_batch_ready.set()

    async def _drain_udp(self) -> None:
        queue, limit = self._udp_queue, self._limits.batch_max_messages
        while True:
            if not self._stopping:
                await self._udp_wake.wait()
            if len(queue) < limit and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._udp_batch_ready.wait(), self._limits.batch_linger_seconds)
            self._udp_wake.clear()
            self._udp_batch_ready.clear()
            batch = [queue.popleft() for _ in range(min(len(queue), limit))]
            if queue:
                self._udp_wake.set()
            try:
                await self._deliver_udp([_Received(data, parse_message(data), peer) for data, peer in batch])
            except Exception:  # a bug or a closed registry must not silence the port for good
                log.exception("syslog %s: %d message(s) lost", self.address, len(batch))
                self._drop("error", len(batch))
            if self._stopping and not queue:
                return

    async def _deliver_udp(self, batch: list[_Received]) -> None:
        for sensor, records in self._by_sensor(batch):
            try:
                self._pipeline.admit(SOURCE, len(records))
            except PipelineFull:
                self._drop("pipeline_full", len(records))
                continue
            await self._ingest(sensor, records)

    # --- TCP and TLS ----------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._stopping or len(self._connections) >= self._limits.max_connections:
            self._refuse("too_many_connections")
            writer.close()
            return
        peer = writer.get_extra_info("peername")
        slot = self._per_address.acquire(peer)
        if slot is None:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._read_connection(task, reader, peer)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # cancelled by stop() after its grace period: end quietly (asyncio logs a cancelled handler)
        finally:
            self._connections.discard(task)
            self._per_address.release(slot)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, asyncio.CancelledError):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _read_connection(self, task: asyncio.Task[None], reader: asyncio.StreamReader, peer: object) -> None:
        limits = self._limits
        loop = asyncio.get_running_loop()
        framer = TcpFramer(limits.max_message_bytes)
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        batch: list[_Received] = []
        idle_until = loop.time() + limits.idle_timeout_seconds
        flush_at: float | None = None
        try:
            while framer.error is None and not self._stopping:
                wake = idle_until if flush_at is None else flush_at
                self._reading.add(task)
                try:
                    data = await asyncio.wait_for(reader.read(READ_BYTES), max(0.0, wake - loop.time()))
                except asyncio.CancelledError:
                    if not self._stopping:
                        raise
                    task.uncancel()
                    break  # stopping: deliver what was read, then close
                except TimeoutError:
                    if not batch:
                        log.debug("syslog %s: closing idle connection from %s", self.address, peer)
                        self._per_address.timed_out("idle")
                        break
                    data = None
                except (ConnectionError, ssl.SSLError) as exc:
                    log.debug("syslog %s: connection from %s failed: %s", self.address, peer, exc)
                    break
                finally:
                    self._reading.discard(task)
                if data == b"":
                    batch += self._parse(filter(None, [framer.close()]), address)
                    break
                if data is not None:
                    idle_until = loop.time() + limits.idle_timeout_seconds
                    batch += self._parse(framer.feed(data), address)
                    if batch and flush_at is None:
                        flush_at = loop.time() + limits.batch_linger_seconds
                if batch and (data is None or len(batch) >= limits.batch_max_messages):
                    ready, batch, flush_at = batch, [], None
                    await self._deliver_tcp(ready)
            if batch:  # what was read before the end is still delivered
                ready, batch = batch, []
                await self._deliver_tcp(ready)
        except asyncio.CancelledError:
            self._drop("shutdown", len(batch))  # cancelled again while stopping: no time left to deliver
            raise
        finally:
            if framer.error is not None:
                self._refuse(framer.error.reason)
                self._warn("closed the connection from %s: %s", peer, framer.error)

    async def _deliver_tcp(self, batch: list[_Received]) -> None:
        limit = self._limits.batch_max_messages
        for start in range(0, len(batch), limit):
            for sensor, records in self._by_sensor(batch[start : start + limit]):
                await self._admit_waiting(len(records))
                await self._ingest(sensor, records)

    async def _admit_waiting(self, count: int) -> None:
        """Wait, not reading this connection, until the pipeline has room: TCP backpressure.
        Each refused attempt is counted by the pipeline (reason pipeline_full)."""
        pause = 0.05
        while True:
            try:
                self._pipeline.admit(SOURCE, count)
                return
            except PipelineFull as exc:
                await asyncio.sleep(pause)
                pause = min(pause * 2, float(exc.retry_after_seconds), 1.0)


def _sent_by(sensor: Sensor, peer: str) -> bool:
    """Whether `peer` is one of the addresses or networks the sensor may send syslog from."""
    if not sensor.syslog_sources or not peer:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(network, strict=False) for network in sensor.syslog_sources)
