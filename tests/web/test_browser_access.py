"""Cross-site WebSocket hijacking, tried in a real browser (Debian's chromium, Playwright).

An analyst is logged in (the session cookie is in the browser). A page served from another
origin on the same host (127.0.0.1, another port: the same *site*, so even a SameSite=Strict
cookie rides along with its requests) opens the live stream of honeyatlas: the handshake must
be refused, because its Origin is not the app's own. The same script run on the app's own
origin opens the stream, so the refusal is the Origin check and nothing else.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from honeyatlas.access import Role
from tests.conftest import RunningServer, start_server
from tests.web.test_browser import browser  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser

PROBE = """<!doctype html><title>probe</title><script>
const ws = new WebSocket("{ws_url}");
ws.onmessage = (m) => {{ document.title = "message:" + m.data.slice(0, 20); }};
ws.onerror = () => {{ document.title = "refused"; }};
ws.onclose = () => {{ if (!document.title.startsWith("message")) document.title = "refused"; }};
</script>"""
OPEN_FROM_HERE = """(url) => new Promise((done) => {
  const ws = new WebSocket(url);
  ws.onmessage = (m) => { done("message:" + m.data.slice(0, 20)); ws.close(); };
  ws.onerror = () => done("refused");
})"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running, stop = start_server(tmp_path / "data")
    try:
        running.service.accounts.add_user("analyst", Role.ANALYST, "analyst password 1234")
        yield running
    finally:
        stop()


@pytest.fixture
def other_origin(server: RunningServer, tmp_path: Path) -> Iterator[str]:
    """A plain web server on 127.0.0.1 (another port) serving the probe page."""
    site = tmp_path / "other"
    site.mkdir()
    (site / "probe.html").write_text(PROBE.format(ws_url=server.ws_url), encoding="utf-8")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/probe.html"
    finally:
        httpd.shutdown()


def test_a_page_on_another_origin_cannot_open_the_live_stream(browser, server: RunningServer,  # noqa: F811
                                                              other_origin: str) -> None:
    context = browser.new_context(bypass_csp=True)  # for the control run on the app's own origin
    try:
        login = context.request.post(f"{server.url}api/v1/login",
                                     data={"username": "analyst", "password": "analyst password 1234"})
        assert login.ok, login.text()
        page = context.new_page()
        page.goto(server.url)  # the app's own origin, with the analyst's cookie: the stream opens
        assert page.evaluate(OPEN_FROM_HERE, server.ws_url).startswith("message:")
        refused_before = server.service.metrics.total("honeyatlas_access_refused_total")

        page.goto(other_origin)
        page.wait_for_function("() => document.title !== 'probe'", timeout=15_000)
        assert page.title() == "refused"
        assert server.service.metrics.total("honeyatlas_access_refused_total") > refused_before
    finally:
        context.close()
