"""The map of a cluster in a real browser: `honeyatlas cluster` started as a newcomer would
(its own nats-server and PostgreSQL, 2 ingest, 2 workers, the demo honeynet), an analyst
added with `honeyatlas user add` while it runs, the page of its web process in Debian's
chromium: live arcs, counters and sensors from the cluster."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from honeyatlas.cluster import free_port, wait_for_port
from honeyatlas.errors import HoneyatlasError
from tests.waiting import wait_until
from tests.web.test_browser import ANALYST, PASSWORD, browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.cluster]


def test_the_map_works_against_make_cluster(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    web, ingest = free_port(), free_port()
    home = Path(tempfile.mkdtemp(prefix="honeyatlas-cluster-"))
    home.chmod(0o755)  # as a checkout is: PostgreSQL's user must reach DIR/postgres
    command = [sys.executable, "-m", "honeyatlas", "cluster", "--dir", str(home), "--demo",
               "--port", str(web), "--ingest-port", str(ingest), "--nats-port", str(free_port()),
               "--postgres-port", str(free_port())]
    cluster = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        try:
            wait_for_port(web, 120, cluster)  # type: ignore[arg-type]
        except HoneyatlasError:
            cluster.kill()
            raise AssertionError(cluster.communicate()[0]) from None
        url = f"http://127.0.0.1:{web}/"
        subprocess.run([sys.executable, "-m", "honeyatlas", "user", "add", ANALYST, "--role", "analyst",
                        "--password-stdin", "--config", str(home / "cluster.toml")],
                       input=PASSWORD, text=True, capture_output=True, check=True, timeout=60)
        session = browser.new_context(viewport={"width": 1400, "height": 800})
        assert session.request.post(url + "api/v1/login", data={"username": ANALYST, "password": PASSWORD}).ok
        wait_until(lambda: session.request.get(url + "api/v1/stats/summary").json()["counts"]["1m"] > 0,
                   "demo events through ingest, the bus and a worker", 60, 0.5)
        page = session.new_page()
        page.goto(url)
        page.wait_for_selector('#conn-status[data-state="up"]', timeout=15_000)
        page.wait_for_function("() => window.__honeyatlas && window.__honeyatlas.mapReady === true", timeout=15_000)
        page.wait_for_function("() => window.__honeyatlas.arcsDrawn >= 3", timeout=30_000)  # live, from the bus
        page.wait_for_function("() => Number(document.querySelector('#count-1h').textContent) > 0", timeout=15_000)
        page.wait_for_function("() => document.querySelectorAll('#ticker li.ticker-item').length >= 3",
                               timeout=15_000)
        sensors = session.request.get(url + "api/v1/sensors").json()["sensors"]
        assert len(sensors) >= 3 and any(s["status"] == "active" for s in sensors)  # the demo's, from PostgreSQL
        page.screenshot(path=str(tmp_path / "cluster-map.png"))
    finally:
        cluster.send_signal(signal.SIGINT)
        output, _ = cluster.communicate(timeout=60)
        shutil.rmtree(home, ignore_errors=True)
    assert cluster.returncode == 0, output
    assert "cluster: map on" in output and "cluster: stopping" in output
