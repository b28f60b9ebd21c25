"""Shared fixtures: a real honeyatlas server on 127.0.0.1, port 0, in its own thread and loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from honeyatlas.config import load_config
from honeyatlas.service import Service

SAMPLES = Path(__file__).parent / "data" / "samples"


@dataclass
class RunningServer:
    url: str
    service: Service
    data_dir: Path
    loop: asyncio.AbstractEventLoop | None = None  # the server's loop, for components a test starts in it

    def run(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine in the server's loop (where its pipeline and store live) and wait."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "api/v1/live"

    def add_sensor(self, name: str, honeypot: str = "cowrie", location: tuple[float, float] = (50.11, 8.68)) -> str:
        _, token = self.service.registry.add(name, honeypot=honeypot, lat=location[0], lon=location[1])
        return token


def start_server(data_dir: Path, config_file: Path | None = None, **sections: dict[str, Any]) -> tuple[RunningServer, Any]:
    overrides: dict[str, dict[str, Any]] = {
        "storage": {"data_dir": str(data_dir)},
        "server": {"host": "127.0.0.1", "port": 0},
        "live": {"frame_interval_seconds": 0.1},
        "geoip": {"search_city_db": False},
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    service = Service(load_config(config_file, environ={}, overrides=overrides))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    urls: list[str] = []
    tasks: list[asyncio.Task[None]] = []
    errors: list[BaseException] = []

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        await service.serve(lambda url: (urls.append(url), ready.set()))

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass
        except BaseException as exc:  # surfaced by the fixture
            errors.append(exc)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="honeyatlas-test-server", daemon=True)
    thread.start()
    if not ready.wait(60) or errors:
        raise RuntimeError(f"server did not start: {errors}")

    def stop() -> None:
        if tasks and not loop.is_closed():
            loop.call_soon_threadsafe(tasks[0].cancel)
        thread.join(30)
        assert not thread.is_alive(), "server thread did not stop"

    return RunningServer(urls[0], service, data_dir, loop), stop


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running, stop = start_server(tmp_path / "data")
    try:
        yield running
    finally:
        stop()
