"""Credentials for the servers the tests start.

Every route but the page shell, health and login needs a reader since the access layer
(web/access.py). A test server gets an admin read token when it starts (`grant`), and the
HTTP clients of the test session (urllib's opener, httpx's Client and AsyncClient: see
`install`) send it as `Authorization: Bearer` on every request to that server's address
that carries no Authorization of its own (an ingest request keeps its sensor token). Tests
of the access rules themselves pass their own headers, or mark a request anonymous (header
`X-Test-Anonymous`, removed before sending), and so see exactly what a stranger would.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path

from honeyatlas.access import Accounts, Role

_READERS: dict[str, str] = {}  # host:port -> read token, for the servers of this test session
ANONYMOUS = "X-Test-Anonymous"  # a request with this header is sent without credentials


class _Reader(urllib.request.BaseHandler):
    handler_order = 100

    def http_request(self, request: urllib.request.Request) -> urllib.request.Request:
        if request.has_header(ANONYMOUS):
            request.remove_header(ANONYMOUS)
            return request
        token = _READERS.get(urllib.parse.urlsplit(request.full_url).netloc)
        if token is not None and not request.has_header("Authorization"):
            request.add_unredirected_header("Authorization", f"Bearer {token}")
        return request

    https_request = http_request


def install() -> None:
    """Make urllib and httpx send the test readers' tokens (once per test session)."""
    import httpx

    urllib.request.install_opener(urllib.request.build_opener(_Reader()))

    def sign(request: httpx.Request) -> None:
        if ANONYMOUS in request.headers:
            del request.headers[ANONYMOUS]
            return
        token = _READERS.get(f"{request.url.host}:{request.url.port}")
        if token is not None and "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {token}"

    sync_send, async_send = httpx.Client.send, httpx.AsyncClient.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs: object) -> httpx.Response:
        sign(request)
        return sync_send(self, request, **kwargs)  # type: ignore[arg-type]

    async def asend(self: httpx.AsyncClient, request: httpx.Request, **kwargs: object) -> httpx.Response:
        sign(request)
        return await async_send(self, request, **kwargs)  # type: ignore[arg-type]

    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]


def grant(url: str, accounts: Accounts, name: str = "tests") -> str:
    """Give the server at `url` an admin read token for the tests; returns it."""
    existing = {t.name for t in accounts.tokens()}
    suffix = 0
    while f"{name}{suffix or ''}" in existing:
        suffix += 1
    token = accounts.add_token(f"{name}{suffix or ''}", Role.ADMIN)
    _READERS[urllib.parse.urlsplit(url).netloc] = token
    return token


def register(url: str, token: str) -> None:
    """Send `token` to the server at `url` too (several processes sharing one accounts store)."""
    _READERS[urllib.parse.urlsplit(url).netloc] = token


def grant_in(url: str, data_dir: Path) -> str:
    """`grant` for a server in another process, through its data directory's accounts file."""
    from honeyatlas.store.accounts import SQLiteAccounts

    accounts = SQLiteAccounts(data_dir / "accounts.sqlite3")
    accounts.open()
    try:
        return grant(url, accounts)
    finally:
        accounts.close()


def token_for(url: str) -> str | None:
    return _READERS.get(urllib.parse.urlsplit(url).netloc)


def headers_for(url: str) -> dict[str, str]:
    """The Authorization header of the server at `url` (for WebSocket and httpx clients)."""
    token = token_for(url)
    return {"Authorization": f"Bearer {token}"} if token else {}


def anonymous(url: str, **kwargs: object) -> urllib.request.Request:
    """A request that goes without the test credentials."""
    request = urllib.request.Request(url, **kwargs)  # type: ignore[arg-type]
    request.add_header(ANONYMOUS, "1")
    return request
