"""hpfeeds subscriber source: reads the channels of an existing broker (MHN/CHN deployments).

Connects to the broker, answers its OP_INFO with OP_AUTH, subscribes to the configured
channels and feeds every OP_PUBLISH to the pipeline. The broker re-sends a publish with the
*publisher's* ident, so that ident says which sensor it came from: it is looked up in the
configured `ident_map` (ident -> sensor name) first, then as a sensor name in the registry.
A message from an ident that maps to no active sensor is dropped and counted
(`honeyatlas_records_dropped_total{source="hpfeeds-subscriber",reason="unknown_ident"}`).

The connection is kept up for ever: after any failure (refused, broker error such as a bad
secret, closed, protocol error) it reconnects after an exponential backoff with jitter,
bounded by `backoff_max_seconds`, reset once a connection has delivered a message or stayed
up for `backoff_max_seconds`. Connects and disconnects (by reason) are counted.

Delivery: best-effort, like hpfeeds itself. A broker keeps nothing for a subscriber that is
away, so messages published while disconnected are lost; batching and backpressure are those
of the endpoint (`PayloadBatcher`): while the pipeline is full nothing is read and the
broker's send buffer for us fills (the reference broker drops a subscriber that stays
blocked for 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Mapping, Sequence

from honeyatlas.enrichment.sensors import Sensor, SensorDirectory
from honeyatlas.errors import ConfigError
from honeyatlas.metrics import Metrics
from honeyatlas.pipeline import Ingest
from honeyatlas.sources.hpfeeds import DEFAULT_BINARY_CHANNELS, ChannelRouter, MessageReader, PayloadBatcher
from honeyatlas.sources.hpfeeds_protocol import (
    Auth,
    Decoder,
    Error,
    Info,
    ProtocolError,
    Publish,
    Subscribe,
    auth_digest,
    encode,
)
from honeyatlas.tasks import cancel_and_wait

SOURCE = "hpfeeds-subscriber"
_SENSOR_CACHE_SIZE = 4096
_SENSOR_CACHE_SECONDS = 60.0
log = logging.getLogger(__name__)


class _Disconnected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HpfeedsSubscriber:
    def __init__(
        self,
        *,
        pipeline: Ingest,
        registry: SensorDirectory,
        metrics: Metrics,
        host: str,
        port: int,
        ident: str,
        secret: str,
        channels: Sequence[str],
        ident_map: Mapping[str, str] | None = None,
        channel_formats: Mapping[str, str] | None = None,
        binary_channels: Sequence[str] = DEFAULT_BINARY_CHANNELS,
        ssl_context: ssl.SSLContext | None = None,
        connect_timeout_seconds: float = 10.0,
        backoff_initial_seconds: float = 1.0,
        backoff_max_seconds: float = 60.0,
        max_message_bytes: int = 1024**2,
        max_batch_records: int = 500,
        max_batch_bytes: int = 4 * 1024**2,
        max_batch_delay_seconds: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._registry = registry
        self._metrics = metrics
        self._host = host
        self._port = port
        self._ident = ident
        self._secret = secret
        self._channels = list(channels)
        self._ident_map = dict(ident_map or {})
        self._router = ChannelRouter(channel_formats, binary_channels)
        self._ssl = ssl_context
        self._connect_timeout = connect_timeout_seconds
        self._backoff_initial = backoff_initial_seconds
        self._backoff_max = backoff_max_seconds
        self._max_message_bytes = max_message_bytes
        self._rng = rng or random.Random()
        self._batcher = PayloadBatcher(
            pipeline=pipeline, metrics=metrics, source=SOURCE, max_records=max_batch_records,
            max_bytes=max_batch_bytes, max_delay_seconds=max_batch_delay_seconds,
        )
        self._task: asyncio.Task[None] | None = None
        self._connected: asyncio.Event | None = None  # created in start(), on the running loop
        self._delivered = False  # the current connection has delivered a message
        # ident -> (expiry, sensor or None): one registry query per ident and minute, not per message
        self._sensors: dict[str, tuple[float, Sensor | None]] = {}

    async def start(self) -> None:
        if not self._channels:
            raise ConfigError("hpfeeds_subscriber.channels", "give at least one channel to subscribe to")
        self._router.check(self._pipeline.formats(), "hpfeeds_subscriber.channel_formats")
        self._connected = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="hpfeeds-subscriber")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._batcher.flush(final=True)

    async def wait_connected(self) -> None:
        """Until the current connection has subscribed (for tests and start-up checks)."""
        assert self._connected is not None, "start() first"
        await self._connected.wait()

    def backoff_seconds(self, attempt: int) -> float:
        """Delay before reconnect `attempt` (0-based): exponential, capped, with equal jitter."""
        ceiling = min(self._backoff_max, self._backoff_initial * 2 ** min(attempt, 32))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    async def _run(self) -> None:
        attempt = 0
        while True:
            started = time.monotonic()
            self._delivered = False
            try:
                await self._connection()
                reason = "closed_by_broker"
            except _Disconnected as exc:
                reason = exc.reason
            except TimeoutError:  # before OSError, of which it is a subclass
                reason = "timeout"
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
                reason = "connect_failed" if isinstance(exc, ConnectionRefusedError) else "network_error"
            except Exception:  # a bug must not end the subscription for good
                log.exception("hpfeeds subscriber: connection to %s:%d failed", self._host, self._port)
                reason = "error"
            finally:
                if self._connected is not None:
                    self._connected.clear()
            await self._batcher.flush(final=False)
            self._metrics.inc("honeyatlas_hpfeeds_subscriber_disconnects_total", reason=reason)
            if self._delivered or time.monotonic() - started >= self._backoff_max:
                attempt = 0
            delay = self.backoff_seconds(attempt)
            attempt += 1
            log.warning("hpfeeds subscriber: %s (%s:%d); reconnecting in %.1f s", reason, self._host, self._port, delay)
            await asyncio.sleep(delay)

    async def _connection(self) -> None:
        """One connection, until it ends."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self._host, self._port, ssl=self._ssl, limit=64 * 1024), self._connect_timeout
        )
        try:
            messages = MessageReader(reader, Decoder(self._max_message_bytes))
            try:
                info = await messages.next(self._connect_timeout)
            except ProtocolError:
                raise _Disconnected("protocol_error") from None
            if info is None:
                raise _Disconnected("closed_by_broker")
            if not isinstance(info, Info):
                raise _Disconnected("broker_error" if isinstance(info, Error) else "protocol_error")
            writer.write(encode(Auth(self._ident, auth_digest(info.nonce, self._secret))))
            for channel in self._channels:
                writer.write(encode(Subscribe(self._ident, channel)))
            await writer.drain()
            self._metrics.inc("honeyatlas_hpfeeds_subscriber_connects_total")
            assert self._connected is not None
            self._connected.set()  # hpfeeds never confirms AUTH: a refusal comes as OP_ERROR + close
            while True:
                deadline = self._batcher.deadline()
                if deadline is not None and time.monotonic() >= deadline:
                    await self._batcher.flush()
                    continue
                try:
                    message = await messages.next(None if deadline is None else deadline - time.monotonic())
                except TimeoutError:
                    continue
                except ProtocolError:
                    raise _Disconnected("protocol_error") from None
                if message is None:
                    return
                if isinstance(message, Publish):
                    self._delivered = True
                    self._take(message)
                    if self._batcher.full:
                        await self._batcher.flush()
                elif isinstance(message, Error):
                    log.warning("hpfeeds subscriber: broker says %r", message.text[:200])
                    raise _Disconnected("broker_error")
                else:
                    raise _Disconnected("protocol_error")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)

    def _sensor(self, ident: str) -> Sensor | None:
        now = time.monotonic()
        cached = self._sensors.get(ident)
        if cached is not None and cached[0] > now:
            return cached[1]
        if len(self._sensors) >= _SENSOR_CACHE_SIZE:
            self._sensors.clear()
        sensor = self._registry.get(self._ident_map.get(ident, ident))
        found = None if sensor is None or sensor.revoked else sensor
        self._sensors[ident] = (now + _SENSOR_CACHE_SECONDS, found)
        return found

    def _take(self, message: Publish) -> None:
        fmt = self._router.format_for(message.channel)
        if fmt is None:
            self._metrics.inc("honeyatlas_records_received_total", source=SOURCE, format="binary")
            self._metrics.inc("honeyatlas_records_ignored_total", source=SOURCE, reason="binary_channel")
            return
        sensor = self._sensor(message.ident)
        if sensor is None:
            self._metrics.inc("honeyatlas_records_dropped_total", source=SOURCE, reason="unknown_ident")
            return
        self._batcher.add(sensor, fmt, message.payload)
