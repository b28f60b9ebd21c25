"""Who may use which route: every route declares its audience once, one guard enforces it.

A route handler carries `opt=OPEN | PUBLIC | ANALYST | ADMIN | INGEST` (see
`honeyatlas.access`); `AccessPolicy.guard`, installed on the whole app, authenticates the
request (a read token as `Authorization: Bearer`, else the session cookie), refuses it when
its principal is not in the route's audience (401 without credentials, 403 with too few),
and leaves the principal in `connection.state.principal` for the handler and the access log.
A route without a declared audience is refused (and tests/web/test_audiences.py fails).

Browser safety lives here too: the Host allow-list (DNS rebinding), the Origin check of the
live WebSocket (cross-site WebSocket hijacking: browsers send cookies with a WebSocket
handshake from any site), and `before_send`, which sets the security headers, `Cache-Control:
no-store` on API answers, and writes the access log.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, ValidationException
from litestar.handlers import BaseRouteHandler
from litestar.types import Message, Scope

from honeyatlas.access import Accounts, Audience, Principal, allowed
from honeyatlas.config import WebConfig
from honeyatlas.metrics import Metrics
from honeyatlas.transforms.redact import PublicView

log = logging.getLogger("honeyatlas.access")

OPEN: dict[str, Any] = {"audience": Audience.OPEN}
PUBLIC: dict[str, Any] = {"audience": Audience.PUBLIC}
ANALYST: dict[str, Any] = {"audience": Audience.ANALYST}
ADMIN: dict[str, Any] = {"audience": Audience.ADMIN}
INGEST: dict[str, Any] = {"audience": Audience.INGEST}

SESSION_COOKIE = "honeyatlas_session"
TOKEN_PREFIX = "hat_r_"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_LIMITED_KEYS = 100_000  # addresses and user names with recent failed logins

SECURITY_HEADERS = {
    # The login form posts with fetch, so form-action stays 'none'.
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def audience_of(handler: BaseRouteHandler) -> Audience | None:
    found = handler.opt.get("audience")
    return found if isinstance(found, Audience) else None


def host_name(header: str) -> str:
    """The host of a Host header, without the port and IPv6 brackets, lower case."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else ""
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class LoginLimiter:
    """Failed logins per key (a client address, a user name) in a fixed one-minute window.
    Bounded: when MAX_LIMITED_KEYS keys are held, the oldest window is forgotten first."""

    def __init__(self, failures_per_minute: int, *, window_seconds: float = 60.0) -> None:
        self._limit = failures_per_minute
        self._window = window_seconds
        self._failures: collections.OrderedDict[str, tuple[float, int]] = collections.OrderedDict()

    def retry_after(self, *keys: str, now: float | None = None) -> int:
        """Seconds until a login for these keys is allowed again; 0 when allowed now."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key in keys:
            started, count = self._failures.get(key, (now, 0))
            if now - started < self._window and count >= self._limit:
                wait = max(wait, self._window - (now - started))
        return int(wait) + 1 if wait else 0

    def failed(self, *keys: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in keys:
            started, count = self._failures.pop(key, (now, 0))
            if now - started >= self._window:
                started, count = now, 0
            self._failures[key] = (started, count + 1)
            while len(self._failures) > MAX_LIMITED_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, user_key: str) -> None:
        self._failures.pop(user_key, None)


@dataclass
class AccessPolicy:
    """The app's access rules, built once by the composition root."""

    accounts: Accounts
    settings: WebConfig
    metrics: Metrics
    public: PublicView | None = None  # the public view's redaction; None when it is off
    listen_host: str = "127.0.0.1"
    limiter: LoginLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.limiter = LoginLimiter(self.settings.login_failures_per_minute)
        configured = {host_name(h) for h in self.settings.allowed_hosts}
        if configured:
            self._hosts: frozenset[str] | None = frozenset(configured)
        elif is_loopback(host_name(self.listen_host)):
            self._hosts = LOOPBACK_NAMES
        else:
            self._hosts = None  # any host: documented, set web.allowed_hosts when published
        self._origins = frozenset(o.rstrip("/").lower() for o in self.settings.allowed_origins)

    @property
    def public_view(self) -> bool:
        return self.public is not None

    async def principal(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
        """The request's principal; None when anonymous. Presented credentials that are not
        valid (a forged or revoked token) are a 401, even on a public route."""
        authorization = connection.headers.get("authorization")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip().startswith(TOKEN_PREFIX):
                self._refused("bad_credentials")
                raise NotAuthorizedException("Authorization must be `Bearer <read token>`; see `honeyatlas token add`")
            found = await asyncio.to_thread(self.accounts.authenticate_token, token.strip())
            if found is None:
                self._refused("bad_credentials")
                raise NotAuthorizedException("read token not valid or revoked")
            return found
        cookie = connection.cookies.get(SESSION_COOKIE)
        if cookie:
            return await asyncio.to_thread(self.accounts.session, cookie)
        return None

    async def guard(self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        audience = audience_of(handler)
        if audience is None:
            self._refused("no_audience")
            raise PermissionDeniedException("this route declares no audience")
        if audience is not Audience.INGEST:  # sensors may name the server as they like: no cookie rides along
            self._check_host(connection)
        principal = None
        if audience is Audience.OPEN:  # open to anyone: credentials that fail make it anonymous
            with contextlib.suppress(NotAuthorizedException):
                principal = await self.principal(connection)
        elif audience is not Audience.INGEST:
            principal = await self.principal(connection)
        connection.state.principal = principal
        websocket = connection.scope["type"] == "websocket"
        if websocket:
            self._check_origin(connection)
        if not allowed(audience, principal, public_view=self.public_view):
            if principal is None:
                self._refused("unauthenticated")
                raise NotAuthorizedException("log in, or send a read token as `Authorization: Bearer`")
            self._refused("forbidden")
            raise PermissionDeniedException(f"needs the {audience} role")
        if websocket and self.settings.access_log:
            log_access(connection.scope, 101)

    def _check_host(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        if self._hosts is None:
            return
        host = host_name(connection.headers.get("host", ""))
        if host not in self._hosts:
            self._refused("host")
            raise ValidationException(f"Host {host!r} is not served here; list it in web.allowed_hosts")

    def _check_origin(self, connection: ASGIConnection[Any, Any, Any, Any]) -> None:
        origin = connection.headers.get("origin")
        if origin is None:
            return  # not a browser: browsers always send Origin with a WebSocket handshake
        scheme = "https" if connection.scope.get("scheme") in ("https", "wss") else "http"
        own = f"{scheme}://{connection.headers.get('host', '')}".lower()
        if origin.rstrip("/").lower() not in (own, *self._origins):
            self._refused("origin")
            raise PermissionDeniedException("a page of another origin may not open the live stream")

    def _refused(self, reason: str) -> None:
        self.metrics.inc("honeyatlas_access_refused_total", reason=reason)

    def before_send(self, message: Message, scope: Scope) -> None:
        """Security headers on every response, no-store on the API, and the access log."""
        if message["type"] != "http.response.start" or scope["type"] != "http":
            return
        headers = MutableScopeHeaders(message)
        for name, value in SECURITY_HEADERS.items():
            if name not in headers:
                headers[name] = value
        path = scope["path"]
        if path.startswith("/api/") or path == "/metrics":
            headers["cache-control"] = "no-store"
        handler = scope.get("route_handler")
        audience = audience_of(handler) if handler is not None else None
        if self.settings.access_log and audience in (Audience.PUBLIC, Audience.ANALYST, Audience.ADMIN):
            log_access(scope, message["status"])


def log_access(scope: Scope, status: int) -> None:
    principal = scope.get("state", {}).get("principal")
    who = f"{principal.via}:{principal.name}" if principal is not None else "anonymous"
    client = scope.get("client")
    address = client[0] if client else "-"
    log.info("access %s %s %s %s %d", who, address, scope.get("method", "WS"), scope["path"], status)
