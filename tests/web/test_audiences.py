"""Every route declares its audience, and each audience gets exactly what it may have.

The table `REQUESTS` names one concrete request per route of the app (the OpenAPI document's
routes, the page shell, the static files and the live WebSocket). A route the app serves that
is not in the table, or that declares no audience, fails `test_every_route_declares_an_audience`:
whoever adds a route decides who may use it, here and in its decorator.

Then every request is made as each kind of caller (nobody, an anonymous visitor of the public
view, an analyst's session, an analyst's and an admin's read token, a forged token, a revoked
token) and its status is checked against the route's audience. Real server, real accounts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from honeyatlas.access import Audience, Role
from honeyatlas.web.access import audience_of
from tests.auth import ANONYMOUS
from tests.conftest import RunningServer, start_server

SHA = "ab" * 32
# route path template -> (method, concrete path, JSON body or None)
REQUESTS: dict[str, tuple[str, str, Any]] = {
    "/": ("GET", "/", None),
    "/static": ("GET", "/static/app.css", None),
    "/api/v1": ("GET", "/api/v1", None),  # the OpenAPI document's own root (JSON)
    "/api/v1/openapi.json": ("GET", "/api/v1/openapi.json", None),
    "/api/v1/{path:str}": ("GET", "/api/v1/openapi.yaml", None),  # the document in other renderings
    "/api/v1/health": ("GET", "/api/v1/health", None),
    "/api/v1/session": ("GET", "/api/v1/session", None),
    # A password longer than any typed one is refused before hashing: the table stays fast.
    "/api/v1/login": ("POST", "/api/v1/login", {"username": "nobody", "password": "x" * 2000}),
    "/api/v1/logout": ("POST", "/api/v1/logout", None),
    "/api/v1/ingest/{fmt:str}": ("POST", "/api/v1/ingest/cowrie", None),
    "/api/v1/stats/summary": ("GET", "/api/v1/stats/summary", None),
    "/api/v1/live": ("WS", "/api/v1/live", None),
    "/api/v1/events": ("GET", "/api/v1/events?limit=5", None),
    "/api/v1/events/export": ("GET", "/api/v1/events/export?format=json", None),
    "/api/v1/stats/histogram": ("GET", "/api/v1/stats/histogram", None),
    "/api/v1/sensors": ("GET", "/api/v1/sensors", None),
    "/api/v1/rejected": ("GET", "/api/v1/rejected", None),
    "/metrics": ("GET", "/metrics", None),
    "/api/v1/incidents": ("GET", "/api/v1/incidents", None),
    "/api/v1/incidents/{incident_id:str}": ("GET", "/api/v1/incidents/inc_0123456789abcdef01234567", None),
    "/api/v1/attackers/{ip:str}": ("GET", "/api/v1/attackers/203.0.113.9", None),
    "/api/v1/malware/{sha256:str}": ("GET", f"/api/v1/malware/{SHA}", None),
    "/api/v1/iocs": ("GET", "/api/v1/iocs", None),
    "/api/v1/stix": ("GET", "/api/v1/stix", None),
    "/api/v1/incidents/{incident_id:str}/stix": ("GET", "/api/v1/incidents/inc_0123456789abcdef01234567/stix", None),
    "/api/v1/incidents/{incident_id:str}/misp": ("GET", "/api/v1/incidents/inc_0123456789abcdef01234567/misp", None),
    "/attackers/{ip:str}": ("GET", "/attackers/203.0.113.9", None),
    "/incidents/{incident_id:str}": ("GET", "/incidents/inc_0123456789abcdef01234567", None),
    "/malware/{sha256:str}": ("GET", f"/malware/{SHA}", None),
}
ANALYST, ANALYST_PASSWORD = "ana", "analyst password 1234"


def served_routes(server: RunningServer) -> dict[str, Any]:
    """Every route handler of the app by path template (the OpenAPI document's and the rest)."""
    found: dict[str, Any] = {}
    for route in server.service.app.routes:
        for handler in getattr(route, "route_handlers", None) or [getattr(route, "route_handler", None)]:
            if handler is None or set(getattr(handler, "http_methods", ())) == {"OPTIONS"}:
                continue  # Litestar's own OPTIONS answer of each path (refused by the guard: no audience)
            path = route.path_format if "{" not in route.path else route.path
            if path.startswith("/static"):
                path = "/static"
            found[path] = handler
    return found


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningServer]]:
    """Two servers: the public view off (the default) and on."""
    closed, stop_closed = start_server(tmp_path_factory.mktemp("closed") / "data")
    public, stop_public = start_server(tmp_path_factory.mktemp("public") / "data", public={"enabled": True})
    try:
        yield {"closed": closed, "public": public}
    finally:
        stop_closed()
        stop_public()


