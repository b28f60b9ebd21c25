"""STIX 2.1 bundles: valid for the `stix2` library and the official validator, deterministic, and safe."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import msgspec
import pytest
import stix2
from hypothesis import given, settings
from hypothesis import strategies as st
from stix2patterns.pattern import Pattern
from stix2patterns.validator import run_validator
from stix2validator import ValidationOptions, validate_instance

from honeyatlas.share import pattern_string, stix_bundle
from honeyatlas.share.stix import ATTACKER_TEXT_LIMIT
from tests.share.values import EXPORTED_AT, HOSTILE, SENSORS, SHA256, T0, attackers, campaign, epidemic, horizontal_scan

IDENTITY = "Example CERT honeynet"
# The reference STIX tool names these SCOs so (shared/samples/cowrie-stix21-bundle.json): ids follow STIX 2.1 §2.9.
REFERENCE_SCO_IDS = {
    ("ipv4-addr", "127.0.0.1"): "ipv4-addr--679c6c82-b4be-52e2-9c7a-198689f6f77b",
    ("file", SHA256): "file--6a36ff8a-f797-57e5-b24c-80951e2ad2ad",
}


def bundle(**overrides: Any) -> dict:
    arguments = {"incidents": [campaign(), epidemic(), horizontal_scan()], "attackers": attackers(),
                 "identity_name": IDENTITY, "generated_at": EXPORTED_AT}
    return stix_bundle(**{**arguments, **overrides})


def validate(document: dict) -> None:
    """Both checkers accept it: the library parses it without custom content, the validator finds no error.

    The validator's only warning may be {103}: STIX says SDO ids SHOULD be UUIDv4, and ours are
    UUIDv5 on purpose, so that re-exporting gives the same ids.
    """
    stix2.parse(json.dumps(document), allow_custom=False)
    results = validate_instance(document, ValidationOptions(version="2.1"))
    assert results.is_valid, [str(e) for e in results.errors]
    warnings = [str(w) for w in results.warnings]
    assert all("{103}" in w and "UUIDv4" in w for w in warnings), warnings
    sco_warnings = [w for w in warnings if re.search(r"(ipv4-addr|ipv6-addr|file)--", w)]
    assert not sco_warnings


def by_type(document: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for obj in document["objects"]:
        found.setdefault(obj["type"], []).append(obj)
    return found


def test_the_bundle_passes_the_stix2_library_and_the_official_validator() -> None:
    validate(bundle())


def test_edge_cases_are_valid_too() -> None:
    validate(bundle(incidents=[], attackers=[]))  # the identity alone
    validate(bundle(attackers=[]))  # incidents whose sources may not be shared: groupings point at the identity
    validate(bundle(incidents=[]))  # a time range with no incident
    future = msgspec.structs.replace(attackers()[0], first_seen=EXPORTED_AT + timedelta(days=1),
                                     last_seen=EXPORTED_AT + timedelta(days=2), event_count=0)
    validate(bundle(attackers=[future], incidents=[]))
    validate(bundle(identity_name="\x1b]0;owned\x07" + "n" * 5000))


def test_each_address_is_an_sco_an_indicator_observed_data_and_a_sighting() -> None:
    document = bundle(incidents=[])
    objects = by_type(document)
    identity = objects["identity"][0]
    assert identity["name"] == IDENTITY and identity["identity_class"] == "system"
    assert [o["value"] for o in objects["ipv4-addr"]] == ["45.155.205.233", "185.220.101.47"]
    assert [o["value"] for o in objects["ipv6-addr"]] == ["2a01:4f8:c17:1b2c::5"]
    patterns = [o["pattern"] for o in objects["indicator"]]
    assert patterns == ["[ipv4-addr:value = '45.155.205.233']", "[ipv6-addr:value = '2a01:4f8:c17:1b2c::5']",
                        "[ipv4-addr:value = '185.220.101.47']"]
    first = objects["indicator"][0]
    assert first["indicator_types"] == ["malicious-activity"] and first["pattern_type"] == "stix"
    assert first["valid_from"] == first["created"] == "2024-05-01T12:00:00.123456Z"
    assert first["modified"] == "2024-05-01T15:00:00.123456Z"
    assert first["labels"] == ["honeypot", "malware_dropper", "brute_forcer", "campaign", "epidemic"]
    assert "(NL, AS49870)" in first["description"] and "4 honeypot sensor(s)" in first["description"]
    observed = objects["observed-data"][0]
    assert observed["number_observed"] == 1204
    assert observed["object_refs"] == [objects["ipv4-addr"][0]["id"]]
    assert (observed["first_observed"], observed["last_observed"]) == (first["valid_from"], first["modified"])
    sighting = objects["sighting"][0]
    assert sighting["sighting_of_ref"] == first["id"]
    assert sighting["observed_data_refs"] == [observed["id"]]
    assert sighting["where_sighted_refs"] == [identity["id"]]
    assert sighting["count"] == 1204
    assert {o["created_by_ref"] for t in ("indicator", "observed-data", "sighting", "grouping")
            for o in objects.get(t, [])} == {identity["id"]}


def test_an_epidemic_adds_its_payload_and_every_incident_a_grouping() -> None:
    objects = by_type(bundle())
    [payload] = objects["file"]
    assert payload["hashes"] == {"SHA-256": SHA256}
    file_indicator = next(o for o in objects["indicator"] if o["pattern"].startswith("[file:"))
    assert file_indicator["pattern"] == f"[file:hashes.'SHA-256' = '{SHA256}']"
    assert file_indicator["valid_from"] == "2024-05-01T12:00:00.123456Z"  # the first sensor, before the k-th
    groupings = {g["labels"][1]: g for g in objects["grouping"]}
    assert set(groupings) == {"campaign", "epidemic", "horizontal_scan"}
    assert all(g["context"] == "suspicious-activity" for g in groupings.values())
    refs = set(groupings["epidemic"]["object_refs"])
    assert {payload["id"], file_indicator["id"]} <= refs
    # A closed incident last changed when its window ran out.
    assert groupings["epidemic"]["modified"] == "2024-05-08T21:00:00.123456Z"
    assert groupings["epidemic"]["created"] == "2024-05-01T18:00:00.123456Z"
    assert "doubling time: 9000 s" in groupings["epidemic"]["description"]
    # The campaign names the three sources that are feed rows; the two others are only counted.
    addresses = {o["id"]: o["value"] for t in ("ipv4-addr", "ipv6-addr") for o in objects[t]}
    assert {addresses[r] for r in groupings["campaign"]["object_refs"] if r in addresses} == {
        "45.155.205.233", "2a01:4f8:c17:1b2c::5", "185.220.101.47"}
    assert "5 sources" in groupings["campaign"]["description"]


def test_every_reference_points_into_the_bundle_and_every_id_is_unique() -> None:
    document = bundle()
    ids = [o["id"] for o in document["objects"]]
    assert len(ids) == len(set(ids))
    for obj in document["objects"]:
        for name, value in obj.items():
            refs = value if name.endswith("_refs") else [value] if name.endswith("_ref") else []
            assert set(refs) <= set(ids), (obj["id"], name)


def test_sco_ids_are_the_ones_every_stix_producer_derives() -> None:
    lab = msgspec.structs.replace(attackers()[0], ip="127.0.0.1")
    objects = by_type(bundle(attackers=[lab]))
    assert objects["ipv4-addr"][0]["id"] == REFERENCE_SCO_IDS[("ipv4-addr", "127.0.0.1")]
    assert objects["file"][0]["id"] == REFERENCE_SCO_IDS[("file", SHA256)]
    for obj in by_type(bundle())["ipv6-addr"]:
        assert obj["id"] == stix2.IPv6Address(value=obj["value"]).id


def test_the_same_data_gives_the_same_bundle_whenever_it_is_exported() -> None:
    once = json.dumps(bundle(), sort_keys=True)
    assert json.dumps(bundle(), sort_keys=True) == once
    assert json.dumps(bundle(generated_at=EXPORTED_AT + timedelta(days=365)), sort_keys=True) == once
    assert bundle()["id"] == bundle()["id"]
    grown = [msgspec.structs.replace(attackers()[0], last_seen=T0 + timedelta(hours=4)), *attackers()[1:]]
    changed = bundle(attackers=grown)
    assert changed["id"] != bundle()["id"]  # a new version of one object is a new bundle...
    assert [o["id"] for o in changed["objects"]] == [o["id"] for o in bundle()["objects"]]  # ...of the same objects


def test_nothing_is_dated_after_the_export() -> None:
    future = msgspec.structs.replace(attackers()[0], last_seen=EXPORTED_AT + timedelta(days=3))
    for obj in bundle(attackers=[future], incidents=[])["objects"]:
        for name in ("created", "modified", "valid_from", "last_observed", "last_seen"):
            if name in obj:
                assert stix2.utils.parse_into_datetime(obj[name]) <= EXPORTED_AT, obj


def test_attacker_text_stays_in_a_bounded_printable_description() -> None:
    document = bundle()
    [grouping] = [g for g in by_type(document)["grouping"] if "campaign" in g["labels"]]
    description = grouping["description"]
    shown = description.split("\n")[-1]
    assert shown.startswith("Shared credentials: root/'; DROP TABLE x; --, admin/<script>alert(\"x\")</script>, "
                            "pi/raspberry\\\\' OR '1'='1, user/line1\\x0aStatus: closed\\x0d\\x0a\\x1b[2J\\x00\\u202egnp.exe")
    assert len(shown) <= len("Shared credentials: ") + ATTACKER_TEXT_LIMIT
    assert shown.endswith("more characters)")  # the 10 KB value was cut
    assert description.count("\n") == 3  # our own lines; the attacker's line breaks made none
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]", description)
    for obj in document["objects"]:  # nowhere else: not a name, a label or a pattern
        if obj is not grouping:
            assert "DROP TABLE" not in json.dumps(obj), obj["id"]


def test_sensor_names_and_unshared_sources_never_leave() -> None:
    text = json.dumps(bundle())
    for name in SENSORS:
        assert name not in text
    assert "10.1.2.3" not in text and "198.51.100.9" not in text


def test_rows_that_are_not_addresses_and_keys_that_are_not_digests_give_no_object() -> None:
    broken = msgspec.structs.replace(attackers()[0], ip="45.155.205.233'] OR [file:name = 'x")
    fake = epidemic(key="not-a-digest' OR '1'='1")
    document = bundle(attackers=[broken], incidents=[fake])
    validate(document)
    assert set(by_type(document)) == {"identity", "grouping"}


@settings(max_examples=500)
@given(st.text())
def test_any_value_stays_one_pattern_literal(value: str) -> None:
    pattern = f"[file:name = {pattern_string(value)}]"
    assert run_validator(pattern, stix_version="2.1") == []
    [(path, operator, literal)] = Pattern(pattern).inspect().comparisons["file"]
    assert (path, operator) == (["name"], "=")
    assert re.sub(r"\\(.)", r"\1", literal[1:-1], flags=re.DOTALL) == value


def test_hostile_values_make_valid_indicators() -> None:
    for value in (*HOSTILE, "\\", "'", "\\'", "']", "' OR [file:name = 'x"):
        pattern = f"[file:name = {pattern_string(value)}]"
        stix2.Indicator(pattern=pattern, pattern_type="stix", valid_from=T0)
        assert run_validator(pattern, stix_version="2.1") == []


def test_the_reference_bundle_parses_with_the_same_checks() -> None:
    """The harness accepts what a reference STIX producer wrote, so a failure above is ours."""
    path = "/work/shared/samples/cowrie-stix21-bundle.json"
    try:
        with open(path) as f:
            reference = json.load(f)
    except FileNotFoundError:
        pytest.skip(f"{path} is not on this machine")
    stix2.parse(json.dumps(reference), allow_custom=False)
