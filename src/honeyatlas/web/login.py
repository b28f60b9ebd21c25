"""`/api/v1/session`, `/api/v1/login` and `/api/v1/logout`: the routes open to everyone.

A login checks the password (argon2id, in a worker thread: about 50 ms of CPU) and answers
with a session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's
page sends it, so no cross-site request acts as the user), Secure when served over HTTPS.
Failed logins are limited per client address and per user name (`web.login_failures_per_
minute`; then 429 with Retry-After), logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.params import JSONBody
from litestar.status_codes import HTTP_204_NO_CONTENT, HTTP_429_TOO_MANY_REQUESTS

from honeyatlas.access import Principal
from honeyatlas.web.access import OPEN, SESSION_COOKIE, AccessPolicy

log = logging.getLogger("honeyatlas.access")

MAX_CREDENTIAL_CHARS = 1024  # longer is not a password anyone types; argon2 would hash it anyway


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    username: str = msgspec.field()
    password: str = msgspec.field()


class SessionView(msgspec.Struct):
    user: str | None
    role: str | None
    via: str | None
    public_view: bool


class LoggedIn(msgspec.Struct):
    user: str
    role: str


def _client(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "-"


def login_routes(policy: AccessPolicy) -> list[BaseRouteHandler]:
    @get("/api/v1/session", tags=["access"], opt=OPEN, summary="Who this request is: user, role, public view")
    async def session(request: Request[Any, Any, Any]) -> SessionView:
        principal: Principal | None = request.state.principal
        return SessionView(
            user=principal.name if principal else None, role=str(principal.role) if principal else None,
            via=principal.via if principal else None, public_view=policy.public_view,
        )

    @post("/api/v1/login", tags=["access"], opt=OPEN, status_code=200,
          summary="Log in with a user name and password; sets the session cookie")
    async def login(request: Request[Any, Any, Any], data: JSONBody[Credentials]) -> Response[Any]:
        address = _client(request)
        name = data.username[:MAX_CREDENTIAL_CHARS]
        keys = (f"addr:{address}", f"user:{name.lower()}")
        wait = policy.limiter.retry_after(*keys)
        if wait:
            policy.metrics.inc("honeyatlas_logins_total", outcome="rate_limited")
            log.warning("login refused (too many failures): user %r from %s", name, address)
            return Response({"detail": f"too many failed logins; try again in {wait} s"},
                            status_code=HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": str(wait)})
        principal = None
        if len(data.password) <= MAX_CREDENTIAL_CHARS:
            principal = await asyncio.to_thread(policy.accounts.verify_password, name, data.password)
        if principal is None:
            policy.limiter.failed(*keys)
            policy.metrics.inc("honeyatlas_logins_total", outcome="failed")
            log.warning("login failed: user %r from %s", name, address)
            raise NotAuthorizedException("wrong user name or password")
        policy.limiter.succeeded(keys[1])
        ttl = policy.settings.session_ttl_seconds
        cookie_value = await asyncio.to_thread(policy.accounts.open_session, principal, ttl)
        policy.metrics.inc("honeyatlas_logins_total", outcome="ok")
        log.info("login: user %r (%s) from %s", principal.name, principal.role, address)
        return Response(
            LoggedIn(user=principal.name, role=str(principal.role)),
            cookies=[Cookie(key=SESSION_COOKIE, value=cookie_value, max_age=int(ttl), path="/", httponly=True,
                            samesite="strict", secure=request.url.scheme == "https")],
        )

    @post("/api/v1/logout", tags=["access"], opt=OPEN, status_code=HTTP_204_NO_CONTENT,
          summary="End this session")
    async def logout(request: Request[Any, Any, Any]) -> Response[None]:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            await asyncio.to_thread(policy.accounts.close_session, cookie)
        return Response(None, status_code=HTTP_204_NO_CONTENT,
                        cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/", httponly=True,
                                        samesite="strict", secure=request.url.scheme == "https")])

    return [session, login, logout]