def _callers(server: RunningServer) -> dict[str, dict[str, str]]:
    """Headers of each kind of caller on `server` (made once per server)."""
    known = getattr(server, "_callers", None)
    if known is not None:
        return known
    accounts = server.service.accounts
    accounts.add_user(ANALYST, Role.ANALYST, ANALYST_PASSWORD)
    login = httpx.post(f"{server.url}api/v1/login", json={"username": ANALYST, "password": ANALYST_PASSWORD},
                       headers={ANONYMOUS: "1"})
    assert login.status_code == 200, login.text
    revoked = accounts.add_token("gone", Role.ADMIN)
    accounts.revoke_token("gone")
    known = {
        "nobody": {ANONYMOUS: "1"},
        "analyst session": {ANONYMOUS: "1", "Cookie": login.headers["set-cookie"].split(";", 1)[0]},
        "analyst token": {"Authorization": f"Bearer {accounts.add_token('an-token', Role.ANALYST)}"},
        "admin token": {"Authorization": f"Bearer {accounts.add_token('ad-token', Role.ADMIN)}"},
        "forged token": {"Authorization": "Bearer hat_r_0123456789abcdef_" + "x" * 43},
        "revoked token": {"Authorization": f"Bearer {revoked}"},
    }
    server._callers = known  # type: ignore[attr-defined]
    return known


def expected(audience: Audience, caller: str, public_view: bool) -> str:
    """"ok" (served, whatever the route then answers), "401" or "403"."""
    if audience is Audience.INGEST:
        return "401"  # no sensor token: the ingest route's own answer
    if caller in ("forged token", "revoked token"):
        return "ok" if audience is Audience.OPEN else "401"
    if audience is Audience.OPEN:
        return "ok"
    if caller == "nobody":
        return "ok" if audience is Audience.PUBLIC and public_view else "401"
    if audience is Audience.ADMIN and caller != "admin token":
        return "403"
    return "ok"


def request(server: RunningServer, template: str, headers: dict[str, str]) -> int:
    method, path, body = REQUESTS[template]
    url = server.url.rstrip("/") + path
    if method == "WS":
        ws_headers = {k: v for k, v in headers.items() if k != ANONYMOUS}
        try:
            with connect(url.replace("http://", "ws://"), additional_headers=ws_headers, open_timeout=10) as ws:
                ws.recv(timeout=10)
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code
    answer = httpx.request(method, url, headers=headers, json=body, timeout=30)
    return answer.status_code


def test_every_route_declares_an_audience(servers: dict[str, RunningServer]) -> None:
    routes = served_routes(servers["closed"])
    undeclared = sorted(path for path, handler in routes.items() if audience_of(handler) is None)
    assert not undeclared, f"routes without an audience (opt=OPEN|PUBLIC|ANALYST|ADMIN|INGEST): {undeclared}"
    unknown = sorted(set(routes) - set(REQUESTS))
    assert not unknown, f"routes not in REQUESTS: add each with the request that exercises it: {unknown}"
    schema = httpx.get(f"{servers['closed'].url}api/v1/openapi.json", headers={ANONYMOUS: "1"}).json()
    assert set(schema["paths"]) <= {p.replace(":str", "") for p in routes}  # the document lists served routes


@pytest.mark.parametrize("view", ["closed", "public"])
def test_each_caller_gets_what_its_audience_allows(servers: dict[str, RunningServer], view: str) -> None:
    server = servers[view]
    routes = served_routes(server)
    callers = _callers(server)
    wrong = []
    # Logout last: it ends the analyst's session the other requests use.
    for template, handler in sorted(routes.items(), key=lambda item: (item[0] == "/api/v1/logout", item[0])):
        audience = audience_of(handler)
        assert audience is not None
        for caller, headers in callers.items():
            want = expected(audience, caller, public_view=view == "public")
            status = request(server, template, headers)
            got = str(status) if status in (401, 403) else "ok"
            if REQUESTS[template][0] == "WS" and want == "401":
                want = "403"  # a refused WebSocket handshake is always answered 403
            if template == "/api/v1/login" and status == 401:
                got = "ok"  # the route's own answer to a wrong password
            if got != want:
                wrong.append(f"{caller} {template}: {status}, expected {want}")
    assert not wrong, "\n".join(wrong)


