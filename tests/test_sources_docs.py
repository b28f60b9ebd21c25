"""docs/sources.md: every format documented, and its custom-mapping example really works."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from honeyatlas.adapters import load_adapters
from honeyatlas.config import MappingConfig
from tests.conftest import start_server

DOCS = Path(__file__).parents[1] / "docs"
SOURCES = (DOCS / "sources.md").read_text()


def block_after(marker: str) -> str:
    """The fenced code block that follows an HTML comment marker in docs/sources.md."""
    rest = SOURCES.split(f"<!-- {marker} -->", 1)[1]
    return rest.split("```", 2)[1].split("\n", 1)[1]


def test_every_registered_adapter_is_documented() -> None:
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", SOURCES.split("## Built-in formats", 1)[1], flags=re.M)
    registered = sorted(load_adapters())
    assert sorted(listed) == registered
    for name in registered:
        page = DOCS / "formats" / f"{name}.md"
        assert page.is_file(), f"docs/formats/{name}.md is missing"
        assert "|" in page.read_text(), f"docs/formats/{name}.md has no field mapping table"


def test_every_mapping_option_is_documented() -> None:
    documented = re.findall(r"^\| `mappings\.<name>\.([a-z_]+)` \|", SOURCES, flags=re.M)
    assert sorted(documented) == sorted(MappingConfig.__struct_fields__)


def test_the_custom_mapping_example_runs(tmp_path: Path) -> None:
    config = tmp_path / "honeyatlas.toml"
    config.write_text(block_after("example-mapping"))
    records = block_after("example-records").encode()
    expected = json.loads(block_after("example-event"))
    running, stop = start_server(tmp_path / "data", config_file=config)
    try:
        token = running.add_sensor("trapbox-01", honeypot="trapbox")
        for fmt in ("trapbox", "auto"):
            response = httpx.post(f"{running.url}api/v1/ingest/{fmt}", content=records,
                                  headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == 3 and response.json()["rejected"] == []
        events = httpx.get(f"{running.url}api/v1/events", params={"limit": 10}).json()["events"]
        assert len(events) == 6
        first = [e for e in events if e["ts"] == expected["ts"]]
        assert len(first) == 2
        for event in first:
            assert {k: event.get(k) for k in expected} == expected
        kinds = sorted(e["kind"] for e in events)
        assert kinds == ["command", "command", "login_attempt", "login_attempt", "scan", "scan"]
        probe = next(e for e in events if e["kind"] == "scan")
        assert probe["src_ip"] == "81.2.69.161" and probe["src_port"] == 61000 and probe["protocol"] == "telnet"
    finally:
        stop()
