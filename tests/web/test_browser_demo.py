"""`make demo` as a newcomer meets it: the page opens straight onto a moving map, with no login.

The Makefile's demo target serves the simulated honeynet with the public view on; this starts
the same configuration (on a free port) and opens the page in Debian's chromium with no
credentials at all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import start_server
from tests.web.test_browser import browser  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser
MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def test_make_demo_opens_onto_a_moving_map_without_a_login(browser, tmp_path: Path) -> None:  # noqa: F811
    demo = re.search(r"^demo:.*?\n((?:\t.*\n)+)", MAKEFILE.read_text(), re.M)
    assert demo is not None and "serve --demo --public" in demo.group(1)  # what the newcomer runs
    server, stop = start_server(tmp_path / "data", demo={"enabled": True}, public={"enabled": True})
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(server.url)
        page.wait_for_function("() => window.__honeyatlas && window.__honeyatlas.mapReady === true", timeout=20_000)
        page.wait_for_function("() => window.__honeyatlas.arcsDrawn >= 5", timeout=30_000)  # it moves
        assert page.locator("#login-form").is_hidden()
        assert page.locator("#login-open").is_visible()  # and "Log in" is one click away
        assert page.locator("#demo-banner").is_visible()
    finally:
        stop()
