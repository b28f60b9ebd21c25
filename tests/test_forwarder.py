"""`honeyatlas forward` against a real server: shipping, idempotency, backoff, buffering.

The server is the real one (tests.conftest.start_server), idempotency store included.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from honeyatlas.forwarder import Forwarder
from tests.conftest import SAMPLES, RunningServer, start_server
from tests.waiting import wait_until_async


def command_line(n: int) -> str:
    """One cowrie record whose command (`echo line-N`) identifies it among all stored events."""
    record = {
        "eventid": "cowrie.command.input", "session": f"fw{n:07d}", "input": f"echo line-{n}",
        "message": f"CMD: echo line-{n}", "src_ip": "198.51.100.7", "src_port": 40000 + n % 20000,
        "dst_ip": "10.0.0.2", "dst_port": 22, "protocol": "ssh", "sensor": "cowrie-01",
        "timestamp": f"2026-11-27T21:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}000Z",
    }
    return json.dumps(record) + "\n"


def stored_events(url: str, sensor: str) -> list[dict[str, Any]]:
    """Every stored event of a sensor, following next_cursor."""
    events: list[dict[str, Any]] = []
    cursor = None
    with httpx.Client(base_url=url, timeout=30) as client:
        while True:
            params: dict[str, Any] = {"sensor": sensor, "limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/api/v1/events", params=params).raise_for_status().json()
            events += page["events"]
            cursor = page["next_cursor"]
            if not cursor:
                return events


def assert_each_line_once(url: str, sensor: str, count: int) -> None:
    commands = Counter(e["command"] for e in stored_events(url, sensor))
    expected = {f"echo line-{n}" for n in range(count)}
    missing = expected - set(commands)
    twice = {c: k for c, k in commands.items() if k > 1}
    assert not missing, f"{len(missing)} lines missing, e.g. {sorted(missing)[:5]}"
    assert not twice, f"{len(twice)} lines stored more than once, e.g. {list(twice.items())[:5]}"
    assert set(commands) == expected


def start_idempotent_server(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, **sections: dict[str, Any]
) -> tuple[RunningServer, Callable[[], None]]:
    return start_server(data_dir, **sections)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    running, stop = start_idempotent_server(tmp_path / "data", monkeypatch)
    try:
        yield running
    finally:
        stop()


def fast_forwarder(log: Path, url: str, token: str, state: Path, **options: Any) -> Forwarder:
    settings: dict[str, Any] = {
        "batch_max_records": 50, "flush_interval_seconds": 0.05, "poll_interval_seconds": 0.02,
        "backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.5, "rotate_grace_seconds": 0.2, "seed": 7,
    }
    settings.update(options)
    return Forwarder(log, url, token, "cowrie", state, **settings)


async def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    await wait_until_async(condition, what, timeout)


async def test_ships_the_real_cowrie_log_once_attributed_to_the_sensor(server: RunningServer, tmp_path: Path) -> None:
    log = tmp_path / "cowrie.json"
    log.write_bytes((SAMPLES / "cowrie.json").read_bytes())
    token = server.add_sensor("forwarded")
    forwarder = fast_forwarder(log, server.url, token, tmp_path / "state.json")
    task = asyncio.create_task(forwarder.run())
    await wait_for(lambda: forwarder.status().acked_offset == log.stat().st_size, 20, "the whole log acknowledged")
    forwarder.stop()
    await task

    # the same file sent in one request by another sensor is the reference
    reference = server.add_sensor("reference")
    response = httpx.post(
        f"{server.url}api/v1/ingest/cowrie", content=log.read_bytes(), headers={"Authorization": f"Bearer {reference}"}
    )
    assert response.status_code == 200
    shipped = stored_events(server.url, "forwarded")
    expected = stored_events(server.url, "reference")
    assert len(shipped) == response.json()["events"] > 50
    assert Counter(e["raw"] for e in shipped) == Counter(e["raw"] for e in expected)
    assert {e["sensor"] for e in shipped} == {"forwarded"}
    status = forwarder.status()
    assert status.lines_read == status.lines_sent == 99
    assert status.state == "stopped" and status.retries == 0 and not status.dropped_lines
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["offset"] == log.stat().st_size and state["inflight"] is None
    assert state["file"]["ino"] == log.stat().st_ino


async def test_restart_resumes_from_the_saved_offset(server: RunningServer, tmp_path: Path) -> None:
    log = tmp_path / "cowrie.json"
    log.write_text("".join(command_line(n) for n in range(300)))
    token = server.add_sensor("cowrie-01")
    state = tmp_path / "state.json"
    first = fast_forwarder(log, server.url, token, state, batch_max_records=20)
    task = asyncio.create_task(first.run())
    await wait_for(lambda: first.status().batches_sent >= 3, 10, "a few batches")
    first.stop()
    await task
    assert 0 < first.status().lines_sent < 300
    with log.open("a") as out:
        out.writelines(command_line(n) for n in range(300, 400))
    second = fast_forwarder(log, server.url, token, state, batch_max_records=20)
    task = asyncio.create_task(second.run())
    await wait_for(lambda: second.status().acked_offset == log.stat().st_size, 20, "the rest acknowledged")
    second.stop()
    await task
    assert first.status().lines_sent + second.status().lines_sent == 400
    assert_each_line_once(server.url, "cowrie-01", 400)


async def append_lines(log: Path, numbers: range, rotate_at: dict[int, Callable[[], None]]) -> None:
    for n in numbers:
        if n in rotate_at:
            rotate_at[n]()
        with log.open("a") as out:
            out.write(command_line(n))
        if n % 10 == 0:
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("style", ["rename-and-create", "copytruncate"])
async def test_follows_rotation_while_the_writer_appends(
    server: RunningServer, tmp_path: Path, style: str
) -> None:
    log = tmp_path / "cowrie.json"
    log.touch()
    generation = [0]

    def rotate() -> None:
        generation[0] += 1
        rotated = log.with_name(f"cowrie.json.{generation[0]}")
        if style == "rename-and-create":
            log.rename(rotated)
            log.touch()
        else:
            rotated.write_bytes(log.read_bytes())
            with log.open("r+b") as out:
                out.truncate(0)

    token = server.add_sensor("cowrie-01")
    forwarder = fast_forwarder(log, server.url, token, tmp_path / "state.json", batch_max_records=40)
    task = asyncio.create_task(forwarder.run())
    await append_lines(log, range(1200), {300: rotate, 650: rotate, 1000: rotate})
    total = 1200
    await wait_for(lambda: forwarder.status().lines_sent == total, 30, "every line shipped")
    forwarder.stop()
    await task
    status = forwarder.status()
    if style == "rename-and-create":
        assert status.rotations == 3
    else:
        assert status.truncations == 3
    assert not status.dropped_lines
    assert_each_line_once(server.url, "cowrie-01", total)


async def test_same_key_is_answered_not_stored_twice_even_after_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    running, stop = start_idempotent_server(data, monkeypatch)
    token = running.add_sensor("cowrie-01")
    body = "".join(command_line(n) for n in range(5)).encode()
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "batch-1"}
    try:
        first = httpx.post(f"{running.url}api/v1/ingest/cowrie", content=body, headers=headers)
        again = httpx.post(f"{running.url}api/v1/ingest/cowrie", content=body, headers=headers)
        assert first.status_code == again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
        other = httpx.post(f"{running.url}api/v1/ingest/cowrie", content=body + command_line(9).encode(),
                           headers=headers)
        assert other.status_code == 422
        long_key = httpx.post(f"{running.url}api/v1/ingest/cowrie", content=body,
                              headers={**headers, "Idempotency-Key": "k" * 129})
        assert long_key.status_code == 400
    finally:
        stop()
    running, stop = start_idempotent_server(data, monkeypatch)
    try:
        after = httpx.post(f"{running.url}api/v1/ingest/cowrie", content=body, headers=headers)
        assert after.status_code == 200 and after.headers["idempotent-replayed"] == "true"
        assert_each_line_once(running.url, "cowrie-01", 5)
        assert running.service.metrics.total("honeyatlas_requests_refused_total", source="http",
                                             reason="idempotency_422") == 0  # counters are per process
    finally:
        stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_backs_off_while_the_server_is_away_and_caps_the_read_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "cowrie.json"
    log.write_text("".join(command_line(n) for n in range(2000)))
    port = free_port()
    data = tmp_path / "data"
    # the token must exist before the server does: register it in the registry file directly
    from honeyatlas.store.registry import SensorRegistry

    registry = SensorRegistry(data / "registry.sqlite3")
    registry.open()
    _, token = registry.add("cowrie-01", honeypot="cowrie", lat=None, lon=None)
    registry.close()
    cap = 40_000
    forwarder = fast_forwarder(log, f"http://127.0.0.1:{port}/", token, tmp_path / "state.json", buffer_max_bytes=cap)
    task = asyncio.create_task(forwarder.run())
    peak = 0

    def watch() -> bool:
        nonlocal peak
        peak = max(peak, forwarder.status().buffered_bytes)
        return forwarder.status().reader == "buffer_full" and forwarder.status().retries >= 3

    await wait_for(watch, 10, "retries with the buffer full")
    status = forwarder.status()
    assert status.state == "retrying" and status.batches_sent == 0 and status.last_error
    assert cap <= peak < cap + 50 * len(command_line(1999))  # at most one batch beyond the cap
    running, stop = start_server(data, server={"port": port})
    try:
        await wait_for(lambda: forwarder.status().lines_sent == 2000, 30, "everything shipped once the server is up")
        forwarder.stop()
        await task
        assert forwarder.status().state == "stopped"
        assert_each_line_once(running.url, "cowrie-01", 2000)
    finally:
        stop()


async def test_honours_retry_after_when_the_server_is_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a store that can never admit a 5-record batch: the server answers 429 + Retry-After: 1
    running, stop = start_idempotent_server(tmp_path / "data", monkeypatch, storage={"max_pending_events": 1})
    try:
        log = tmp_path / "cowrie.json"
        log.write_text("".join(command_line(n) for n in range(5)))
        token = running.add_sensor("cowrie-01")
        forwarder = fast_forwarder(log, running.url, token, tmp_path / "state.json")
        task = asyncio.create_task(forwarder.run())
        await asyncio.sleep(2.5)
        forwarder.stop()
        await task
        status = forwarder.status()
        assert status.last_error is not None and status.last_error.startswith("HTTP 429")
        # backoff alone (0.05 s doubling to 0.5 s) would have retried ~8 times in 2.5 s
        assert 1 <= status.retries <= 3
        assert status.batches_sent == 0 and status.acked_offset == 0
        state = json.loads((tmp_path / "state.json").read_text())
        assert state["inflight"]["start"] == 0 and state["inflight"]["end"] == log.stat().st_size
    finally:
        stop()


async def test_a_refused_token_stops_loudly_after_a_few_tries_and_keeps_the_position(
    server: RunningServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "cowrie.json"
    log.write_text("".join(command_line(n) for n in range(5)))
    token = server.add_sensor("revoked-01")
    server.service.registry.revoke("revoked-01")
    forwarder = fast_forwarder(log, server.url, token, tmp_path / "state.json", max_token_refusals=3)
    with caplog.at_level("INFO"):
        await asyncio.wait_for(forwarder.run(), 20)  # returns by itself: no stop() needed

    status = forwarder.status()
    assert forwarder.failure is not None and "refused the sensor token 3 times" in forwarder.failure
    assert status.retries == 2 and status.last_error is not None and status.last_error.startswith("HTTP 401")
    assert status.batches_sent == 0 and status.acked_offset == 0 and not status.dropped_lines
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "token" in errors[0] and "HONEYATLAS_TOKEN" in errors[0], errors
    state = json.loads((tmp_path / "state.json").read_text())  # nothing skipped: the batch is still in flight
    assert state["offset"] == 0 and state["inflight"]["start"] == 0

    # the right token then ships everything from the saved position
    token = server.add_sensor("cowrie-01")
    forwarder = fast_forwarder(log, server.url, token, tmp_path / "state.json", max_token_refusals=3)
    task = asyncio.create_task(forwarder.run())
    await wait_for(lambda: forwarder.status().lines_sent == 5, 20, "the log shipped with the right token")
    forwarder.stop()
    await task
    assert forwarder.failure is None
    assert_each_line_once(server.url, "cowrie-01", 5)


async def test_busy_answers_are_retried_past_the_token_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """429 (and 5xx, network errors) are not the token's fault: no bound, however many."""
    running, stop = start_idempotent_server(tmp_path / "data", monkeypatch, storage={"max_pending_events": 1})
    try:
        log = tmp_path / "cowrie.json"
        log.write_text("".join(command_line(n) for n in range(5)))
        forwarder = fast_forwarder(log, running.url, running.add_sensor("cowrie-01"), tmp_path / "state.json",
                                   max_token_refusals=1)
        task = asyncio.create_task(forwarder.run())
        await wait_for(lambda: forwarder.status().retries >= 2, 10, "two 429s retried")
        assert not task.done() and forwarder.failure is None
        forwarder.stop()
        await task
    finally:
        stop()


def test_forward_command_exits_2_with_one_error_line_when_the_token_is_refused(
    server: RunningServer, tmp_path: Path
) -> None:
    log = tmp_path / "cowrie.json"
    log.write_text(command_line(0))
    command = [sys.executable, "-m", "honeyatlas", "forward", "--file", str(log), "--url", server.url,
               "--token", "hat_0000000000000000_wrong", "--format", "cowrie", "--max-token-refusals", "2",
               "--backoff-max-seconds", "0.2", "--flush-interval-seconds", "0.05"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "refused the sensor token 2 times" in errors[0], done.stderr
