"""Views of the map in a real browser (issue 13): Debian's chromium driven by Playwright.

One real server, filled once with a known mix of events over the last hour (three sensors,
five sources, every kind the filters use, the XSS corpus in every attacker-controlled
field), is read by every test through the page an analyst sees: filters set in the UI go to
the URL and change the panels; a URL with filters restores the same view; a click on a
country filters to it; a replay of a stored window ends with the window's total; the
attacker page shows the profile; attacker text stays text and no request leaves the origin.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import RunningServer, start_server
from tests.web.test_browser import analyst_page, browser, off_origin, post  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser

SENSORS = {"fra-1": (50.11, 8.68), "nyc-1": (40.71, -74.0), "sin-1": (1.35, 103.82)}
SOURCES = ["8.8.8.8", "1.1.1.1", "185.220.101.1", "200.160.2.3", "133.242.0.1"]  # US, AU, DE, BR, JP
KINDS = ["login_attempt", "connection", "command", "web_request"]
XSS_CORPUS = [
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(2)>',
    "<script>alert(3)</script>",
    "javascript:alert(4)",
    "'-alert(5)-'<iframe src=//example.com/>",
    "{{constructor.constructor('alert(6)')()}}",
    "\u202e<b>rtl</b>",
]
ATTACKER_FIELDS = ["username", "password", "command", "url", "user_agent", "client_version", "signature", "action"]
SPAN_MINUTES = 40  # the seeded events' spread: a 1000x replay of it takes about 2.5 s
PAYLOAD = "c0ffee" * 10 + "beef"  # a SHA-256 some of 1.1.1.1's commands carry


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


class Seeded:
    def __init__(self, server: RunningServer, since: datetime, until: datetime) -> None:
        self.server = server
        self.since = since
        self.until = until

    def total(self, **params: Any) -> int:
        """The summary's total for this window (or `range`) and these filters, from the API."""
        query = {"since": iso(self.since), "until": iso(self.until), **params}
        if "range" in params:
            query.pop("since"), query.pop("until")
        answer = httpx.get(f"{self.server.url}api/v1/stats/summary", params=query, timeout=30)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["total"])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    server, stop = start_server(tmp_path_factory.mktemp("views") / "data")
    try:
        tokens = {name: server.add_sensor(name, location=where) for name, where in SENSORS.items()}
        now = datetime.now(UTC).replace(microsecond=0)
        start = now - timedelta(minutes=SPAN_MINUTES + 5)
        n = 0
        for minute in range(SPAN_MINUTES):
            for index, name in enumerate(SENSORS):
                source = SOURCES[(minute + index) % len(SOURCES)]
                kind = KINDS[(minute * 3 + index) % len(KINDS)]
                record: dict[str, Any] = {"ts": iso(start + timedelta(minutes=minute, seconds=7 * index)), "kind": kind,
                                          "src_ip": source, "dst_port": [22, 23, 80][index], "session": f"s{n}"}
                if source == "1.1.1.1" and kind == "command":
                    record["sha256"] = PAYLOAD
                if source == "8.8.8.8":  # the corpus in every attacker-controlled field
                    hostile = XSS_CORPUS[n % len(XSS_CORPUS)]
                    record.update({field: hostile for field in ATTACKER_FIELDS})
                post(server, tokens[name], [record])
                n += 1
        yield Seeded(server, start - timedelta(minutes=1), now)  # events the tests post later fall outside
    finally:
        stop()


