"""Running a sample file through an adapter for the golden tests of formats whose streams
also hold records that are not attacker activity (Suricata stats, ECS metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from honeyatlas.adapters import Adapter
from honeyatlas.errors import RecordIgnored
from tests.adapters.golden import context, event_line


def sample_records(path: Path) -> list[tuple[str, Any]]:
    return [(line, msgspec.json.decode(line)) for line in path.read_text(encoding="utf-8").splitlines()]


def run_sample(adapter: Adapter, path: Path, **ctx: str) -> tuple[list[str], list[str]]:
    """(golden lines of every event, reasons of the records the adapter ignored)."""
    lines: list[str] = []
    ignored: list[str] = []
    for line, record in sample_records(path):
        try:
            events = adapter.adapt(record, context(line, **ctx))
        except RecordIgnored as ignore:
            ignored.append(ignore.reason)
            continue
        for event in events:
            assert event.raw == line
            lines.append(event_line(event))
    return lines, ignored
