"""The map in a real browser: Debian's chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_server

CHROMIUM = "/usr/bin/chromium"
XSS = "<img src=x onerror=alert(1)>"

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


def test_map_draws_live_events_as_text_and_stays_on_origin(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    running, stop = start_server(tmp_path / "data")
    stopped = False
    try:
        token = running.add_sensor("berlin-01", location=(52.52, 13.40))
        page = browser.new_page(viewport={"width": 1400, "height": 800})
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

        origin = running.url.rstrip("/")
        ws_origin = origin.replace("http://", "ws://")
        outside = [u for u in requests if not (u.startswith(origin) or u.startswith(ws_origin) or u.startswith("data:"))]
        assert outside == []

        stop()
        stopped = True
        page.wait_for_selector('#conn-status[data-state="down"]', timeout=20_000)
    finally:
        if not stopped:
            stop()
