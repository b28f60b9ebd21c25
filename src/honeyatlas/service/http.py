"""Serving a role's web app: the listening socket and uvicorn, the same for every role.

Slow clients are bounded by the connection guards of service/connections.py (deadlines for
request heads and bodies, a cap per client address); uvicorn's own keep-alive timer, ping
keepalive and WebSocket frame cap are set here from the configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import resource
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from litestar import Litestar

from honeyatlas.config import LiveConfig, ServerConfig
from honeyatlas.metrics import Metrics
from honeyatlas.service.connections import ConnectionGuard

log = logging.getLogger(__name__)


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """The listening socket, bound here rather than by uvicorn so a taken port is one clear
    error. Created with proto IPPROTO_TCP on purpose: asyncio sets TCP_NODELAY on accepted
    connections only when the listener's proto says TCP, and without it every response
    waits ~40 ms for Nagle and delayed ACKs (measured: GET /metrics 45 ms -> 3 ms).
    `reuse_port` lets several processes (ingest or web roles) listen on one port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as exc:
        listener.close()
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port or --host") from exc
    return listener


async def serve(app: Litestar, server_config: ServerConfig, *, live: LiveConfig, metrics: Metrics,
                start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]],
                on_ready: Callable[[str], None] | None = None, drain_seconds: float = 5.0) -> None:
    """Listen where `server_config` says (first: a taken port is one clear error before
    anything starts), start the role (`start`), serve HTTP until cancelled or signalled, then
    stop serving and stop the role (`stop`). `live` sets the WebSocket's ping and frame cap;
    refusals and timeouts are counted in `metrics`."""
    listener = listen(server_config.host, server_config.port, reuse_port=server_config.reuse_port)
    _raise_open_files_limit()
    http_protocol, ws_protocol = ConnectionGuard(server_config, metrics).protocols()
    config = uvicorn.Config(
        app,
        # h11 (measured: with httptools installed, "auto", ingest fell 7,800 -> 6,600
        # events/s) and websockets-sansio, each with the guards of service/connections.py
        http=http_protocol,
        ws=ws_protocol,
        ws_per_message_deflate=False,  # measured: deflate costs ~4x the CPU per frame
        ws_max_size=live.max_incoming_frame_bytes,
        ws_ping_interval=live.ping_interval_seconds,
        ws_ping_timeout=live.ping_timeout_seconds,
        timeout_keep_alive=server_config.keep_alive_timeout_seconds,  # type: ignore[arg-type]  # float works
        # HTTPS and WSS directly (docs/deployment.md); the scope's scheme then says "https",
        # which marks the session cookie Secure.
        ssl_certfile=server_config.tls_cert_path,
        ssl_keyfile=server_config.tls_key_path,
        # Behind a reverse proxy: believe its X-Forwarded-For/-Proto, and only its.
        proxy_headers=bool(server_config.forwarded_allow_ips),
        forwarded_allow_ips=list(server_config.forwarded_allow_ips) or None,
        log_level="warning",
        lifespan="off",
        # On a signal, requests in flight get this long to finish (ingest.shutdown_drain_seconds,
        # at least 5 s) before uvicorn cancels them: a batch being stored is answered, not cut.
        timeout_graceful_shutdown=max(5, math.ceil(drain_seconds)),
    )
    try:
        config.load()  # reads the certificate now, so a bad one is one clear error
    except (OSError, ValueError) as exc:
        listener.close()
        if not server_config.tls_cert_path:
            raise
        raise OSError(f"cannot serve HTTPS with {server_config.tls_cert_path} and {server_config.tls_key_path}: "
                      f"{exc}; check server.tls_cert_path and server.tls_key_path") from exc
    try:
        await start()
    except BaseException:
        listener.close()
        raise
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        bound_host, bound_port = listener.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        if on_ready is not None and server.started:
            scheme = "https" if server_config.tls_cert_path else "http"
            on_ready(f"{scheme}://{shown}:{bound_port}/")
        await task
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        listener.close()
        await stop()
    for received in reversed(server.signals):  # as uvicorn would have, now that the role has stopped
        signal.raise_signal(received)


class _Server(uvicorn.Server):
    """uvicorn's server, except that a SIGTERM or SIGINT is raised again only after the role
    has stopped (`serve` does it), not at the end of uvicorn's own shutdown: uvicorn re-raises
    it on its way out, and the default SIGTERM action then ended the process before the
    in-flight ingests were drained and the store closed."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.signals: list[int] = []

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        self.signals = []
        inner = super().capture_signals()
        inner.__enter__()
        try:
            yield
        finally:
            self.signals = list(self._captured_signals)
            self._captured_signals.clear()
            inner.__exit__(None, None, None)


def _raise_open_files_limit() -> None:
    """Every held connection is a file descriptor, and the usual soft limit (1,024) is less
    than a slowloris from a few dozen addresses holds: raise it to the hard limit, as
    nginx's worker_rlimit_nofile is raised. When the limit is still reached, asyncio stops
    accepting for a second and the deadlines free descriptors meanwhile."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError) as exc:
        log.warning("open files limit stays at %d (could not raise it to %d: %s)", soft, wanted, exc)
