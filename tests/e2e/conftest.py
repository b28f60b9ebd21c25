"""The server of the end-to-end tests: the real one, with an hpfeeds endpoint on 127.0.0.1, port 0."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import RunningServer, start_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running, stop = start_server(tmp_path / "data", hpfeeds={"listen": ["tcp:127.0.0.1:0"]})
    try:
        yield running
    finally:
        stop()
