"""Take the README's screenshots (docs/screenshots/) of the page against a demo server.

    .venv/bin/python frontend/screenshots.py

Starts a real server on 127.0.0.1 (DuckDB in a temporary directory), posts the simulator's
realistic scenario (`honeyatlas simulate`) as its sensors: the hour before now at once (history
to filter and replay), the minutes after now as their time comes (live motion); logs in as
an analyst made through the accounts API, and drives Debian's chromium with Playwright
(never a downloaded browser). Nothing is faked in the page: every view is the page reading
the API.
"""

from __future__ import annotations

import bisect
import json
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import RunningServer, start_server  # noqa: E402

from honeyatlas.access import Role  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
USER, PASSWORD = "screenshots", "screenshots-password-1"
HISTORY_SECONDS = 3600
LIVE_SECONDS = 600  # more than the screenshots take
BATCH = 2000


class Feed:
    """The simulator's trace as its sensors: what is dated before now at once, the rest as its
    time comes (in a thread, until stopped)."""

    def __init__(self, server: RunningServer, work: Path) -> None:
        self.server = server
        start = datetime.now(UTC) - timedelta(seconds=HISTORY_SECONDS)
        subprocess.run([sys.executable, "-m", "honeyatlas", "simulate", "--out", str(work), "--scenario", "realistic",
                        "--sensors", "12", "--rate", "4", "--duration-seconds", str(HISTORY_SECONDS + LIVE_SECONDS),
                        "--start", start.isoformat().replace("+00:00", "Z")], check=True, capture_output=True)
        self.tokens = {}
        for sensor in json.loads((work / "sensors.json").read_text())["sensors"]:
            _, self.tokens[sensor["name"]] = server.service.registry.add(
                sensor["name"], honeypot=sensor["honeypot"], lat=sensor["lat"], lon=sensor["lon"],
                label=sensor.get("label"))
        self.trace = [json.loads(line) for line in (work / "trace.jsonl").read_text().splitlines()]
        self.trace.sort(key=lambda item: item["record"]["ts"])
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.follow, daemon=True)

    def post_until(self, now: datetime) -> None:
        cut = now.isoformat().replace("+00:00", "Z")
        index = bisect.bisect_right([item["record"]["ts"] for item in self.trace], cut)
        due: dict[str, list[str]] = {}
        for item in self.trace[:index]:
            due.setdefault(item["sensor"], []).append(json.dumps(item["record"]))
        del self.trace[:index]
        for name, records in due.items():
            for i in range(0, len(records), BATCH):
                answer = httpx.post(f"{self.server.url}api/v1/ingest/event", content="\n".join(records[i:i + BATCH]),
                                    headers={"Authorization": f"Bearer {self.tokens[name]}"}, timeout=120)
                answer.raise_for_status()

    def follow(self) -> None:
        while not self.stopped.wait(0.5) and self.trace:
            self.post_until(datetime.now(UTC))

    def start(self) -> None:
        self.post_until(datetime.now(UTC))
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(10)


def settle(page: Page, seconds: float) -> None:
    page.wait_for_function("() => window.__honeyatlas && window.__honeyatlas.mapReady === true", timeout=30_000)
    time.sleep(seconds)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="honeyatlas-shots-") as temp:
        server, stop = start_server(Path(temp) / "data")
        feed = None
        try:
            server.service.accounts.add_user(USER, Role.ANALYST, PASSWORD)
            feed = Feed(server, Path(temp) / "sim")
            feed.start()
            time.sleep(6)  # the rollups catch up
            with sync_playwright() as playwright:
                chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
                session = chromium.new_context(viewport={"width": 1600, "height": 900})
                session.request.post(f"{server.url}api/v1/login", data={"username": USER, "password": PASSWORD})
                page = session.new_page()

                page.goto(server.url)
                settle(page, 8)
                page.screenshot(path=str(OUT / "live.png"))

                page.goto(f"{server.url}?range=1h&kind=login_attempt&choropleth=1")
                settle(page, 3)
                page.wait_for_function("() => window.__honeyatlas.historyTotal !== null", timeout=30_000)
                page.locator("#events-body tr.event-row").first.wait_for()
                page.screenshot(path=str(OUT / "history-filtered.png"))

                page.goto(f"{server.url}?range=1h")
                settle(page, 2)
                page.select_option("#replay-speed", "60")
                page.click("#replay-play")
                time.sleep(6)
                page.screenshot(path=str(OUT / "replay.png"))

                busiest = session.request.get(f"{server.url}api/v1/stats/summary?range=1h").json()["top"]["ips"]
                attacker = busiest[0]["key"]
                page.goto(f"{server.url}attackers/{attacker}")
                page.wait_for_selector('#profile:not([data-state="loading"])', timeout=30_000)
                if page.get_attribute("#profile", "data-state") != "shown":
                    raise RuntimeError(f"/attackers/{attacker}: {page.locator('#profile').text_content()}")
                page.screenshot(path=str(OUT / "attacker.png"), full_page=False)

                kiosk = chromium.new_context(viewport={"width": 1920, "height": 1080})
                kiosk.request.post(f"{server.url}api/v1/login", data={"username": USER, "password": PASSWORD})
                wall = kiosk.new_page()
                wall.goto(f"{server.url}?kiosk=1")
                settle(wall, 8)
                wall.screenshot(path=str(OUT / "kiosk.png"))
                chromium.close()
        finally:
            if feed:
                feed.stop()
            stop()
    for name in sorted(OUT.glob("*.png")):
        print(name.relative_to(ROOT))


if __name__ == "__main__":
    main()