@pytest.fixture
def watched(browser, seeded: Seeded) -> Iterator[Any]:  # type: ignore[no-untyped-def]  # noqa: F811
    """An analyst's page; afterwards: no dialog opened, no page error, nothing left the origin."""
    page = analyst_page(browser, seeded.server, viewport={"width": 1280, "height": 720})
    requests: list[str] = []
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("websocket", lambda ws: requests.append(ws.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    assert dialogs == [] and errors == []
    assert off_origin(seeded.server, requests) == []
    assert page.evaluate("() => document.querySelectorAll('img, svg, iframe, b').length") == 0
    assert page.evaluate("() => document.scripts.length") == 1
    page.context.close()


def query_of(page: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def wait_total(page: Any, expected: int) -> None:
    page.wait_for_function(f"() => window.__honeyatlas.historyTotal === {expected}", timeout=15_000)
    assert page.locator("#count-window").text_content() == str(expected)


def chips(page: Any) -> list[tuple[str, str]]:
    return [(chip.get_attribute("data-key"), chip.get_attribute("data-value"))
            for chip in page.locator("#filter-chips li.filter-chip").all()]


def test_a_filter_set_in_the_ui_appears_in_the_url_and_changes_the_panels(watched, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    page = watched
    page.goto(seeded.server.url)
    page.wait_for_function("() => window.__honeyatlas.mapReady === true", timeout=15_000)
    page.click('#range-select button[data-range="24h"]')
    assert query_of(page) == {"range": ["24h"]}
    everything = seeded.total(range="24h")
    wait_total(page, everything)

    page.select_option("#filter-key", "kind")
    page.fill("#filter-value", "login_attempt")
    page.click("#filter-add button[type=submit]")
    assert query_of(page) == {"range": ["24h"], "kind": ["login_attempt"]}
    logins = seeded.total(range="24h", kind="login_attempt")
    assert 0 < logins < everything
    wait_total(page, logins)
    assert chips(page) == [("kind", "login_attempt")]
    page.wait_for_function(f"() => document.querySelectorAll('#events-body tr.event-row').length === {logins}",
                           timeout=10_000)
    kinds = page.locator("#events-body tr.event-row").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert set(kinds) == {"login_attempt"}

    # a top-N row adds its filter; removing a chip takes it away again
    page.locator("#top-countries li[data-key='US'] button").click()
    assert query_of(page)["country"] == ["US"]
    wait_total(page, seeded.total(range="24h", kind="login_attempt", country="US"))
    page.locator("#filter-chips li.filter-chip[data-key='kind'] button.chip-remove").click()
    assert query_of(page) == {"range": ["24h"], "country": ["US"]}
    wait_total(page, seeded.total(range="24h", country="US"))

    # back in the browser's history is the view before
    page.go_back()
    assert query_of(page) == {"range": ["24h"], "kind": ["login_attempt"], "country": ["US"]}
    wait_total(page, seeded.total(range="24h", kind="login_attempt", country="US"))


def test_opening_a_url_with_filters_restores_the_same_view(watched, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    page = watched
    since, until = iso(seeded.since), iso(seeded.until)
    page.goto(f"{seeded.server.url}?since={since}&until={until}&kind=command&kind=web_request&sensor=fra-1")
    expected = seeded.total(kind=["command", "web_request"], sensor="fra-1")
    assert expected > 0
    wait_total(page, expected)
    assert chips(page) == [("kind", "command"), ("kind", "web_request"), ("sensor", "fra-1")]
    assert page.locator('#range-select button[data-range="custom"]').get_attribute("aria-pressed") == "true"
    assert page.evaluate("() => document.body.dataset.mode") == "history"
    page.wait_for_function(f"() => document.querySelectorAll('#events-body tr.event-row').length === {expected}",
                           timeout=10_000)
    sensors = {text for text in page.locator("#events-body .e-sensor").all_text_contents()}
    assert sensors == {"fra-1"}
    # the incidents of the window and sensor, not the open ones of now
    incidents = httpx.get(f"{seeded.server.url}api/v1/incidents",
                          params={"since": since, "until": until, "sensor": "fra-1", "limit": 50}).json()["incidents"]
    assert incidents
    page.wait_for_function(f"() => document.querySelector('#incident-count').textContent === '{len(incidents)} in window'",
                           timeout=10_000)
    shown = page.locator("#incidents li.incident-item").evaluate_all("items => items.map(i => i.dataset.id)")
    assert shown == [incident["id"] for incident in incidents]

    # newest first, then oldest first by the time header (order=asc)
    times = page.locator("#events-body .e-time").all_text_contents()
    assert times == sorted(times, reverse=True)
    page.click("#events-order")
    page.wait_for_function("() => document.querySelector('#events-order').dataset.order === 'asc'")
    page.wait_for_function(f"() => document.querySelectorAll('#events-body tr.event-row').length === {expected}",
                           timeout=10_000)
    times = page.locator("#events-body .e-time").all_text_contents()
    assert times == sorted(times)


def test_a_click_on_a_country_filters_to_it(watched, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    page = watched
    page.goto(seeded.server.url)
    page.wait_for_selector('#conn-status[data-state="up"]', timeout=15_000)
    page.wait_for_function("() => window.__honeyatlas.mapReady === true", timeout=15_000)
    x, y = page.evaluate("() => window.__honeyatlas.screenPoint(-63, -10)")  # western Brazil, off the arcs from São Paulo
    page.mouse.click(x, y)
    assert query_of(page) == {"country": ["BR"]}
    assert chips(page) == [("country", "BR")]
    # the counters count the view: the Brazilian events of the last 24 hours, none in the last minute
    brazil = seeded.total(range="24h", country="BR")
    assert 0 < brazil < seeded.total(range="24h")
    page.wait_for_function(f"() => document.querySelector('#count-24h').textContent === '{brazil}'", timeout=15_000)
    assert page.locator("#count-1m").text_content() == "0"
    assert page.locator("#top-countries li").evaluate_all("items => items.map(i => i.dataset.key)") == ["BR"]

    # live mode applies the filter to the stream: a US source is left out, a Brazilian one shown
    shown = page.evaluate("() => window.__honeyatlas.liveShown")
    seen = page.evaluate("() => window.__honeyatlas.eventsSeen")
    token = seeded.server.add_sensor("live-1", location=(48.85, 2.35))
    now = iso(datetime.now(UTC))
    post(seeded.server, token, [{"ts": now, "kind": "connection", "src_ip": "8.8.4.4", "dst_port": 22}])
    page.wait_for_function(f"() => window.__honeyatlas.eventsSeen > {seen}", timeout=10_000)
    post(seeded.server, token, [{"ts": now, "kind": "connection", "src_ip": "200.160.2.4", "dst_port": 22}])
    page.wait_for_function(f"() => window.__honeyatlas.liveShown === {shown + 1}", timeout=10_000)
    assert page.locator("#ticker li.ticker-item").first.locator(".t-ip").text_content() == "200.160.2.4"
    assert "8.8.4.4" not in page.locator("#ticker").text_content()


def test_replay_plays_a_stored_window_and_its_counters_end_equal_to_the_summary(watched, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    page = watched
    page.goto(f"{seeded.server.url}?since={iso(seeded.since)}&until={iso(seeded.until)}")
    total = seeded.total()
    assert total == SPAN_MINUTES * len(SENSORS)
    wait_total(page, total)
    page.wait_for_function("() => window.__honeyatlas.mapReady === true", timeout=15_000)

    page.click("#replay-step")
    page.wait_for_function("() => window.__honeyatlas.replay.count === 1", timeout=10_000)
    arcs = page.evaluate("() => window.__honeyatlas.arcsDrawn")
    page.select_option("#replay-speed", "1000")
    page.click("#replay-play")
    page.wait_for_function("() => window.__honeyatlas.replay.playing === true", timeout=5_000)
    page.wait_for_function("() => window.__honeyatlas.replay.done === true", timeout=30_000)
    assert page.evaluate("() => window.__honeyatlas.replay.count") == total
    assert page.locator("#replay-count").text_content() == str(total)
    assert page.evaluate("() => window.__honeyatlas.arcsDrawn") > arcs
    page.screenshot(path=str(seeded.server.data_dir.parent / "replay.png"))

    # from the middle of the window: the count starts at the events before the position
    page.evaluate("() => { const s = document.querySelector('#replay-position'); s.value = '500';"
                  " s.dispatchEvent(new Event('change')); }")
    middle = seeded.since + (seeded.until - seeded.since) / 2
    before = httpx.get(f"{seeded.server.url}api/v1/stats/summary",
                       params={"since": iso(seeded.since), "until": iso(middle)}).json()["total"]
    page.wait_for_function(f"() => Math.abs(window.__honeyatlas.replay.count - {before}) <= 1", timeout=10_000)
    page.click("#replay-play")
    page.wait_for_function("() => window.__honeyatlas.replay.done === true", timeout=30_000)
    assert page.evaluate("() => window.__honeyatlas.replay.count") == total


def test_the_attacker_page_shows_the_profile_as_text(watched, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    page = watched
    page.goto(f"{seeded.server.url}attackers/8.8.8.8")
    page.wait_for_selector('#profile[data-state="shown"]', timeout=15_000)
    profile = httpx.get(f"{seeded.server.url}api/v1/attackers/8.8.8.8").json()
    text = page.locator("#profile").text_content()
    assert "8.8.8.8" in text and str(profile["event_count"]) in text
    assert all(sensor in text for sensor in profile["sensors"])
    for hostile in XSS_CORPUS:  # usernames, passwords, commands and URLs the attacker sent
        if hostile.startswith("\u202e"):
            continue  # shown too, but printable() makes no change a test can pin in text
        assert hostile in text, hostile
    assert page.locator("#map").is_hidden()
    page.click("#profile-back")
    page.wait_for_function("() => window.__honeyatlas.mapReady === true", timeout=15_000)


def test_the_xss_corpus_in_every_attacker_field_stays_text(watched, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    page = watched
    page.goto(f"{seeded.server.url}?since={iso(seeded.since)}&until={iso(seeded.until)}&src_ip=8.8.8.0/24")
    expected = seeded.total(src_ip="8.8.8.0/24")
    wait_total(page, expected)
    page.wait_for_function(f"() => document.querySelectorAll('#events-body tr.event-row').length === {expected}",
                           timeout=10_000)
    shown: set[str] = set()
    for row in page.locator("#events-body tr.event-row").all()[:len(XSS_CORPUS)]:
        row.click()
        page.wait_for_selector("#event-details:not([hidden]) #event-raw", timeout=5_000)
        details = page.locator("#event-details").text_content()
        raw = page.locator("#event-raw").text_content()
        record = json.loads(raw)  # the raw record, as the sensor sent it, shown as text
        for field in ATTACKER_FIELDS:
            assert record[field] in XSS_CORPUS
            shown.add(record[field])
            assert f"{field}" in details
    assert len(shown) >= 3
    # the live ticker too: the corpus in a fresh event
    page.click('#range-select button[data-range="live"]')
    page.wait_for_selector('#conn-status[data-state="up"]', timeout=15_000)
    token = seeded.server.add_sensor("xss-1", location=(35.68, 139.69))
    post(seeded.server, token, [{"ts": iso(datetime.now(UTC)), "kind": "command", "src_ip": "8.8.8.8",
                                 "command": XSS_CORPUS[0], "session": "xss"}])
    page.wait_for_function("() => document.querySelector('#ticker li.ticker-item') !== null", timeout=10_000)
    assert XSS_CORPUS[0] in page.locator("#ticker").text_content()


def test_at_high_rates_arcs_become_flows_and_the_page_says_so(watched, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    page = watched
    page.goto(seeded.server.url)
    page.wait_for_selector('#conn-status[data-state="up"]', timeout=15_000)
    page.wait_for_function("() => window.__honeyatlas.mapReady === true", timeout=15_000)
    token = seeded.server.add_sensor("burst-1", location=(52.52, 13.40))
    now = iso(datetime.now(UTC))
    post(seeded.server, token, [{"ts": now, "kind": "connection", "src_ip": SOURCES[n % len(SOURCES)],
                                 "src_port": 1024 + n, "dst_port": 22} for n in range(1500)])
    page.wait_for_function("() => window.__honeyatlas.flowing === true", timeout=15_000)
    status = page.locator("#flow-status")
    assert status.is_visible()
    assert re.fullmatch(r"[\d,]+ events/s, drawing flows", status.text_content()), status.text_content()
    assert page.evaluate("() => window.__honeyatlas.flowsDrawn") > 0
    page.wait_for_function("() => window.__honeyatlas.flowing === false", timeout=15_000)  # the burst is over
    assert status.is_hidden()


@pytest.mark.parametrize("size", [(1280, 720), (3840, 2160)])
def test_the_map_fills_the_room_between_the_panels_and_no_label_hides_under_one(  # type: ignore[no-untyped-def]
        watched, seeded: Seeded, size: tuple[int, int]) -> None:
    page = watched
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(seeded.server.url)
    page.wait_for_function("() => window.__honeyatlas.mapReady === true", timeout=15_000)
    page.wait_for_function("() => window.__honeyatlas.sensorLabels().length >= 2", timeout=15_000)
    room = page.evaluate("""() => ({
        left: document.querySelector('#side-left').getBoundingClientRect().right,
        right: document.querySelector('#side-right').getBoundingClientRect().left,
        top: document.querySelector('#filter-bar').getBoundingClientRect().bottom,
        bottom: document.querySelector('#timeline-panel').getBoundingClientRect().top,
        land: window.__honeyatlas.landBounds(),
        labels: window.__honeyatlas.sensorLabels() })""")
    (west, north), (east, south) = room["land"]
    assert room["left"] <= west < east <= room["right"]
    assert room["top"] <= north < south <= room["bottom"]
    # the land spans the room between the panels in the dimension that limits it
    assert (east - west >= 0.9 * (room["right"] - room["left"])
            or south - north >= 0.9 * (room["bottom"] - room["top"])), room
    for label in room["labels"]:
        assert room["left"] <= label["x0"] < label["x1"] <= room["right"], label
        assert room["top"] <= label["y"] <= room["bottom"], label
    page.screenshot(path=str(seeded.server.data_dir.parent / f"map-{size[0]}.png"))


def test_kiosk_mode_hides_the_controls_and_keeps_counters_incidents_and_the_live_map(watched, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    page = watched
    page.goto(f"{seeded.server.url}?kiosk=1&range=24h")  # a wall shows now: the window is ignored
    page.wait_for_selector('#conn-status[data-state="up"]', timeout=15_000)
    page.wait_for_function("() => window.__honeyatlas.mapReady === true", timeout=15_000)
    assert page.evaluate("() => document.body.classList.contains('kiosk') && document.body.dataset.mode") == "live"
    for hidden in ("#filter-bar", "#timeline-panel", "#account", "#events-panel"):
        assert page.locator(hidden).is_hidden(), hidden
    for shown in ("#count-1m", "#count-1h", "#count-24h", "#incidents", "#ticker", "#top-countries"):
        assert page.locator(shown).is_visible(), shown
    page.wait_for_function("() => document.querySelector('#count-24h').textContent !== '–'", timeout=15_000)
    assert page.locator("#incidents li.incident-item").count() > 0
    token = seeded.server.add_sensor("wall-1", location=(59.33, 18.07))
    arcs = page.evaluate("() => window.__honeyatlas.arcsDrawn")
    post(seeded.server, token, [{"ts": iso(datetime.now(UTC)), "kind": "scan", "src_ip": "1.1.1.1", "dst_port": 23}])
    page.wait_for_function(f"() => window.__honeyatlas.arcsDrawn > {arcs}", timeout=10_000)


def test_the_incident_and_payload_pages_show_their_profiles(watched, seeded: Seeded) -> None:  # type: ignore[no-untyped-def]
    page = watched
    incident = httpx.get(f"{seeded.server.url}api/v1/incidents",
                         params={"since": iso(seeded.since), "until": iso(seeded.until), "limit": 1}).json()["incidents"][0]
    page.goto(f"{seeded.server.url}incidents/{incident['id']}")
    page.wait_for_selector('#profile[data-kind="incident"][data-state="shown"]', timeout=15_000)
    text = page.locator("#profile").text_content()
    assert all(source in text for source in incident["sources"][:5])
    assert page.locator("#profile a[href^='/?range=7d&src_ip=']").count() == 1  # its events on the map

    payload = httpx.get(f"{seeded.server.url}api/v1/malware/{PAYLOAD}").json()
    page.goto(f"{seeded.server.url}malware/{PAYLOAD}")
    page.wait_for_selector('#profile[data-kind="malware"][data-state="shown"]', timeout=15_000)
    text = page.locator("#profile").text_content()
    assert PAYLOAD in text and all(s["sensor"] in text for s in payload["sightings"])
    page.click("#profile a[href='/attackers/1.1.1.1']")
    page.wait_for_selector('#profile[data-kind="attacker"][data-state="shown"]', timeout=15_000)
    assert PAYLOAD in page.locator("#profile").text_content()

    page.goto(f"{seeded.server.url}malware/{'0' * 64}")
    page.wait_for_selector('#profile[data-kind="malware"][data-state="missing"]', timeout=15_000)
