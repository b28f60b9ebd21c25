"""Incidents on the map in a real browser: Debian's chromium driven by Playwright (never a downloaded browser).

Events posted to a real server open real incidents (a multi-sensor attacker, two campaigns
with hostile keys, an epidemic); the page lists them, highlights them on the map, shows their
details and the attacker profile, drops them when they close, and shows silent sensors.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningServer, start_server
from tests.web.test_browser import XSS, analyst_page, browser  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser

SENSORS = {"fra-1": (50.11, 8.68), "nyc-1": (40.71, -74.0), "sin-1": (1.35, 103.82)}
ATTACKER = "8.8.8.8"  # public and locatable: the page can draw its arcs
CAMPAIGN_SOURCES = ["1.1.1.1", "9.9.9.9", "185.220.101.1", "200.160.2.3", "133.242.0.1"]
BANNER = f"SSH-2.0-{XSS}"
LONG_COMMANDS = [  # a campaign whose key (the command sequence) is ~800 characters of markup
    "echo '<script>alert(2)</script>' " + "A" * 300,
    f"cat /proc/cpuinfo {XSS}" + "B" * 300,
    "uname -a\n\t" + "C" * 300,
]
SAMPLE = "ab" * 32  # a SHA-256
SPREAD = {"fra-1": "41.216.186.3", "nyc-1": "8.8.4.4", "sin-1": "1.0.0.1"}  # who delivered it where
MULTI_SENSOR_WINDOW = 60.0  # short, so one later event can close the incident


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def post_events(server: RunningServer, token: str, records: list[dict[str, Any]]) -> None:
    body = "\n".join(json.dumps(record) for record in records)
    response = httpx.post(f"{server.url}api/v1/ingest/event", content=body,
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200 and response.json()["accepted"] == len(records), response.text


def item(kind: str) -> str:
    return f'#incidents li.incident-item[data-kind="{kind}"]'


def located_sources(server: RunningServer, sources: list[str]) -> int:
    """How many of these sources the server could place on the map (their events carry src_geo)."""
    found = 0
    for ip in sources:
        events = httpx.get(f"{server.url}api/v1/events", params={"src_ip": ip, "limit": 1}).json()["events"]
        geo = (events[0].get("src_geo") or {}) if events else {}
        found += "lat" in geo and "lon" in geo
    return found


def test_incidents_listed_highlighted_detailed_as_text(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    server, stop = start_server(
        tmp_path / "data",
        correlation={"multi_sensor_window_seconds": MULTI_SENSOR_WINDOW},
        ingest={"sensor_silent_after_seconds": 6.0},
    )
    try:
        tokens = {name: server.add_sensor(name, location=where) for name, where in SENSORS.items()}
        server.add_sensor("quiet-1", location=(-33.87, 151.21))  # registered, never sends
        old = server.add_sensor("old-1", location=(59.33, 18.07))  # sends once, then goes silent
        now = datetime.now(UTC)
        post_events(server, old, [{"ts": iso(now), "kind": "connection", "src_ip": "4.4.4.4", "dst_port": 22}])

        page = analyst_page(browser, server, viewport={"width": 1600, "height": 900})
        requests: list[str] = []
        dialogs: list[str] = []
        errors: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("websocket", lambda ws: requests.append(ws.url))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server.url)
        page.wait_for_selector('#conn-status[data-state="up"]', timeout=15_000)
        page.wait_for_function("() => window.__honeyatlas && window.__honeyatlas.mapReady === true", timeout=15_000)
        page.wait_for_selector("#incidents .incident-empty", timeout=5_000)
        assert page.evaluate("() => window.__honeyatlas.incidentsShown") == 0
        page.wait_for_selector('#sensor-health li.sensor-silent[data-name="quiet-1"][data-status="never_seen"]',
                               timeout=10_000)

        # one source reaches three sensors within a minute: a multi-sensor incident
        for name in SENSORS:
            post_events(server, tokens[name], [{"ts": iso(now), "kind": "connection", "src_ip": ATTACKER,
                                                "dst_port": 22}])
        multi = page.locator(item("multi_sensor"))
        multi.wait_for(timeout=10_000)
        multi_id = multi.get_attribute("data-id")
        assert multi_id and multi_id.startswith("inc_")
        text = multi.text_content()
        assert ATTACKER in text and "3 sensors" in text and "1 source" in text

        # a click highlights it: arcs from the source to each sensor, and the details panel
        multi.locator("button").click()
        page.wait_for_function(f"() => window.__honeyatlas.highlighted === {json.dumps(multi_id)}", timeout=5_000)
        page.wait_for_function("() => window.__honeyatlas.highlightArcs >= 3", timeout=10_000)
        assert multi.locator("button").get_attribute("aria-pressed") == "true"
        details = page.locator("#incident-details")
        details.wait_for(state="visible", timeout=5_000)
        assert "Multi-sensor" in details.text_content() and all(name in details.text_content() for name in SENSORS)
        page.screenshot(path=str(tmp_path / "multi-sensor.png"))

        # its source opens the attacker profile in the same panel
        details.locator("button.d-source", has_text=ATTACKER).click()
        page.wait_for_selector("#incident-details .d-ip", timeout=10_000)
        profile = details.text_content()
        assert ATTACKER in profile and "scanner" in profile and "Google" in profile
        details.locator("button.d-back").click()
        page.wait_for_selector("#incident-details button.d-source", timeout=5_000)

        # a second click ends the highlight; the keyboard works as well as the mouse
        multi.locator("button").click()
        page.wait_for_function("() => window.__honeyatlas.highlighted === null", timeout=5_000)
        assert page.evaluate("() => window.__honeyatlas.highlightArcs") == 0
        assert details.is_hidden()
        multi.locator("button").focus()
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => window.__honeyatlas.highlighted === {json.dumps(multi_id)}", timeout=5_000)
        page.keyboard.press("Escape")
        page.wait_for_function("() => window.__honeyatlas.highlighted === null", timeout=5_000)

        # five sources share a hostile SSH banner: a campaign whose key is markup, shown as text
        post_events(server, tokens["fra-1"], [
            {"ts": iso(now), "kind": "connection", "src_ip": ip, "dst_port": 22, "session": f"banner-{n}",
             "client_version": BANNER}
            for n, ip in enumerate(CAMPAIGN_SOURCES)
        ])
        # ... and the same three ~256-character commands: a campaign with a long hostile key
        post_events(server, tokens["nyc-1"], [
            {"ts": iso(now), "kind": "command", "src_ip": ip, "session": f"commands-{n}", "command": command}
            for n, ip in enumerate(CAMPAIGN_SOURCES) for command in LONG_COMMANDS
        ])
        page.wait_for_function("() => document.querySelectorAll('#incidents li.incident-item[data-kind=campaign]')"
                               ".length === 2", timeout=10_000)
        banner = page.locator(item("campaign"), has_text="SSH-2.0-")
        assert banner.locator(".i-key").text_content() == BANNER
        assert "5 sources" in banner.text_content() and "SSH client banner" in banner.text_content()
        long_key = page.locator(item("campaign"), has_text="echo")
        shown = long_key.locator(".i-key").text_content()
        assert shown.startswith("echo '<script>alert(2)</script>'") and shown.endswith("…") and len(shown) <= 121
        assert len(long_key.locator(".i-key").get_attribute("title")) > 500  # the whole key on hover
        assert long_key.bounding_box()["height"] < 110  # one line, cut with an ellipsis
        assert long_key.locator(".i-key").evaluate("k => k.scrollWidth > k.clientWidth")  # the CSS ellipsis

        banner.locator("button").click()
        page.wait_for_function(f"() => window.__honeyatlas.highlighted === {json.dumps(banner.get_attribute('data-id'))}",
                               timeout=5_000)
        expected_arcs = located_sources(server, CAMPAIGN_SOURCES)
        assert expected_arcs >= 3
        page.wait_for_function(f"() => window.__honeyatlas.highlightArcs === {expected_arcs}", timeout=10_000)
        assert BANNER in details.text_content()
        page.screenshot(path=str(tmp_path / "campaign.png"))

        # one payload reaches the three sensors in turn: an epidemic, its spread in order
        for offset, (name, source) in enumerate(SPREAD.items()):
            post_events(server, tokens[name], [
                {"ts": iso(now - timedelta(seconds=30 - 10 * offset)), "kind": "file_download", "src_ip": source,
                 "url": "http://198.51.100.7/bins/x86", "sha256": SAMPLE},
            ])
        epidemic = page.locator(item("epidemic"))
        epidemic.wait_for(timeout=10_000)
        assert epidemic.locator(".i-key").text_content() == f"{SAMPLE[:12]}…{SAMPLE[-6:]}"
        epidemic.locator("button").click()
        page.wait_for_function("() => window.__honeyatlas.highlightArcs === 3", timeout=10_000)
        spread = details.locator(".d-spread li .d-name").all_text_contents()
        assert spread == list(SPREAD)
        page.screenshot(path=str(tmp_path / "epidemic.png"))
        page.keyboard.press("Escape")

        shown_count = page.evaluate("() => window.__honeyatlas.incidentsShown")
        open_now = httpx.get(f"{server.url}api/v1/incidents", params={"status": "open"}).json()["incidents"]
        assert shown_count == page.locator("#incidents li.incident-item").count() == len(open_now) == 4

        # a later event moves the detectors' clock past the multi-sensor window: it closes and leaves
        post_events(server, tokens["fra-1"], [{"ts": iso(now + timedelta(seconds=2 * MULTI_SENSOR_WINDOW)),
                                               "kind": "connection", "src_ip": "4.4.4.4", "dst_port": 23}])
        page.wait_for_selector(f'#incidents li[data-id="{multi_id}"]', state="detached", timeout=10_000)
        assert page.evaluate("() => window.__honeyatlas.incidentsShown") == shown_count - 1

        # the sensor that stopped sending and the one that never sent stand out
        page.wait_for_selector('#sensor-health li.sensor-silent[data-name="old-1"][data-status="silent"]',
                               timeout=20_000)
        assert page.locator('#sensor-health li.sensor-silent[data-name="quiet-1"]').count() == 1
        assert page.locator('#sensor-counts li[data-status="never_seen"]').get_attribute("data-count") == "1"
        page.screenshot(path=str(tmp_path / "silent.png"))

        # attacker text never became markup, and the page stayed on its origin
        assert page.evaluate("() => document.querySelectorAll('img').length") == 0
        assert page.evaluate("() => document.scripts.length") == 1
        assert dialogs == [] and errors == []
        origin = server.url.rstrip("/")
        ws_origin = origin.replace("http://", "ws://")
        outside = [u for u in requests if not (u.startswith(origin) or u.startswith(ws_origin) or u.startswith("data:"))]
        assert outside == []
    finally:
        stop()
