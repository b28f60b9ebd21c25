"""MISP events: the shape MISP writes, deterministic, with attacker text kept out of rules."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from honeyatlas.incident import Incident, IncidentStatus
from honeyatlas.profile import AttackerSummary
from honeyatlas.share import misp_event
from honeyatlas.share.misp import FINGERPRINT_LIMIT
from tests.share.values import EXPORTED_AT, SENSORS, SHA256, T0, attackers, campaign, epidemic, horizontal_scan

REFERENCE = Path("/work/shared/samples/cowrie-misp-event.json")
# What a MISP event written by a reference tool carries (shared/samples/cowrie-misp-event.json), and of what type.
EVENT_KEYS = {"uuid": str, "info": str, "distribution": str, "threat_level_id": str, "analysis": str,
              "Attribute": list, "Tag": list}
ATTRIBUTE_KEYS = {"uuid": str, "type": str, "value": str, "category": str, "to_ids": bool,
                  "disable_correlation": bool}


def event(incident: Incident | None = None, rows: list[AttackerSummary] | None = None) -> dict:
    chosen = campaign() if incident is None else incident
    return misp_event(incident=chosen, attackers=attackers() if rows is None else rows, generated_at=EXPORTED_AT)


def assert_misp_shape(document: dict) -> None:
    assert list(document) == ["Event"]
    body = document["Event"]
    for key, kind in EVENT_KEYS.items():
        assert isinstance(body[key], kind), key
    assert body["threat_level_id"] in {"1", "2", "3", "4"} and body["analysis"] in {"0", "1", "2"}
    assert body["distribution"] in {"0", "1", "2", "3", "4"}
    assert datetime.strptime(body["date"], "%Y-%m-%d") and body["timestamp"].isdigit()
    assert all(set(tag) == {"name"} and isinstance(tag["name"], str) for tag in body["Tag"])
    uuids = [body["uuid"]]
    for attribute in body["Attribute"]:
        for key, kind in ATTRIBUTE_KEYS.items():
            assert isinstance(attribute[key], kind), (key, attribute)
        if "first_seen" in attribute:
            first, last = (datetime.fromisoformat(attribute[k]) for k in ("first_seen", "last_seen"))
            assert first.utcoffset() == timedelta(0) and first <= last
        uuids.append(attribute["uuid"])
    assert len(set(uuids)) == len(uuids) and all(uuid.UUID(u) for u in uuids)


def test_every_incident_kind_has_the_shape_of_a_misp_event() -> None:
    for incident in (campaign(), epidemic(), horizontal_scan()):
        assert_misp_shape(event(incident))
        assert_misp_shape(event(incident, rows=[]))


def test_our_keys_cover_the_reference_sample() -> None:
    if not REFERENCE.exists():
        pytest.skip(f"{REFERENCE} is not on this machine")
    reference = json.loads(REFERENCE.read_text())
    assert set(EVENT_KEYS) <= set(reference)  # the constants above were read off the sample
    ours = event(epidemic())["Event"]
    assert set(reference) <= set(ours)
    for key in reference:
        assert type(ours[key]) is type(reference[key]), key
    their_types = {k: type(v) for a in reference["Attribute"] for k, v in a.items()}
    for mine in (*ours["Attribute"], *event(campaign())["Event"]["Attribute"]):
        assert set(their_types) <= set(mine)  # comment included: we always say why
        assert all(type(mine[k]) is kind for k, kind in their_types.items())
    sha = next(a for a in ours["Attribute"] if a["type"] == "sha256")
    their_sha = next(a for a in reference["Attribute"] if a["type"] == "sha256")
    assert (sha["category"], sha["to_ids"]) == (their_sha["category"], their_sha["to_ids"])


def test_sources_become_ip_src_with_their_history_and_the_payload_a_sha256() -> None:
    body = event(epidemic())["Event"]
    by_type = {}
    for attribute in body["Attribute"]:
        by_type.setdefault(attribute["type"], []).append(attribute)
    assert [a["value"] for a in by_type["ip-src"]] == ["45.155.205.233", "2a01:4f8:c17:1b2c::5"]
    first = by_type["ip-src"][0]
    assert first["category"] == "Network activity" and first["to_ids"] is True
    assert first["first_seen"] == "2024-05-01T12:00:00.123456+00:00"
    assert first["last_seen"] == "2024-05-01T15:00:00.123456+00:00"
    assert first["comment"] == ("first seen 2024-05-01T12:00:00.123456Z, last seen 2024-05-01T15:00:00.123456Z, "
                                "1204 events at 4 honeypot sensors")
    [sha] = by_type["sha256"]
    assert sha["value"] == SHA256 and sha["category"] == "Payload delivery" and sha["to_ids"] is True
    assert sha["first_seen"] == "2024-05-01T12:00:00.123456+00:00"
    assert body["threat_level_id"] == "2" and body["analysis"] == "2"  # closed: will not change again
    assert body["date"] == "2024-05-01"
    assert body["timestamp"] == str(int((T0 + timedelta(hours=9, days=7)).timestamp()))
    assert {"name": 'honeyatlas:incident-kind="epidemic"'} in body["Tag"]


def test_the_campaign_fingerprint_is_text_never_a_rule() -> None:
    body = event()["Event"]
    [text] = [a for a in body["Attribute"] if a["type"] == "text"]
    assert (text["category"], text["to_ids"]) == ("Other", False)
    assert text["comment"] == "campaign fingerprint: credentials"
    assert text["value"].startswith("root/'; DROP TABLE x; --, admin/<script>")
    assert "\\x0a" in text["value"] and "\n" not in text["value"] and "\x1b" not in text["value"]
    assert len(text["value"]) <= FINGERPRINT_LIMIT
    assert {"name": 'honeyatlas:fingerprint="credentials"'} in body["Tag"]
    assert body["analysis"] == "1"  # open: still growing
    assert "DROP TABLE" not in body["info"]
    assert all(a["to_ids"] is False for a in body["Attribute"] if a["type"] != "ip-src")


def test_only_feed_rows_are_named_and_sensors_never() -> None:
    text = json.dumps(event())
    assert "10.1.2.3" not in text and "198.51.100.9" not in text
    for name in SENSORS:
        assert name not in text
    assert [a["type"] for a in event(rows=[])["Event"]["Attribute"]] == ["text"]


def test_the_same_incident_gives_the_same_event_and_a_change_a_newer_one() -> None:
    assert json.dumps(event()) == json.dumps(event())
    later = misp_event(incident=campaign(), attackers=attackers(), generated_at=EXPORTED_AT + timedelta(days=99))
    assert later == event()
    closed = event(campaign(status=IncidentStatus.CLOSED))["Event"]
    assert closed["uuid"] == event()["Event"]["uuid"]
    assert int(closed["timestamp"]) > int(event()["Event"]["timestamp"])
    other = event(campaign(key="root/root, admin/admin, pi/raspberry"))["Event"]
    assert other["uuid"] != event()["Event"]["uuid"]


def test_nothing_is_dated_after_the_export() -> None:
    future = msgspec.structs.replace(attackers()[0], last_seen=EXPORTED_AT + timedelta(days=1))
    body = misp_event(incident=campaign(), attackers=[future], generated_at=EXPORTED_AT)["Event"]
    ip = next(a for a in body["Attribute"] if a["type"] == "ip-src")
    assert datetime.fromisoformat(ip["last_seen"]) == EXPORTED_AT
    assert int(body["timestamp"]) <= EXPORTED_AT.timestamp()
