"""docs/events.md and the event catalogues must agree, both ways."""

from __future__ import annotations

import re
from pathlib import Path

from honeyatlas.event import (
    EVENT_FIELDS,
    FIELD_LIMITS,
    FLAG_DESCRIPTIONS,
    GEO_FIELDS,
    KIND_DESCRIPTIONS,
    RAW_LIMIT_BYTES,
    Flag,
    Kind,
)

DOC = (Path(__file__).parents[1] / "docs" / "events.md").read_text()


def table_after(heading: str) -> dict[str, str]:
    section = DOC.split(heading, 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([a-z_0-9]+)` \|(.*)\|$", section, flags=re.M)
    return {name: rest.split("|")[-1].strip() for name, rest in rows}


def test_every_event_field_is_documented_and_nothing_else() -> None:
    assert list(table_after("## Fields")) == list(EVENT_FIELDS)


def test_every_geo_field_is_documented() -> None:
    assert list(table_after("### Geo")) == list(GEO_FIELDS)


def test_kind_catalogue_matches_docs() -> None:
    documented = table_after("## Kinds")
    assert list(documented) == [k.value for k in Kind]
    assert {Kind(k): text for k, text in documented.items()} == KIND_DESCRIPTIONS


def test_flag_catalogue_matches_docs() -> None:
    documented = table_after("## Flags")
    assert {Flag(k): text for k, text in documented.items()} == FLAG_DESCRIPTIONS


def test_documented_limits_match_code() -> None:
    section = DOC.split("## Limits", 1)[1].split("\n#", 1)[0]
    for name, limit in re.findall(r"`([a-z_]+)` (\d+)", section):
        expected = RAW_LIMIT_BYTES if name == "raw" else FIELD_LIMITS[name]
        assert int(limit) == expected, name
