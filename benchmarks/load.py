"""Load generators, each run in its own process: HTTP senders and WebSocket receivers.

The sender speaks raw HTTP/1.1 over asyncio streams with keep-alive (no client library in
the way: the client must not be the bottleneck, and its CPU is reported so a reader can
check). Three modes: `saturate` (every connection posts back to back; throughput),
`paced` (open loop at a fixed rate; each record's marker holds its *scheduled* send time,
so a late client shows up as latency, not as missing samples) and `flood` (open loop at a
fixed rate far above capacity, whatever the answers: overload).

The receiver holds many minimal WebSocket clients (`_LiveClient`: handshake, then frames
parsed from the socket buffer), so that 1,000 of them do not need the machine's second
core to keep up. Every client counts the marked events it receives (a byte count, cheap); every
`sample_every`-th client also extracts each marker and records a latency.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from benchmarks.harness import process_cpu_seconds
from benchmarks.records import BATCH, Batches, marker_count_needle, marker_pattern

Ready = Callable[[], float]


class HttpConnection:
    """One keep-alive HTTP/1.1 connection that POSTs prepared bodies."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        try:
            self._writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            header = await self._reader.readuntil(b"\r\n\r\n")
            status = int(header[9:12])
            fields = header.lower()
            close = b"connection: close" in fields
            at = fields.find(b"content-length:")
            if at >= 0:
                length = int(fields[at + 15 : fields.index(b"\r\n", at)])
                payload = await self._reader.readexactly(length)
            elif b"transfer-encoding: chunked" in fields:
                payload = await self._read_chunked()
            else:
                payload, close = await self._reader.read(), True
        except (OSError, asyncio.IncompleteReadError):
            self.close()
            raise
        if close:
            self.close()
        return status, payload

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        parts = []
        while True:
            size = int((await self._reader.readline()).split(b";")[0], 16)
            if size == 0:
                await self._reader.readline()
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readline()


def _request_head(spec: dict[str, Any]) -> bytes:
    return (
        f"POST {spec['path']} HTTP/1.1\r\nHost: {spec['host']}:{spec['port']}\r\n"
        f"Authorization: Bearer {spec['token']}\r\nContent-Type: application/x-ndjson\r\n"
    ).encode()


def _events_in(status: int, payload: bytes) -> int:
    if status != 200:
        return 0
    return int(json.loads(payload).get("events", 0))


def sender(spec: dict[str, Any], ready: Ready) -> dict[str, Any]:
    """Process entry: run one sender as `spec` says, return its counts."""
    modes = {"saturate": _saturate, "paced": _paced, "flood": _flood}
    return asyncio.run(modes[spec["mode"]](spec, ready))


async def _saturate(spec: dict[str, Any], ready: Ready) -> dict[str, Any]:
    bodies = Batches(seed=spec["seed"]).prebuilt(spec.get("bodies", 64), spec["tag"])
    head = _request_head(spec)
    statuses: Counter[int] = Counter()
    counts = {"events": 0, "records": 0, "errors": 0, "events_total": 0}
    start = ready()
    end = start + spec["duration"]
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    cpu0 = process_cpu_seconds()

    # With `idempotency`, every request carries its own Idempotency-Key, as the forward agent
    # sends them: the server then records a receipt (and a cluster's ingest a message id).
    keyed = spec.get("idempotency", False)
    key_prefix = f"{spec['tag']}-{spec['seed']}-"

    async def one_connection(n: int) -> None:
        connection = HttpConnection(spec["host"], spec["port"])
        i = n
        while time.monotonic() < end:
            body = bodies[i % len(bodies)]
            request_head = head + f"Idempotency-Key: {key_prefix}{n}-{i}\r\n".encode() if keyed else head
            i += 1
            try:
                status, payload = await connection.post(request_head, body)
            except (OSError, asyncio.IncompleteReadError):
                counts["errors"] += 1
                await asyncio.sleep(0.05)
                continue
            events = _events_in(status, payload)
            counts["events_total"] += events  # what the live hub will publish, window or not
            if time.monotonic() <= end:  # only what completed inside the window counts
                statuses[status] += 1
                counts["records"] += BATCH
                counts["events"] += events
        connection.close()

    await asyncio.gather(*(one_connection(n) for n in range(spec["connections"])))
    elapsed = max(time.monotonic() - start, 1e-9)
    return {"statuses": dict(statuses), **counts, "seconds": spec["duration"], "elapsed": elapsed,
            "cpu_seconds": process_cpu_seconds() - cpu0}