def test_unauthenticated_answers_say_what_to_do(servers: dict[str, RunningServer]) -> None:
    server = servers["closed"]
    answer = httpx.get(f"{server.url}api/v1/events", headers={ANONYMOUS: "1"})
    assert answer.status_code == 401
    assert "log in" in answer.json()["detail"]
    assert answer.headers["cache-control"] == "no-store"
    page = httpx.get(server.url, headers={ANONYMOUS: "1"})
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]


def test_websocket_refuses_other_origins(servers: dict[str, RunningServer]) -> None:
    server = servers["closed"]
    own = server.url.rstrip("/")
    assert request(server, "/api/v1/live", {**server.auth, "Origin": own}) == 101
    assert request(server, "/api/v1/live", {**server.auth, "Origin": "http://evil.example"}) == 403


def test_host_allow_list_refuses_rebinding_names(servers: dict[str, RunningServer]) -> None:
    server = servers["closed"]  # listens on 127.0.0.1: only loopback names are served
    assert httpx.get(f"{server.url}api/v1/health", headers={"Host": "attacker.example"}).status_code == 400
    assert httpx.get(f"{server.url}api/v1/health", headers={"Host": "localhost:1234"}).status_code == 200


def test_login_is_rate_limited_per_address_and_user(tmp_path: Path) -> None:
    server, stop = start_server(tmp_path / "data", web={"login_failures_per_minute": 3})
    try:
        server.service.accounts.add_user("victim", Role.ANALYST, "the real password 123")
        url = f"{server.url}api/v1/login"
        wrong = {"username": "victim", "password": "guess guess guess"}
        statuses = [httpx.post(url, json=wrong).status_code for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        refused = httpx.post(url, json={"username": "victim", "password": "the real password 123"})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0  # even the right one, now
        metrics = server.service.metrics
        assert metrics.total("honeyatlas_logins_total") >= 5
    finally:
        stop()


def test_logout_ends_the_session(tmp_path: Path) -> None:
    server, stop = start_server(tmp_path / "data")  # its own: the table above used up 127.0.0.1's failed logins
    try:
        server.service.accounts.add_user(ANALYST, Role.ANALYST, ANALYST_PASSWORD)

        def login() -> httpx.Response:
            return httpx.post(f"{server.url}api/v1/login", json={"username": ANALYST, "password": ANALYST_PASSWORD},
                              headers={ANONYMOUS: "1"})

        first, second = login(), login()
        cookie = second.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert "secure" not in cookie.lower().split(";")[-1]  # plain HTTP here: Secure only over HTTPS
        headers = {ANONYMOUS: "1", "Cookie": cookie.split(";", 1)[0]}
        assert httpx.get(f"{server.url}api/v1/events", headers=headers).status_code == 200
        assert httpx.get(f"{server.url}api/v1/session", headers=headers).json()["user"] == ANALYST
        assert httpx.post(f"{server.url}api/v1/logout", headers=headers).status_code == 204
        assert httpx.get(f"{server.url}api/v1/events", headers=headers).status_code == 401
        other = {ANONYMOUS: "1", "Cookie": first.headers["set-cookie"].split(";", 1)[0]}
        assert httpx.get(f"{server.url}api/v1/events", headers=other).status_code == 200  # the other session lives on
    finally:
        stop()


def test_health_shows_file_paths_to_admins_only(tmp_path: Path) -> None:
    missing = tmp_path / "geo" / "GeoLite2-City.mmdb"  # a fault that names a file
    server, stop = start_server(tmp_path / "data", geoip={"city_db_path": str(missing)})
    try:
        anonymous = httpx.get(f"{server.url}api/v1/health", headers={ANONYMOUS: "1"})
        assert anonymous.status_code == 200 and anonymous.json()["status"] == "degraded"
        assert str(tmp_path) not in anonymous.text and "<path>" in anonymous.text
        admin = httpx.get(f"{server.url}api/v1/health")  # the test reader is an admin
        assert str(missing) in admin.text
    finally:
        stop()
