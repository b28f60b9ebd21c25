"""Helpers for adapter tests: a fixed RecordContext and golden-file comparison.

Golden files hold one JSON line per event, without the fields that change from run to run
(`id`, `ingest_ts`) or merely repeat the input (`raw`). To rewrite them after a deliberate
change, run the tests with HONEYATLAS_REGEN_GOLDEN=1, then read the diff before keeping it:

    HONEYATLAS_REGEN_GOLDEN=1 PYTHONPATH=src .venv/bin/pytest tests/adapters -q
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from honeyatlas.adapters import RecordContext
from honeyatlas.event import Event

DATA = Path(__file__).resolve().parent.parent / "data"
RECEIVED = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
UNSTABLE_FIELDS = ("id", "ingest_ts", "raw")


def context(raw: str = "", *, sensor: str = "lab-cowrie-01", honeypot: str = "cowrie") -> RecordContext:
    return RecordContext(sensor=sensor, honeypot=honeypot, received=RECEIVED, timezone=UTC, raw=raw)


def event_line(event: Event) -> str:
    """One event as a stable JSON line: Event field order, without UNSTABLE_FIELDS."""
    fields = msgspec.json.decode(msgspec.json.encode(event))
    for name in UNSTABLE_FIELDS:
        fields.pop(name, None)
    return msgspec.json.encode(fields).decode()


def check_golden(lines: list[str], golden: Path) -> None:
    """Compare with the golden file, or rewrite it when HONEYATLAS_REGEN_GOLDEN=1."""
    text = "".join(line + "\n" for line in lines)
    if os.environ.get("HONEYATLAS_REGEN_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    expected = golden.read_text(encoding="utf-8").splitlines()
    for number, (got, want) in enumerate(zip(lines, expected, strict=False), start=1):
        assert got == want, f"{golden.name} line {number} differs"
    assert len(lines) == len(expected), f"{len(lines)} events, {golden.name} has {len(expected)}"