async def _paced(spec: dict[str, Any], ready: Ready) -> dict[str, Any]:
    batches = Batches(seed=spec["seed"])
    transport = spec.get("transport", "http")
    interval = BATCH / spec["rate"]
    statuses: Counter[int] = Counter()
    counts = {"events": 0, "errors": 0, "batches": 0}
    late: list[float] = []
    seq_base = spec["worker"] * 1_000_000_000

    if transport == "http":
        head = _request_head(spec)
        free: asyncio.Queue[HttpConnection] = asyncio.Queue()
        for _ in range(spec["connections"]):
            free.put_nowait(HttpConnection(spec["host"], spec["port"]))

        async def send(body: bytes) -> None:
            connection = await free.get()
            try:
                status, payload = await connection.post(head, body)
                statuses[status] += 1
                counts["events"] += _events_in(status, payload)
            except (OSError, asyncio.IncompleteReadError):
                counts["errors"] += 1
            finally:
                free.put_nowait(connection)
    else:  # "ws-feed": the naive fan-out server's feed, events as stdlib JSON
        from websockets.asyncio.client import connect

        feed = await connect(spec["feed_url"], max_size=None, compression=None, ping_interval=None)
        templates = spec["events"]

        async def send(body: bytes) -> None:  # body is a JSON list already
            await feed.send(body.decode())
            statuses[200] += 1
            counts["events"] += BATCH

    start = ready()
    end = start + spec["duration"]
    cpu0 = process_cpu_seconds()
    tasks: set[asyncio.Task[None]] = set()
    k = 0
    while True:
        scheduled = start + k * interval
        if scheduled >= end:
            break
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late.append(-delay)
        send_ns = int(scheduled * 1e9)
        first = seq_base + k * BATCH
        if transport == "http":
            body = batches.marked(spec["tag"], first, send_ns)
        else:
            events = [dict(templates[(first + i) % len(templates)], session=f"{spec['tag']}{first + i}.{send_ns}")
                      for i in range(BATCH)]
            body = json.dumps(events, separators=(",", ":")).encode()
        task = asyncio.create_task(send(body))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        counts["batches"] += 1
        k += 1
    if tasks:
        await asyncio.wait(tasks, timeout=spec.get("drain_seconds", 30))
    cpu = process_cpu_seconds() - cpu0
    if transport != "http":
        await feed.close()
    return {"statuses": dict(statuses), **counts, "seconds": spec["duration"], "cpu_seconds": cpu,
            "late_max": max(late, default=0.0), "late_count": len(late)}


