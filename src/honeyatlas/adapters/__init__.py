"""Adapters turn one raw record into zero or more events. They are pure functions.

An adapter is an `Adapter` value registered under the entry-point group
`honeyatlas.adapters`; the built-in ones are registered there too (see pyproject.toml),
so a third-party package adds a format exactly the way honeyatlas does. An adapter never
does I/O, keeps no state between records, and signals a record with nothing usable by
raising `RecordRejected(reason)`; any other exception is a bug, which the pipeline still
contains (the record is rejected as `adapter_error`).

Writing an adapter: read docs/writing-adapters.md first (rules, tests and docs every
adapter needs).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, tzinfo
from importlib.metadata import entry_points
from typing import Any, Literal

import msgspec

from honeyatlas.event import Event

ENTRY_POINT_GROUP = "honeyatlas.adapters"


class RecordContext(msgspec.Struct, frozen=True, kw_only=True):
    """What an adapter knows about one record besides its content."""

    sensor: str  # the authenticated sensor name: never taken from the record
    honeypot: str  # the sensor's registered honeypot type
    received: datetime  # when honeyatlas received the record (UTC)
    timezone: tzinfo  # zone for timestamps written without one
    raw: str  # the record as received, for Event.raw (capped by make_event)
    demo: bool = False


AdaptFn = Callable[[Any, RecordContext], list[Event]]
DetectFn = Callable[[Any], bool]


class Adapter(msgspec.Struct, frozen=True, kw_only=True):
    """A record format honeyatlas can ingest.

    `input` says how a source frames the bytes: "json" records are decoded JSON values
    (objects, usually), "text" records are one line of text each (CEF, syslog bodies).
    `detect` answers, cheaply and without raising, whether a record looks like this format;
    format `auto` asks every adapter in `priority` order (lower first; specific formats
    before generic ones). `summary_of` names the per-event format whose sessions this format
    summarises (cowrie-sessions summarises cowrie): the pipeline then counts each action of a
    session once, whichever of the two streams brings it first.
    """

    name: str  # the {format} in POST /api/v1/ingest/{format}
    description: str
    adapt: AdaptFn
    detect: DetectFn | None = None
    input: Literal["json", "text"] = "json"
    priority: int = 100
    summary_of: str | None = None


def load_adapters() -> dict[str, Adapter]:
    """Every adapter registered under the entry-point group, by name."""
    found: dict[str, Adapter] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        adapter = ep.load()
        if not isinstance(adapter, Adapter):
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not a honeyatlas Adapter")
        if adapter.name != ep.name:
            raise TypeError(f"entry point {ep.name!r} names adapter {adapter.name!r}: make them equal")
        found[adapter.name] = adapter
    return found
