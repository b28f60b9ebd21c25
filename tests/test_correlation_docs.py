"""docs/correlation.md and the incident and role catalogues must agree, both ways."""

from __future__ import annotations

import re
from pathlib import Path

from honeyatlas.incident import INCIDENT_FIELDS, INCIDENT_KIND_DESCRIPTIONS, Fingerprint, IncidentKind
from honeyatlas.profile import ROLE_DESCRIPTIONS, Role

DOC = (Path(__file__).parents[1] / "docs" / "correlation.md").read_text()


def table_after(heading: str) -> dict[str, str]:
    section = DOC.split(heading, 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([a-z_0-9]+)` \|(.*)\|$", section, flags=re.M)
    return {name: rest.split("|")[-1].strip() for name, rest in rows}


def test_every_incident_field_is_documented_and_nothing_else() -> None:
    assert list(table_after("### Incident fields")) == list(INCIDENT_FIELDS)


def test_incident_kinds_match_docs() -> None:
    documented = table_after("### Incident kinds")
    assert list(documented) == [k.value for k in IncidentKind]
    assert {IncidentKind(k): text for k, text in documented.items()} == INCIDENT_KIND_DESCRIPTIONS


def test_fingerprints_match_docs() -> None:
    assert list(table_after("### Campaign fingerprints")) == [f.value for f in Fingerprint]


def test_roles_match_docs() -> None:
    documented = table_after("### Attacker classification")
    assert {Role(k): text for k, text in documented.items()} == ROLE_DESCRIPTIONS