async def _flood(spec: dict[str, Any], ready: Ready) -> dict[str, Any]:
    """Open loop: a batch every BATCH/rate seconds, whatever the server answers.

    Each connection carries one request at a time (HTTP/1.1 without pipelining); a batch
    whose send time comes while every connection is busy is counted `unsent` (the offered
    load the client could not deliver) rather than queued, so the client never slows down
    to the server's pace. Answers are timed from the scheduled send time."""
    bodies = Batches(seed=spec["seed"]).prebuilt(spec.get("bodies", 64), spec["tag"])
    head = _request_head(spec)
    interval = BATCH / spec["rate"]
    statuses: Counter[int] = Counter()
    counts = {"events": 0, "errors": 0, "scheduled": 0, "unsent": 0}
    seconds: dict[int, list[float]] = {}  # status -> answer times
    free = [HttpConnection(spec["host"], spec["port"]) for _ in range(spec["connections"])]
    tasks: set[asyncio.Task[None]] = set()

    async def send(connection: HttpConnection, body: bytes, scheduled: float) -> None:
        try:
            status, payload = await connection.post(head, body)
            statuses[status] += 1
            counts["events"] += _events_in(status, payload)
            seconds.setdefault(status, []).append(time.monotonic() - scheduled)
        except (OSError, asyncio.IncompleteReadError):
            counts["errors"] += 1
        finally:
            free.append(connection)

    start = ready()
    end = start + spec["duration"]
    cpu0 = process_cpu_seconds()
    k = 0
    while (scheduled := start + k * interval) < end:
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        counts["scheduled"] += 1
        if free:
            task = asyncio.create_task(send(free.pop(), bodies[k % len(bodies)], scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        else:
            counts["unsent"] += 1
        k += 1
    sent_until = time.monotonic()
    if tasks:
        await asyncio.wait(tasks, timeout=spec.get("drain_seconds", 60))
    cpu = process_cpu_seconds() - cpu0
    for connection in free:
        connection.close()
    return {"statuses": dict(statuses), **counts, "seconds": spec["duration"], "sent_until": sent_until,
            "cpu_seconds": cpu, "answer_seconds": {str(k): v for k, v in seconds.items()}}


# --------------------------------------------------------------------------- receivers


def receiver(spec: dict[str, Any], ready: Ready) -> dict[str, Any]:
    """Process entry: hold `spec['clients']` WebSocket clients, count and time marked events."""
    return asyncio.run(_receive(spec, ready))


class _LiveClient(asyncio.Protocol):
    """A minimal WebSocket client for the server's live feed: the handshake, then the
    server's frames parsed straight from the socket buffer (server frames are not masked).

    It answers pings and a close, and nothing else. The `websockets` library's client cost
    ~1.2 ms of CPU per 60 kB frame here: 1,000 of them used 1.2 of the machine's two cores
    and their own lag became the latency being measured."""

    def __init__(self, host: str, path: str, on_message: Callable[[bytes, float], None],
                 authorization: str | None = None) -> None:
        credentials = f"Authorization: {authorization}\r\n" if authorization else ""  # the stream needs a reader
        self._request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                         f"{credentials}Sec-WebSocket-Version: 13\r\n\r\n").encode()
        self._on_message = on_message
        self._buffer = bytearray()
        self._fragments = bytearray()
        self._transport: asyncio.Transport | None = None
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self.upgraded.done():
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self._buffer[:end]).split(b"\r\n", 1)[0]
            del self._buffer[: end + 4]
            if b" 101 " not in status:
                self.upgraded.set_exception(RuntimeError(f"WebSocket upgrade refused: {status!r}"))
                return
            self.upgraded.set_result(None)
        self._frames(time.monotonic())

    def _frames(self, now: float) -> None:
        buffer = self._buffer
        while len(buffer) >= 2:
            head, size, start = buffer[0], buffer[1] & 0x7F, 2
            if size == 126:
                if len(buffer) < 4:
                    return
                size, start = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                if len(buffer) < 10:
                    return
                size, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + size:
                return
            payload = bytes(buffer[start : start + size])
            del buffer[: start + size]
            opcode, final = head & 0x0F, head & 0x80
            if opcode == 0x9:  # ping: a masked pong (a zero mask leaves the payload as it is)
                assert self._transport is not None
                self._transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)
            elif opcode == 0x8:
                if self._transport is not None:
                    self._transport.close()
            elif opcode in (0x0, 0x1, 0x2):
                if not final:
                    self._fragments += payload
                    continue
                if self._fragments:
                    payload, self._fragments = bytes(self._fragments) + payload, bytearray()
                self._on_message(payload, now)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("closed before the WebSocket upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def _receive(spec: dict[str, Any], ready: Ready) -> dict[str, Any]:
    host, port, path = _split_ws_url(spec["ws_url"])
    pattern = marker_pattern(spec["tag"])
    needle = marker_count_needle(spec["tag"])
    every = max(1, spec.get("sample_every", 1))
    limit = asyncio.Semaphore(50)
    counts = [0] * spec["clients"]
    latencies: list[float] = []
    seqs: set[bytes] = set()
    dropped = [0]
    frames = [0]
    counting = [False]

    def listener(n: int) -> Callable[[bytes, float], None]:
        sample = n % every == 0

        def on_message(message: bytes, now: float) -> None:
            if not counting[0]:
                return
            frames[0] += 1
            if message.startswith(b'{"type":"events"'):
                counts[n] += message.count(needle)
                if sample:
                    for seq, send_ns in pattern.findall(message):
                        latencies.append(now - int(send_ns) / 1e9)
                        if n == 0:
                            seqs.add(seq)
            elif message.startswith(b'{"type":"dropped"'):
                dropped[0] += int(json.loads(message)["count"])

        return on_message

    loop = asyncio.get_running_loop()

    async def open_one(n: int) -> _LiveClient:
        async with limit:
            _, client = await loop.create_connection(
                lambda: _LiveClient(f"{host}:{port}", path, listener(n), spec.get("Authorization")), host, port)
            await asyncio.wait_for(client.upgraded, 60)
            return client

    clients = await asyncio.gather(*(open_one(n) for n in range(spec["clients"])))
    counting[0] = True  # the snapshot each client gets on connecting is not part of the figure
    start = ready()
    cpu0 = process_cpu_seconds()
    await asyncio.sleep(max(0.0, start + spec["listen_seconds"] - time.monotonic()))
    cpu = process_cpu_seconds() - cpu0
    counting[0] = False
    closed_early = sum(client.closed.done() for client in clients)
    for client in clients:
        client.close()
    return {"counts": counts, "latencies": latencies, "distinct_first_client": len(seqs), "dropped": dropped[0],
            "closed_early": closed_early, "frames": frames[0], "cpu_seconds": cpu, "seconds": spec["listen_seconds"]}


def _split_ws_url(url: str) -> tuple[str, int, str]:
    rest = url.removeprefix("ws://")
    where, _, path = rest.partition("/")
    host, _, port = where.rpartition(":")
    return host.strip("[]"), int(port), "/" + path
