"""The HTTP server's connection guards: uvicorn's h11 and WebSocket protocols with deadlines
and a per-address cap, which uvicorn does not have.

uvicorn closes a keep-alive connection idle for `timeout_keep_alive`, but nothing else: a
client that opens a connection and sends nothing, or trickles a request head one byte at a
time (slowloris), or a body ten bytes a second, holds its connection for ever. Here each
connection, from the moment it is accepted:

- takes a slot from the listener's `AddressLimiter` (HTTP and WebSocket share it; the slot
  follows the connection through a WebSocket upgrade) or is answered 503 and closed;
- must deliver a complete request head within `header_timeout_seconds` of its first byte
  (of being accepted, for a new connection), or gets 408 and is closed;
- must deliver a body without a silence of `body_timeout_seconds` and at an average of
  `body_min_bytes_per_second` after that grace (time while the app is not reading is not
  the client's: the budget restarts), or is closed;
- idle between requests: uvicorn's own keep-alive timer, counted here.

A WebSocket client is pinged (uvicorn's keepalive) and dropped when no pong comes in time;
a frame over `live.max_incoming_frame_bytes` closes it with 1009. Every refusal and
timeout is counted with its reason (`honeyatlas_connections_refused_total`,
`honeyatlas_connections_timed_out_total`, listener `http` or `websocket`).

The subclasses override only uvicorn's documented hook points of the protocol classes
(connection_made/lost, data_received, on_response_complete, handle_websocket_upgrade,
timeout_keep_alive_handler, keepalive_timeout, handle_parser_exception); uvicorn is pinned
in pyproject.toml, and tests/test_slow_clients.py drives each path over real sockets.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from honeyatlas.config import ServerConfig
from honeyatlas.metrics import Metrics
from honeyatlas.sources.limits import AddressLimiter

_TOO_MANY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
             b"retry-after: 10\r\nconnection: close\r\ncontent-length: 38\r\n\r\n"
             b"too many connections from your address")
_HEAD_TOO_SLOW = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
                  b"connection: close\r\ncontent-length: 33\r\n\r\nrequest head not received in time")


class ConnectionGuard:
    """What every connection of one HTTP server shares: the per-address slots, the
    deadlines and the counts."""

    def __init__(self, settings: ServerConfig, metrics: Metrics) -> None:
        self.limiter = AddressLimiter("http", settings.max_connections_per_address, metrics)
        self.websocket = AddressLimiter("websocket", 0, metrics)  # counts only: its slots are the HTTP ones
        self.header_timeout = settings.header_timeout_seconds
        self.body_timeout = settings.body_timeout_seconds
        self.body_min_rate = settings.body_min_bytes_per_second

    def protocols(self) -> tuple[Any, Any]:
        """The (http, ws) protocol factories for uvicorn.Config."""
        return (functools.partial(GuardedH11Protocol, guard=self),
                functools.partial(GuardedWebSocketProtocol, guard=self))


class GuardedH11Protocol(H11Protocol):
    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = guard
        self._slot: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._phase: str | None = None  # "header" or "body" while a deadline runs
        self._body_since = 0.0  # start of the body budget
        self._body_bytes = 0
        self._last_read = 0.0
        self._upgraded = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._slot = self._guard.limiter.acquire(self.client)
        if self._slot is None:
            transport.write(_TOO_MANY)
            transport.close()
            return
        self._start_header()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        if self._slot is not None and not self._upgraded:
            self._guard.limiter.release(self._slot)
            self._slot = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase is None and self.conn.their_state is h11.IDLE:
            self._start_header()  # the first byte of the next request on a kept-alive connection
        elif self._phase == "body":
            self._body_bytes += len(data)
            self._last_read = self.loop.time()
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may parse a pipelined request
        self._follow()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._stop_timer()
        self._upgraded = True
        super().handle_websocket_upgrade(event)
        upgraded = self.transport.get_protocol()
        if isinstance(upgraded, GuardedWebSocketProtocol) and self._slot is not None:
            upgraded.hold(self._slot)
        elif self._slot is not None:
            self._guard.limiter.release(self._slot)
        self._slot = None

    def timeout_keep_alive_handler(self) -> None:
        if not self.transport.is_closing():
            self._guard.limiter.timed_out("keep_alive")
        super().timeout_keep_alive_handler()

    # --- deadlines ------------------------------------------------------------------------

    def _follow(self) -> None:
        """Move the deadline along with the request: head read -> body, body read -> none."""
        if self._upgraded or self.transport.is_closing():
            return
        state = self.conn.their_state
        if self._phase == "header" and state is not h11.IDLE:
            self._stop_timer()
            if state is h11.SEND_BODY:
                now = self.loop.time()
                self._phase, self._body_since, self._body_bytes, self._last_read = "body", now, 0, now
                self._timer = self.loop.call_later(self._guard.body_timeout, self._body_check)
        elif self._phase == "body" and state is not h11.SEND_BODY:
            self._stop_timer()

    def _start_header(self) -> None:
        self._stop_timer()
        self._phase = "header"
        self._timer = self.loop.call_later(self._guard.header_timeout, self._header_expired)

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = None

    def _header_expired(self) -> None:
        self._timer = None
        self._phase = None
        if self.transport.is_closing():
            return
        self._guard.limiter.timed_out("header")
        self.transport.write(_HEAD_TOO_SLOW)
        self.transport.close()

    def _body_check(self) -> None:
        """Close the connection if its body stalled or came too slowly; else look again when
        it next could be late."""
        self._timer = None
        if self.transport.is_closing() or self._phase != "body":
            return
        guard, now = self._guard, self.loop.time()
        if self.flow.read_paused:  # the app is not reading: not the client's delay
            self._body_since, self._body_bytes, self._last_read = now, 0, now
            self._timer = self.loop.call_later(guard.body_timeout, self._body_check)
            return
        stall_at = self._last_read + guard.body_timeout
        slow_at = (self._body_since + guard.body_timeout + self._body_bytes / guard.body_min_rate
                   if guard.body_min_rate else float("inf"))
        due = min(stall_at, slow_at)
        if now < due:
            self._timer = self.loop.call_later(due - now, self._body_check)
            return
        self._phase = None
        guard.limiter.timed_out("body")
        self.transport.close()  # the app's next receive() reads a disconnect


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._guard = guard
        self._slot: str | None = None

    def hold(self, slot: str) -> None:
        """Take over the HTTP connection's per-address slot; given back when this closes."""
        self._slot = slot

    def connection_lost(self, exc: Exception | None) -> None:
        if self._slot is not None:
            self._guard.limiter.release(self._slot)
            self._slot = None
        super().connection_lost(exc)

    def keepalive_timeout(self) -> None:
        if not (self.close_sent or self.transport.is_closing()):
            self._guard.websocket.timed_out("ping")
        super().keepalive_timeout()

    def handle_parser_exception(self) -> None:
        sent = self.conn.close_sent
        self._guard.websocket.refused("frame_too_large" if sent is not None and sent.code == 1009 else "protocol_error")
        super().handle_parser_exception()
