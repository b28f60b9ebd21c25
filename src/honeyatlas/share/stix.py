"""STIX 2.1 bundles of what honeyatlas saw: attacker addresses, payloads and incidents.

What lives here: `stix_bundle` and `pattern_string`, the one place a value becomes a
STIX pattern literal. Pure: plain dicts in the STIX 2.1 JSON shape; the `stix2` library
is used only by the tests, to validate.

Objects, per address row: an `ipv4-addr`/`ipv6-addr` SCO, an `indicator` whose pattern
matches it, an `observed-data` (first and last seen, event count) and a `sighting` of the
indicator by the instance's `identity`. Per epidemic: a `file` SCO with its SHA-256 and the
same indicator, observed-data and sighting. Per incident: a `grouping` (context
"suspicious-activity") of those objects carrying the summary. A grouping, not a report:
a report is a finished, published analysis, while an incident is a machine detection that
may still grow and that no analyst has reviewed.

Re-exporting the same data gives the same bundle, byte for byte:
- SCO ids follow STIX 2.1 §2.9 (uuid5 over the contributing properties), so every producer
  names one address alike; SDO ids are uuid5 over honeyatlas's namespace, the identity and
  the defining value (the pattern, the SCO, the incident id);
- no timestamp comes from a clock: `created` is the first sighting and `modified` the last
  (for a closed incident, when its window ran out), so a newer `modified` is a real newer
  version. `generated_at` only caps them, so a sensor with a fast clock cannot publish
  objects dated in the future.

Must not: name sensors (a shared bundle would tell attackers which hosts are honeypots), or
put attacker text (a campaign's credential list, commands or SSH banner) anywhere but a
description, bounded and made printable. Only addresses that are rows of `attackers` become
objects: the store already decided which may leave; an incident's other sources are only
counted.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from honeyatlas.incident import INCIDENT_KIND_DESCRIPTIONS, Incident
from honeyatlas.profile import AttackerSummary
from honeyatlas.share._fields import address, changed_at, derived_uuid, payload_of, printable, utc

StixObject = dict[str, Any]

# STIX 2.1 §2.9: the namespace of deterministic SCO ids, the same for every producer.
SCO_NAMESPACE = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
MAX_OBSERVED = 999_999_999  # STIX 2.1 bound of number_observed and count
ATTACKER_TEXT_LIMIT = 1024  # characters of a fingerprint value shown in a description
SUMMARY_LIMIT = 512
NAME_LIMIT = 256


def pattern_string(value: str) -> str:
    """`value` as a STIX pattern string literal: quoted, with \\ and ' escaped (STIX 2.1 patterning §9.3).

    Every other character stands for itself inside the quotes, so this is all a value needs
    to stay one literal, whatever it holds.
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def stix_bundle(
    *, incidents: list[Incident], attackers: list[AttackerSummary], identity_name: str, generated_at: datetime
) -> dict:
    """One STIX 2.1 bundle: the identity, then every address row's objects, then every incident's."""
    bundle = _Bundle(identity_name, utc(generated_at))
    for row in attackers:
        bundle.add_attacker(row)
    for incident in incidents:
        bundle.add_incident(incident)
    return bundle.document()


