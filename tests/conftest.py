"""Shared fixtures: a real honeyatlas server on 127.0.0.1, port 0, in its own thread and loop.

`start_server(data_dir, **sections)` starts one on the embedded defaults (DuckDB). The API
tests take the `server` fixture, or `start_on_backend` when they start their own (other
settings, a restart), and so run once per store backend: `[duckdb]`, and `[postgresql]` on a
fresh database of the session's one PostgreSQL server (tests/engines/postgres.py). A test
that must read DuckDB's own files pins it, saying why:
`@pytest.mark.parametrize("backend", ["duckdb"], indirect=True)  # reads events.duckdb`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from honeyatlas.config import load_config
from honeyatlas.enrichment.sensors import SensorSettings
from honeyatlas.service import Service
from tests import auth

pytest_plugins = ["tests.engines.nats", "tests.engines.postgres"]  # real engines, started on first use

SAMPLES = Path(__file__).parent / "data" / "samples"
BACKENDS = ("duckdb", "postgresql")


def pytest_configure(config: pytest.Config) -> None:
    auth.install()  # requests to a test server carry its read token (tests/auth.py)
    # Property tests check what is true, not how fast: on a shared CI machine one example can
    # take 0.5 s, and hypothesis's 200 ms deadline then failed a correct test as flaky.
    # Speed is measured by the benchmarks.
    settings.register_profile("honeyatlas", deadline=None)
    settings.load_profile("honeyatlas")


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

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of this server's test reader (for WebSocket and httpx)."""
        return auth.headers_for(self.url)

    def add_sensor(self, name: str, honeypot: str = "cowrie", location: tuple[float, float] = (50.11, 8.68),
                   syslog_from: tuple[str, ...] = ()) -> str:
        """Register a sensor; `syslog_from`: the addresses its syslog HOSTNAME is believed from."""
        settings = SensorSettings(syslog_sources=syslog_from) if syslog_from else None
        _, token = self.service.registry.add(name, honeypot=honeypot, lat=location[0], lon=location[1],
                                             settings=settings)
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

    auth.grant(urls[0], service.accounts)
    return RunningServer(urls[0], service, data_dir, loop), stop


ServerStarter = Callable[..., tuple[RunningServer, Callable[[], None]]]


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend a test runs on; session scope, so a module's shared server may use it."""
    return str(request.param)


def storage_on(backend: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """The `[storage]` settings of a new, empty store on `backend`."""
    if backend == "duckdb":
        return {"backend": "duckdb"}  # in the data directory: a fresh tmp_path is a fresh store
    postgres = request.getfixturevalue("postgres_server")
    return {"backend": "postgresql", "url": postgres.new_database()}


@pytest.fixture
def start_on_backend(backend: str, request: pytest.FixtureRequest) -> ServerStarter:
    """`start_server` on this test's backend; every server the test starts (a restart on the
    same data directory) shares one store, fresh for the test."""
    storage = storage_on(backend, request)

    def start(data_dir: Path, config_file: Path | None = None, **sections: dict[str, Any]) -> tuple[RunningServer, Any]:
        return start_server(data_dir, config_file, **{**sections, "storage": {**storage, **sections.get("storage", {})}})

    return start


@pytest.fixture
def server(start_on_backend: ServerStarter, tmp_path: Path) -> Iterator[RunningServer]:
    running, stop = start_on_backend(tmp_path / "data")
    try:
        yield running
    finally:
        stop()
