"""Every registered format through a real server: by name and by `auto`, matching its golden file."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from honeyatlas.adapters import load_adapters
from tests.conftest import SAMPLES, RunningServer, start_server, storage_on

GOLDEN = Path(__file__).parent / "data" / "golden"
COMPARED = ("action", "kind", "outcome", "src_ip", "src_port", "dst_port", "username", "password", "command", "url")


def sample_for(name: str) -> Path | None:
    for suffix in (".jsonl", ".json", ".txt"):
        path = SAMPLES / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


FORMATS = sorted(name for name in load_adapters() if name != "event")


@pytest.fixture(scope="module")
def shared_server(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    storage = storage_on(backend, request)
    running, stop = start_server(tmp_path_factory.mktemp("formats") / "data", storage=storage)
    try:
        yield running
    finally:
        stop()


def ingest(server: RunningServer, sensor: str, fmt: str, body: bytes) -> tuple[dict, list[dict]]:
    # A sensor may name its own honeypot's formats (and auto, and event): register it as one.
    token = server.add_sensor(sensor, honeypot=fmt.split("-")[0] if fmt != "auto" else "cowrie")
    response = httpx.post(f"{server.url}api/v1/ingest/{fmt}", content=body,
                          headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert response.status_code == 200, response.text
    events = httpx.get(f"{server.url}api/v1/events", params={"sensor": sensor, "limit": 1000}).json()["events"]
    return response.json(), events


DEFAULTS = {"outcome": "unknown"}
# Generic layouts wrap other honeypots' records; auto may hand such a record to the specific
# adapter of that honeypot (a T-Pot honeytrap record to `honeytrap`), which reads more of it.
GENERIC = {"tpot", "ecs"}


def signature(events: list[dict]) -> Counter[tuple]:
    return Counter(tuple(e.get(field, DEFAULTS.get(field)) for field in COMPARED) for e in events)


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_by_name_and_by_auto_match_golden(shared_server: RunningServer, fmt: str) -> None:
    sample = sample_for(fmt)
    assert sample is not None, f"tests/data/samples/{fmt}.jsonl (or .json/.txt) is missing"
    body = sample.read_bytes()
    lines = [line for line in body.splitlines() if line.strip()]
    named, named_events = ingest(shared_server, f"named-{fmt}", fmt, body)
    auto, auto_events = ingest(shared_server, f"auto-{fmt}", "auto", body)
    assert named["accepted"] + len(named["rejected"]) + len(named["ignored"]) == len(lines)
    assert named["accepted"] > 0
    assert (auto["accepted"], len(auto["ignored"])) == (named["accepted"], len(named["ignored"])), (
        f"auto did not recognise every {fmt} record: {auto['rejected'][:3]}"
    )
    if fmt not in GENERIC:
        assert signature(auto_events) == signature(named_events)

    golden = GOLDEN / f"{fmt}.expected.jsonl"
    assert golden.is_file(), f"{golden} is missing"
    expected = [json.loads(line) for line in golden.read_text().splitlines() if line.strip()]
    assert signature(named_events) == signature(expected)


def test_tpot_record_without_logstash_additions_by_auto(shared_server: RunningServer) -> None:
    """A T-Pot Heralding login with neither `@timestamp` nor `t-pot_*` fields: `auto` takes it
    as `/tpot` does (it was "format not recognised")."""
    record = {"type": "Heralding", "src_ip": "198.51.100.23", "src_port": 40122, "dest_ip": "172.20.0.5",
              "dest_port": 21, "protocol": "ftp", "username": "admin", "password": "admin123"}
    body = json.dumps(record).encode()
    named, named_events = ingest(shared_server, "heralding-named", "tpot", body)
    auto, auto_events = ingest(shared_server, "heralding-auto", "auto", body)
    assert auto["accepted"] == named["accepted"] == 1, auto["rejected"]
    assert signature(auto_events) == signature(named_events)
    (event,) = auto_events
    assert (event["kind"], event["honeypot"], event["dst_port"], event["username"]) == (
        "login_attempt", "heralding", 21, "admin")