class _Bundle:
    """Objects collected once each, by id, in the order they were first added."""

    def __init__(self, identity_name: str, generated_at: datetime) -> None:
        self._cap = generated_at
        self._name = name = printable(identity_name, NAME_LIMIT)
        self._identity_id = "identity--" + derived_uuid("identity", name)
        self._objects: dict[str, StixObject] = {}
        self._by_address: dict[str, list[str]] = {}
        # The instance has no creation time we know of; a constant keeps its identity one version.
        epoch = _timestamp(datetime(1970, 1, 1))
        self._add({
            "type": "identity", "spec_version": "2.1", "id": self._identity_id, "created": epoch,
            "modified": epoch, "name": name, "identity_class": "system",
            "description": "A honeyatlas honeynet: honeypot sensors whose events it correlates.",
        })

    def document(self) -> dict:
        objects = list(self._objects.values())
        versions = "\n".join(f"{obj['id']} {obj.get('modified', '')}" for obj in objects)
        return {"type": "bundle", "id": "bundle--" + derived_uuid("bundle", versions), "objects": objects}

    def add_attacker(self, row: AttackerSummary) -> None:
        addr = address(row.ip)
        if addr is None or str(addr) in self._by_address:
            return
        sco = _sco("ipv4-addr" if addr.version == 4 else "ipv6-addr", value=str(addr))
        first, last = self._span(row.first_seen, row.last_seen)
        origin = [printable(row.country, 64)] if row.country else []
        origin += [f"AS{row.asn}"] if row.asn is not None else []
        where = f" ({', '.join(origin)})" if origin else ""
        description = (
            f"{addr}{where} attacked {row.sensor_count} honeypot sensor(s) of {self._name}: "
            f"{row.event_count} events from {_timestamp(first)} to {_timestamp(last)}."
        )
        labels = ["honeypot", *(printable(tag, NAME_LIMIT) for tag in row.tags if tag)]
        self._by_address[str(addr)] = self._observation(
            sco, f"[{sco['type']}:value = {pattern_string(str(addr))}]", name=f"Honeypot attacker {addr}",
            description=description, labels=labels, first=first, last=last, count=row.event_count,
        )

    def add_incident(self, incident: Incident) -> None:
        refs: list[str] = []
        for source in incident.sources:
            addr = address(source)
            refs += self._by_address.get(str(addr), []) if addr else []
        payload = payload_of(incident)
        if payload is not None:
            digest, first_seen = payload
            first, last = self._span(first_seen, incident.last_seen)
            refs += self._observation(
                _sco("file", hashes={"SHA-256": digest}), f"[file:hashes.'SHA-256' = {pattern_string(digest)}]",
                name=f"Honeypot payload {digest}",
                description=f"A payload that spread to {len(incident.sensors)} honeypot sensors of {self._name} "
                f"from {incident.source_count} sources.",
                labels=["honeypot", str(incident.kind)], first=first, last=last, count=incident.event_count,
            )
        created, modified = self._span(incident.opened_at, changed_at(incident))
        self._add({
            **self._sdo("grouping", incident.id, created, modified),
            "name": printable(f"honeyatlas {incident.kind.replace('_', ' ')} incident {incident.id}", NAME_LIMIT),
            "description": _incident_description(incident),
            "context": "suspicious-activity",
            "labels": ["honeypot", str(incident.kind), str(incident.status)],
            "object_refs": list(dict.fromkeys(refs)) or [self._identity_id],
            # STIX 2.1 common property: 0-100, the producer's confidence in the grouping (campaigns)
            **({"confidence": round(incident.confidence * 100)} if incident.confidence is not None else {}),
        })

    def _observation(self, sco: StixObject, pattern: str, *, name: str, description: str, labels: list[str],
                     first: datetime, last: datetime, count: int) -> list[str]:
        """An SCO, the indicator matching it, its observed-data and the sighting tying them; their ids."""
        indicator = {
            **self._sdo("indicator", pattern, first, last), "name": name, "description": description,
            "indicator_types": ["malicious-activity"], "pattern": pattern, "pattern_type": "stix",
            "pattern_version": "2.1", "valid_from": _timestamp(first), "labels": list(dict.fromkeys(labels)),
        }
        observed = {
            **self._sdo("observed-data", sco["id"], first, last), "first_observed": _timestamp(first),
            "last_observed": _timestamp(last), "number_observed": min(max(count, 1), MAX_OBSERVED),
            "object_refs": [sco["id"]],
        }
        sighting = {
            **self._sdo("sighting", indicator["id"], first, last), "first_seen": _timestamp(first),
            "last_seen": _timestamp(last), "count": min(max(count, 0), MAX_OBSERVED),
            "sighting_of_ref": indicator["id"], "observed_data_refs": [observed["id"]],
            "where_sighted_refs": [self._identity_id],
        }
        for obj in (sco, indicator, observed, sighting):
            self._add(obj)
        return [indicator["id"], sco["id"], observed["id"], sighting["id"]]

    def _sdo(self, kind: str, defining: str, created: datetime, modified: datetime) -> StixObject:
        return {
            "type": kind, "spec_version": "2.1", "id": f"{kind}--{derived_uuid(kind, self._identity_id, defining)}",
            "created": _timestamp(created), "modified": _timestamp(modified), "created_by_ref": self._identity_id,
        }

    def _span(self, first: datetime, last: datetime) -> tuple[datetime, datetime]:
        """(first, last) in UTC, in order, neither after the export."""
        first, last = min(utc(first), self._cap), min(utc(last), self._cap)
        return first, max(first, last)

    def _add(self, obj: StixObject) -> None:
        self._objects.setdefault(obj["id"], obj)


def _sco(kind: str, **contributing: Any) -> StixObject:
    """A cyber-observable with its spec-defined id: uuid5 over its contributing properties, canonical JSON.

    Our contributing values are addresses and hex digests, plain ASCII, for which sorted,
    separator-tight `json.dumps` is the RFC 8785 canonical form the spec asks for.
    """
    canonical = json.dumps(contributing, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return {"type": kind, "spec_version": "2.1", "id": f"{kind}--{uuid.uuid5(SCO_NAMESPACE, canonical)}",
            **contributing}


def _incident_description(incident: Incident) -> str:
    lines = [
        printable(incident.summary, SUMMARY_LIMIT) + ".",
        f"{INCIDENT_KIND_DESCRIPTIONS[incident.kind]}",
        f"Status: {incident.status}. Opened {_timestamp(incident.opened_at)}, last activity "
        f"{_timestamp(incident.last_seen)}; {incident.source_count} sources, {len(incident.sensors)} sensors, "
        f"{incident.event_count} events.",
    ]
    if incident.fingerprint is not None:
        lines.append(f"Shared {incident.fingerprint.replace('_', ' ')}: {printable(incident.key, ATTACKER_TEXT_LIMIT)}")
    for key in incident.keys[1:]:
        lines.append(f"Also shared {key.fingerprint.replace('_', ' ')} ({key.sources} sources, {key.background:g} other "
                     f"sources showed both before): {printable(key.value, ATTACKER_TEXT_LIMIT)}")
    if incident.keys:
        lines.append(f"Rarity of the shared {incident.keys[0].fingerprint.replace('_', ' ')}: "
                     f"{incident.keys[0].background:g} other sources showed it before the campaign.")
    if incident.confidence is not None:
        lines.append(f"Confidence {incident.confidence:g} (0-1, from the keys' rarity and number).")
    if incident.doubling_seconds is not None:
        lines.append(f"Sensor count doubling time: {incident.doubling_seconds:.0f} s.")
    return "\n".join(lines)


def _timestamp(ts: datetime) -> str:
    """A STIX timestamp: UTC, Z, always microseconds (created and modified need at least milliseconds)."""
    return utc(ts).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"

