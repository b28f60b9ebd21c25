"""The bus on NATS JetStream (docs/scaling.md): what the roles of a cluster talk through.

Delivery guarantees:
- Event batches: at-least-once. `publish` returns only after JetStream stored the message in
  the file-backed stream; a batch a worker fetched but did not acknowledge within
  `bus.ack_wait_seconds` is delivered again (unlimited redeliveries: a batch is never dropped
  silently; one that cannot be decoded at all is terminated, logged and counted). Duplicates
  are possible (a lost ack, a publish that timed out but was stored): JetStream drops a
  repeated message id within the duplicate window, and the store skips event ids it holds.
- Live feed: best-effort, core NATS. A subscriber slower than its pending limits, or
  disconnected, misses messages; each miss is counted (`honeyatlas_bus_live_messages_dropped_total`).

The stream `{bus.stream}` holds subjects `{prefix}.events.{N}`, one per partition, each read by
the durable pull consumer `events-p{N}`. Retention is WorkQueue: an acknowledged batch leaves
the stream at once, so the stream's limits measure exactly the unconsumed backlog, and with
discard=new a full stream refuses new batches (ingest answers 429) instead of dropping old
unconsumed ones. (Limits retention would keep consumed batches until the limits push them
out, so "full" would mean "full of history" and ingest would refuse while workers idle.)
Leases are a KeyValue bucket `{bus.stream}-leases` whose entries expire `lease_ttl_seconds`
after their last write; acquire and renew are compare-and-set on the entry's revision.

"Durably stored" means written to the server's file store: it survives a restart or a crash
of nats-server; surviving a power cut of its machine needs `sync_interval: always` in the
server's configuration or a replicated (R3) stream, an operator's choice.

Nothing here knows about roles, HTTP or the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Coroutine
from typing import Any

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from honeyatlas.bus import (
    EVENTS,
    FAMILIES,
    BatchDecoder,
    BatchEncoder,
    Delivery,
    EventBatch,
    EventsHandler,
    IncidentsHandler,
)
from honeyatlas.config import BusConfig
from honeyatlas.errors import BusError, BusFull
from honeyatlas.event import Event
from honeyatlas.incident import Incident
from honeyatlas.metrics import Metrics
from honeyatlas.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# JetStream's error for a message refused by the stream's limits under discard=new
# ("maximum messages exceeded", "maximum bytes exceeded"; JSStreamStoreFailedF).
_STREAM_FULL_ERR_CODES = {10077}
_STREAM_CONFIG_MISMATCH = 10058  # "stream name already in use with a different configuration"
_REFRESH_SECONDS = 1.0  # how stale the admission view of the stream may be
_REFUSED_HOLD_SECONDS = 1.0  # after a refusal, say "no room" this long without asking
# A web process buffers at most this much of the live feed per subject (messages are batches
# of events: a tick's worth each); beyond it nats-py drops and we count.
_LIVE_PENDING_BYTES = 32 * 1024 * 1024
_LEASE_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


class _NatsDelivery:
    __slots__ = ("_metrics", "_msg", "batch", "delivered_count", "partition")

    def __init__(self, msg: Msg, batch: EventBatch, partition: int, metrics: Metrics) -> None:
        self._msg = msg
        self._metrics = metrics
        self.batch = batch
        self.partition = partition
        self.delivered_count = msg.metadata.num_delivered

    async def ack(self) -> None:
        # A plain ack (no confirmation round trip): if it is lost, the batch comes again and the
        # store skips the event ids it already has.
        if await self._send(self._msg.ack(), "ack"):
            self._metrics.inc("honeyatlas_bus_messages_acked_total", partition=str(self.partition))

    async def nak(self, delay: float | None = None) -> None:
        await self._send(self._msg.nak(delay=delay), "nak")

    async def in_progress(self) -> None:
        await self._send(self._msg.in_progress(), "in_progress")

    async def _send(self, reply: Coroutine[Any, Any, None], what: str) -> bool:
        # Disconnected: nothing is lost by not raising, the batch simply comes again after
        # ack_wait (at-least-once), so the worker's loop need not handle it.
        try:
            await reply
            return True
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError,
                nats.errors.OutboundBufferLimitError) as exc:
            log.warning("bus: %s of a batch of partition %d not sent (%s); it will be delivered again",
                        what, self.partition, exc)
            return False


class NatsBus:
    """Publisher, Consumer, LiveFeed and Leases on one NATS connection. No I/O before `start`.

    `name` labels the connection in NATS monitoring (the role and host). `live_pending_messages`
    bounds what a live subscription buffers while its handlers lag (per subject)."""

    def __init__(self, config: BusConfig, *, metrics: Metrics, name: str, live_pending_messages: int = 1_000) -> None:
        if not config.url:
            raise BusError("bus.url is not set; give the NATS server as nats://host:4222")
        self.partitions = config.partitions
        self._config = config
        self._metrics = metrics
        self._name = name
        self._servers = [u.strip() for u in config.url.split(",") if u.strip()]
        self._stream = config.stream
        self._prefix = config.subject_prefix
        self._live_pending_messages = live_pending_messages
        self._encoder = BatchEncoder()
        self._decoder = BatchDecoder()
        self._live_encoder = msgspec.msgpack.Encoder()
        self._events_decoder = msgspec.msgpack.Decoder(list[Event])
        self._incidents_decoder = msgspec.msgpack.Decoder(list[Incident])
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._kv: KeyValue | None = None
        self._pulls: dict[tuple[str, int], JetStreamContext.PullSubscription] = {}
        self._live_subs: list[Subscription] = []
        self._refresher: asyncio.Task[None] | None = None
        # Admission view (see has_room_for): the stream's state as of the last refresh.
        self._stream_messages = 0
        self._stream_bytes = 0
        self._refused_at = -_REFUSED_HOLD_SECONDS
        self._events_per_message = 1.0  # running means of what this process published
        self._bytes_per_event = 1024.0

    # --- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        nc = Client()
        last_error: list[BaseException] = []

        async def on_error(exc: Exception) -> None:
            last_error.append(exc)
            if isinstance(exc, nats.errors.SlowConsumerError):
                self._metrics.inc("honeyatlas_bus_live_messages_dropped_total", reason="slow_subscriber")
            elif nc.is_connected:
                log.warning("NATS: %s", exc)

        async def on_disconnect() -> None:
            if self._nc is not None:
                log.warning("NATS: disconnected from %s; reconnecting", ", ".join(self._servers))

        async def on_reconnect() -> None:
            log.info("NATS: reconnected to %s", nc.connected_url.netloc if nc.connected_url else "?")

        options: dict[str, Any] = {
            "servers": self._servers,
            "name": self._name,
            "connect_timeout": min(2.0, self._config.publish_timeout_seconds),
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,  # a role outlives a NATS restart
            "reconnect_time_wait": 0.5,
            "error_cb": on_error,
            "disconnected_cb": on_disconnect,
            "reconnected_cb": on_reconnect,
        }
        # With reconnects unlimited, nats-py retries the first connect forever: bound it here.
        try:
            await asyncio.wait_for(nc.connect(**options), timeout=self._config.publish_timeout_seconds)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            cause = last_error[-1] if last_error else exc
            raise BusError(
                f"cannot connect to NATS at {self._config.url}: {cause or type(cause).__name__}; "
                "check bus.url and that nats-server runs with -js"
            ) from exc
        self._nc = nc
        self._js = nc.jetstream(timeout=self._config.publish_timeout_seconds)
        try:
            await self._ensure_stream()
            await self._ensure_consumers()
            self._kv = await self._ensure_leases()
            await self._refresh_stream_state()
        except (nats.errors.Error, TimeoutError) as exc:
            await self.stop()
            raise BusError(f"JetStream at {self._config.url} refused the set-up of stream {self._stream}: {exc}; "
                           "check that nats-server runs with -js") from exc
        except BaseException:
            await self.stop()
            raise
        self._refresher = asyncio.create_task(self._refresh_loop(), name="bus-stream-state")
        self._metrics.gauge("honeyatlas_bus_stream_messages", lambda: [((), self._stream_messages)])

    async def stop(self) -> None:
        await cancel_and_wait(self._refresher)
        self._refresher = None
        nc, self._nc = self._nc, None
        self._js = self._kv = None
        self._pulls.clear()
        self._live_subs.clear()
        if nc is None or nc.is_closed:
            return
        try:
            # Drain: live messages already received reach their handlers, publishes are flushed.
            await asyncio.wait_for(nc.drain(), timeout=self._config.publish_timeout_seconds)
        except Exception:  # drain over a dead connection: closing is all that is left
            with contextlib.suppress(Exception):
                await nc.close()

    def _stream_config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=self._stream,
            description="honeyatlas event batches, one subject per partition",
            subjects=[f"{self._prefix}.{family}.*" for family in FAMILIES],
            retention=api.RetentionPolicy.WORK_QUEUE,
            discard=api.DiscardPolicy.NEW,
            max_msgs=self._config.stream_max_messages,
            max_bytes=self._config.stream_max_bytes,
            storage=api.StorageType.FILE,
            num_replicas=self._config.stream_replicas,
            duplicate_window=self._config.duplicate_window_seconds,
        )

    async def _ensure_stream(self) -> None:
        js = self._jetstream()
        config = self._stream_config()
        try:
            try:
                await js.stream_info(self._stream)
            except nats.js.errors.NotFoundError:
                await js.add_stream(config)
            else:
                await js.update_stream(config)
        except nats.js.errors.APIError as exc:
            raise BusError(f"cannot create or update the JetStream stream {self._stream}: {exc.description}; "
                           "an existing stream with other retention must be deleted (nats stream rm)") from exc
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusError(f"JetStream at {self._config.url} did not answer ({exc}); "
                           "check that nats-server runs with -js") from exc

    async def _ensure_consumers(self) -> None:
        js = self._jetstream()
        for family, partition in ((f, p) for f in FAMILIES for p in range(self.partitions)):
            # The legacy durable create is create-or-update: a changed ack_wait applies.
            await js.add_consumer(self._stream, api.ConsumerConfig(
                durable_name=self._consumer_name(partition, family),
                filter_subject=self._subject(partition, family),
                ack_policy=api.AckPolicy.EXPLICIT,
                deliver_policy=api.DeliverPolicy.ALL,
                ack_wait=self._config.ack_wait_seconds,
                max_deliver=-1,  # never give up on a batch: a stuck one shows as redeliveries
            ))

    async def _ensure_leases(self) -> KeyValue:
        js = self._jetstream()
        bucket = f"{self._stream}-leases"
        try:
            return await js.create_key_value(api.KeyValueConfig(
                bucket=bucket, history=1, ttl=self._config.lease_ttl_seconds, storage=api.StorageType.FILE))
        except nats.js.errors.APIError as exc:
            if exc.err_code != _STREAM_CONFIG_MISMATCH:
                raise BusError(f"cannot create the lease bucket {bucket}: {exc.description}") from exc
        # Another lease_ttl_seconds than the bucket was made with: the newest configuration wins.
        info = await js.stream_info(f"KV_{bucket}")
        info.config.max_age = self._config.lease_ttl_seconds
        info.config.duplicate_window = min(info.config.duplicate_window or 120, self._config.lease_ttl_seconds)
        await js.update_stream(info.config)
        return await js.key_value(bucket)

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise BusError("the bus is not started")
        return self._js

    def _subject(self, partition: int, family: str = EVENTS) -> str:
        return f"{self._prefix}.{family}.{partition}"

    @staticmethod
    def _consumer_name(partition: int, family: str = EVENTS) -> str:
        return f"{family}-p{partition}"

    # --- Publisher -------------------------------------------------------------------------

    @property
    def pending_events(self) -> int:
        """Events in the stream, estimated: its batches (refreshed every second) times the
        mean events per batch this process published."""
        return round(self._stream_messages * self._events_per_message)

    def has_room_for(self, count: int) -> bool:
        """From the stream's state refreshed every second, and "no" for a second after a
        refusal; cheap, never asks the server. `publish` stays the authority (BusFull)."""
        if time.monotonic() - self._refused_at < _REFUSED_HOLD_SECONDS:
            return False
        return (self._stream_messages < self._config.stream_max_messages
                and self._stream_bytes + count * self._bytes_per_event <= self._config.stream_max_bytes)

    async def publish(self, partition: int, batch: EventBatch, msg_id: str | None = None,
                      family: str = EVENTS) -> None:
        if not 0 <= partition < self.partitions:
            raise BusError(f"partition {partition} outside 0..{self.partitions - 1}")
        nc = self._nc
        if nc is None or not nc.is_connected:
            # Fail now rather than queue the batch in the client's buffer during a reconnect.
            self._metrics.inc("honeyatlas_bus_publish_errors_total", reason="disconnected")
            raise BusError(f"not connected to NATS at {self._config.url}; retry later")
        chunks = _fit(batch, self._encoder, nc.max_payload)
        for i, (data, events) in enumerate(chunks):
            chunk_id = msg_id if msg_id is None or len(chunks) == 1 else f"{msg_id}.{i}"
            await self._publish_one(self._subject(partition, family), data, events, chunk_id)

    async def _publish_one(self, subject: str, data: bytes, events: int, msg_id: str | None) -> None:
        js = self._jetstream()
        try:
            ack = await js.publish(subject, data, timeout=self._config.publish_timeout_seconds,
                                   stream=self._stream, headers={"Nats-Msg-Id": msg_id} if msg_id else None)
        except nats.js.errors.APIError as exc:
            if exc.err_code in _STREAM_FULL_ERR_CODES:
                self._refused_at = time.monotonic()
                self._metrics.inc("honeyatlas_bus_publish_refused_total", reason="stream_full")
                raise BusFull(self._stream, exc.description or "limits reached") from exc
            self._metrics.inc("honeyatlas_bus_publish_errors_total", reason="api")
            raise BusError(f"JetStream refused a batch: {exc.description}") from exc
        except (TimeoutError, nats.errors.TimeoutError) as exc:
            self._metrics.inc("honeyatlas_bus_publish_errors_total", reason="timeout")
            raise BusError(f"JetStream did not acknowledge within {self._config.publish_timeout_seconds} s; "
                           "retry later") from exc
        except nats.errors.Error as exc:  # no responders, connection closed or reconnecting
            self._metrics.inc("honeyatlas_bus_publish_errors_total", reason="disconnected")
            raise BusError(f"cannot publish to NATS at {self._config.url}: {exc}; retry later") from exc
        if ack.duplicate:
            self._metrics.inc("honeyatlas_bus_publish_duplicates_total")
            return
        self._metrics.inc("honeyatlas_bus_messages_published_total")
        self._metrics.inc("honeyatlas_bus_events_published_total", events)
        if events:
            self._events_per_message = 0.9 * self._events_per_message + 0.1 * events
            self._bytes_per_event = 0.9 * self._bytes_per_event + 0.1 * (len(data) / events)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(_REFRESH_SECONDS)
            with contextlib.suppress(Exception):  # disconnected: keep the last view, publish decides
                await self._refresh_stream_state()

    async def _refresh_stream_state(self) -> None:
        info = await self._jetstream().stream_info(self._stream)
        self._stream_messages = info.state.messages
        self._stream_bytes = info.state.bytes

    # --- Consumer --------------------------------------------------------------------------

    async def unacknowledged(self, partition: int, family: str = EVENTS) -> int:
        try:
            info = await self._jetstream().consumer_info(self._stream, self._consumer_name(partition, family))
        except (nats.errors.Error, TimeoutError) as exc:
            raise BusError(f"cannot read consumer {self._consumer_name(partition, family)}: {exc}") from exc
        return int(info.num_ack_pending or 0)

    async def fetch(self, partition: int, max_messages: int, timeout: float,
                    family: str = EVENTS) -> list[Delivery]:
        pull = self._pulls.get((family, partition))
        try:
            if pull is None:
                pull = await self._jetstream().pull_subscribe_bind(
                    durable=self._consumer_name(partition, family), stream=self._stream)
                self._pulls[family, partition] = pull
            msgs = await pull.fetch(max_messages, timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except nats.errors.Error as exc:
            raise BusError(f"cannot fetch partition {partition} from NATS at {self._config.url}: {exc}") from exc
        deliveries: list[Delivery] = []
        for msg in msgs:
            try:
                batch = self._decoder.decode(msg.data)
            except msgspec.DecodeError as exc:
                # Redelivering it would block the partition forever: terminate, log, count.
                log.error("bus: dropped an undecodable batch (stream sequence %s, %d bytes, partition %d): %s",
                          msg.metadata.sequence.stream, len(msg.data), partition, exc)
                self._metrics.inc("honeyatlas_bus_messages_dropped_total", reason="undecodable")
                await msg.term()
                continue
            delivery = _NatsDelivery(msg, batch, partition, self._metrics)
            self._metrics.inc("honeyatlas_bus_messages_delivered_total", partition=str(partition))
            if delivery.delivered_count > 1:
                self._metrics.inc("honeyatlas_bus_messages_redelivered_total", partition=str(partition))
            deliveries.append(delivery)
        return deliveries

    # --- LiveFeed (best-effort) ------------------------------------------------------------

    async def publish_live(self, events: list[Event]) -> None:
        # The raw record can be 8 KiB and the map never shows it (drill-down reads the store).
        view = [msgspec.structs.replace(e, raw=None) if e.raw is not None else e for e in events]
        await self._publish_live(f"{self._prefix}.live.events", view)

    async def publish_live_incidents(self, incidents: list[Incident]) -> None:
        await self._publish_live(f"{self._prefix}.live.incidents", incidents)

    async def _publish_live(self, subject: str, items: list[Any]) -> None:
        if not items:
            return
        nc = self._nc
        for data in _fit_list(items, self._live_encoder, nc.max_payload if nc else 1 << 20):
            try:
                if nc is None or not nc.is_connected:
                    raise nats.errors.ConnectionReconnectingError
                await nc.publish(subject, data)
            except nats.errors.MaxPayloadError:
                self._metrics.inc("honeyatlas_bus_live_messages_dropped_total", reason="too_large")
            except nats.errors.Error:
                self._metrics.inc("honeyatlas_bus_live_messages_dropped_total", reason="disconnected")

    async def subscribe_live(self, on_events: EventsHandler, on_incidents: IncidentsHandler) -> None:
        nc = self._nc
        if nc is None:
            raise BusError("the bus is not started")

        async def events_cb(msg: Msg) -> None:
            self._dispatch(msg, self._events_decoder, on_events)

        async def incidents_cb(msg: Msg) -> None:
            self._dispatch(msg, self._incidents_decoder, on_incidents)

        for subject, cb in ((f"{self._prefix}.live.events", events_cb),
                            (f"{self._prefix}.live.incidents", incidents_cb)):
            self._live_subs.append(await nc.subscribe(
                subject, cb=cb, pending_msgs_limit=self._live_pending_messages, pending_bytes_limit=_LIVE_PENDING_BYTES))

    def _dispatch(self, msg: Msg, decoder: msgspec.msgpack.Decoder[Any], handler: Any) -> None:
        try:
            handler(decoder.decode(msg.data))
        except Exception:
            log.exception("bus: live message on %s not handled", msg.subject)
            self._metrics.inc("honeyatlas_bus_live_messages_dropped_total", reason="handler_error")

    # --- Leases ----------------------------------------------------------------------------

    async def acquire(self, name: str, holder: str) -> bool:
        kv, key = self._lease(name)
        try:
            await kv.create(key, holder.encode())
            return True
        except nats.js.errors.KeyWrongLastSequenceError:
            return await self.renew(name, holder)  # held: by us (renew) or by another (False)
        except nats.errors.Error as exc:
            raise BusError(f"cannot acquire lease {name}: {exc}") from exc

    async def renew(self, name: str, holder: str) -> bool:
        kv, key = self._lease(name)
        try:
            entry = await kv.get(key)
            if entry.value != holder.encode():
                return False
            await kv.update(key, holder.encode(), last=entry.revision)
            return True
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyWrongLastSequenceError):
            return False  # expired, released, or taken in between
        except nats.errors.Error as exc:
            raise BusError(f"cannot renew lease {name}: {exc}") from exc

    async def release(self, name: str, holder: str) -> None:
        kv, key = self._lease(name)
        try:
            entry = await kv.get(key)
            if entry.value == holder.encode():
                await kv.delete(key, last=entry.revision)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyWrongLastSequenceError):
            pass  # gone or taken already: nothing of ours to free
        except nats.errors.Error as exc:
            raise BusError(f"cannot release lease {name}: {exc}") from exc

    def _lease(self, name: str) -> tuple[KeyValue, str]:
        if self._kv is None:
            raise BusError("the bus is not started")
        # KV keys allow few characters; names like "follow:/var/log/cowrie.json" are hashed.
        key = name if _LEASE_KEY.match(name) else "h-" + hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
        return self._kv, key


def _fit(batch: EventBatch, encoder: BatchEncoder, limit: int) -> list[tuple[bytes, int]]:
    """The batch as messages of at most `limit` bytes (NATS max_payload, 1 MiB by default):
    halved until each fits, deterministically, so a retry splits the same way and the
    per-chunk message ids still deduplicate. The receipt travels in the last chunk."""
    data = encoder.encode(batch)
    if len(data) <= limit:
        return [(data, len(batch.events))]
    events, letters, streams, hits = batch.events, batch.dead_letters, batch.streams, batch.hits
    if len(events) >= 2:
        half = len(events) // 2
        first = msgspec.structs.replace(batch, events=events[:half], dead_letters=[], receipt=None,
                                        streams=streams[:half], hits=hits[:half])
        second = msgspec.structs.replace(batch, events=events[half:], streams=streams[half:], hits=hits[half:])
    elif len(events) + len(letters) >= 2:
        half = max(len(letters) // 2, 1)
        first = msgspec.structs.replace(batch, events=[], dead_letters=letters[:half], receipt=None, streams=[],
                                        hits=[])
        second = msgspec.structs.replace(batch, dead_letters=letters[half:])
    else:
        raise BusError(f"one record of {len(data)} bytes exceeds the NATS max_payload of {limit} bytes; "
                       "raise max_payload in nats-server's configuration")
    return _fit(first, encoder, limit) + _fit(second, encoder, limit)


def _fit_list(items: list[Any], encoder: msgspec.msgpack.Encoder, limit: int) -> list[bytes]:
    data = encoder.encode(items)
    if len(data) <= limit or len(items) < 2:
        return [data]  # one oversized item: publish fails and is counted as dropped
    half = len(items) // 2
    return _fit_list(items[:half], encoder, limit) + _fit_list(items[half:], encoder, limit)
