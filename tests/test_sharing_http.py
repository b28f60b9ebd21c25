"""Sharing through a real server: the IoC feed round-trips, STIX bundles validate, MISP
events name only shareable addresses; real cowrie records from three sensors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from honeyatlas.config import CorrelationConfig
from honeyatlas.incident import IncidentKind
from honeyatlas.share import parse_ioc_csv, parse_ioc_json
from honeyatlas.sources.simulate import SimulationOptions, plan_simulation, world, write_simulation
from honeyatlas.store import IncidentQuery
from tests.conftest import ServerStarter
from tests.share.test_stix import validate
from tests.test_incidents_http import DOWNLOADED, SENSORS, ingest_everywhere
from tests.test_ingest_http import PUBLIC_SOURCES, ndjson, post


def test_ioc_feed_stix_and_misp_from_real_incidents(start_on_backend: ServerStarter, tmp_path: Path) -> None:
    server, stop = start_on_backend(tmp_path / "data", server={"instance_name": "atlas-test"})
    try:
        tokens = {name: server.add_sensor(name, location=where) for name, where in SENSORS.items()}
        ingest_everywhere(server, tokens)
        lab = server.add_sensor("lab")  # loopback sources: stored, never shared
        lines = (Path(__file__).parent / "data" / "samples" / "cowrie.json").read_text().splitlines()
        assert post(server, lab, "\n".join(lines).encode()).status_code == 200
        # What the lab's events changed in the incidents is saved within a second; save it now,
        # or a save between the two STIX reads below makes them differ.
        server.run(server.service.sink.save_incidents())

        as_json = httpx.get(f"{server.url}api/v1/iocs").raise_for_status()
        rows = parse_ioc_json(as_json.content)
        assert {row.ip for row in rows} <= set(PUBLIC_SOURCES)
        assert "127.0.0.1" not in {row.ip for row in rows} and rows
        assert all(row.sensor_count == 3 and "multi_sensor" in row.tags for row in rows)
        as_csv = httpx.get(f"{server.url}api/v1/iocs", params={"format": "csv"}).raise_for_status()
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert parse_ioc_csv(as_csv.text) == rows  # the two forms agree, and each round-trips
        assert parse_ioc_json(as_json.content) == rows
        assert httpx.get(f"{server.url}api/v1/iocs", params={"format": "xml"}).status_code == 400
        now = datetime.now(UTC)
        too_long = {"since": (now - timedelta(days=40)).isoformat(), "until": now.isoformat()}
        assert httpx.get(f"{server.url}api/v1/iocs", params=too_long).status_code == 400

        bundle = httpx.get(f"{server.url}api/v1/stix").raise_for_status().json()
        validate(bundle)
        assert "127.0.0.1" not in str(bundle) and "fra-1" not in str(bundle)  # no lab source, no sensor name
        identities = [o for o in bundle["objects"] if o["type"] == "identity"]
        assert [i["name"] for i in identities] == ["atlas-test"]
        addresses = {o["value"] for o in bundle["objects"] if o["type"] == "ipv4-addr"}
        assert addresses == {row.ip for row in rows}

        incidents = httpx.get(f"{server.url}api/v1/incidents", params={"kind": "epidemic"}).json()["incidents"]
        epidemic = next(i for i in incidents if i["key"] == DOWNLOADED)
        one = httpx.get(f"{server.url}api/v1/incidents/{epidemic['id']}/stix").raise_for_status().json()
        validate(one)
        files = [o for o in one["objects"] if o["type"] == "file"]
        assert [f["hashes"]["SHA-256"] for f in files] == [DOWNLOADED]
        assert httpx.get(f"{server.url}api/v1/incidents/{epidemic['id']}/stix").json() == one  # deterministic

        misp = httpx.get(f"{server.url}api/v1/incidents/{epidemic['id']}/misp").raise_for_status().json()
        attributes = misp["Event"]["Attribute"]
        assert {a["value"] for a in attributes if a["type"] == "sha256"} == {DOWNLOADED}
        assert {a["value"] for a in attributes if a["type"] == "ip-src"} <= {row.ip for row in rows}
        assert httpx.get(f"{server.url}api/v1/incidents/inc_none/misp").status_code == 404
    finally:
        stop()




def test_known_research_scanners_are_labelled_and_never_exported(start_on_backend: ServerStarter,
                                                                   tmp_path: Path) -> None:
    """A source inside `correlation.benign_networks`: its events stored and profiled (marked
    benign), but no incident keyed by it and no row of it in the IoC feed or STIX."""
    scanner = "185.220.101.1"
    server, stop = start_on_backend(tmp_path / "data", correlation={"benign_networks": ["185.220.101.0/24"]})
    try:
        tokens = {name: server.add_sensor(name, location=where) for name, where in SENSORS.items()}
        ingest_everywhere(server, tokens)
        server.run(server.service.sink.save_incidents())
        profile = httpx.get(f"{server.url}api/v1/attackers/{scanner}").raise_for_status().json()
        assert profile["benign"] is True and profile["event_count"] > 0  # stored and counted
        others = [ip for ip in PUBLIC_SOURCES if ip != scanner]
        assert any(httpx.get(f"{server.url}api/v1/attackers/{ip}").json().get("benign") is False for ip in others)
        rows = parse_ioc_json(httpx.get(f"{server.url}api/v1/iocs").raise_for_status().content)
        assert rows and scanner not in {row.ip for row in rows}
        bundle = httpx.get(f"{server.url}api/v1/stix").raise_for_status().json()
        validate(bundle)
        assert scanner not in str(bundle)
        listed = httpx.get(f"{server.url}api/v1/incidents", params={"limit": 1000}).json()["incidents"]
        assert not [i for i in listed if i["kind"] in ("multi_sensor", "campaign") and scanner in i["sources"]]
    finally:
        stop()


def campaign_records(start: datetime, host: str, first_octet: int) -> list[dict]:
    """Six sources fetching tools from one host within five minutes (a strong key): a campaign."""
    return [{"ts": (start + timedelta(seconds=50 * n)).isoformat(), "kind": "file_download",
             "src_ip": f"{first_octet}.{n + 10}.7.9", "src_port": 40_000 + n, "dst_port": 22, "transport": "tcp",
             "protocol": "ssh", "session": f"{host}-{n}", "url": f"http://{host}/b{n}.sh", "sha256": f"{n:02x}" * 32,
             "outcome": "success"} for n in range(6)]


def test_exports_take_only_campaigns_at_or_above_the_confidence_threshold(start_on_backend: ServerStarter,
                                                                          tmp_path: Path) -> None:
    """A campaign in the detector's first hour (background not yet known) has confidence
    0.25, one after it 0.7: with the default `export_min_confidence` (0.5) only the second
    is in STIX and MISP; the API serves both with their keys; with 0.2 both are shared."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    records = campaign_records(start, "early.example", 81) + campaign_records(start + timedelta(hours=1, minutes=5),
                                                                                  "late.example", 82)
    window = {"since": (start - timedelta(hours=1)).isoformat(), "until": datetime.now(UTC).isoformat()}
    data = tmp_path / "data"
    server, stop = start_on_backend(data)
    try:
        token = server.add_sensor("fra-1")
        assert post(server, token, ndjson(records), fmt="event").status_code == 200
        server.run(server.service.sink.save_incidents())
        stored = server.run(server.service.store.query_incidents(IncidentQuery(limit=100)))
        ids = {i.key: i.id for i in stored if i.kind is IncidentKind.CAMPAIGN}
        assert set(ids) == {"early.example", "late.example"}
        early = httpx.get(f"{server.url}api/v1/incidents/{ids['early.example']}").raise_for_status().json()
        late = httpx.get(f"{server.url}api/v1/incidents/{ids['late.example']}").raise_for_status().json()
        assert early["confidence"] == 0.25 and late["confidence"] == 0.7
        assert late["keys"] == [{"fingerprint": "download_host", "value": "late.example", "sources": 5,
                                 "background": 0.0, "strong": True}]
        bundle = httpx.get(f"{server.url}api/v1/stix", params=window).raise_for_status().json()
        validate(bundle)
        groupings = [o for o in bundle["objects"] if o["type"] == "grouping" and "campaign" in o["labels"]]
        assert [g["confidence"] for g in groupings] == [70] and "late.example" in groupings[0]["description"]
        assert "early.example" not in str(bundle)
        for route in ("stix", "misp"):
            assert httpx.get(f"{server.url}api/v1/incidents/{early['id']}/{route}").status_code == 404
        misp = httpx.get(f"{server.url}api/v1/incidents/{late['id']}/misp").raise_for_status().json()
        assert {"name": 'honeyatlas:confidence="0.7"'} in misp["Event"]["Tag"]
    finally:
        stop()
    server, stop = start_on_backend(data, correlation={"export_min_confidence": 0.2})
    try:
        bundle = httpx.get(f"{server.url}api/v1/stix", params=window).raise_for_status().json()
        groupings = [o for o in bundle["objects"] if o["type"] == "grouping" and "campaign" in o["labels"]]
        assert sorted(g["confidence"] for g in groupings) == [25, 70]
        assert httpx.get(f"{server.url}api/v1/incidents/{early['id']}/misp").status_code == 200
    finally:
        stop()


def test_research_scanners_of_the_realistic_background_are_in_no_incident_and_no_export(
        start_on_backend: ServerStarter, tmp_path: Path) -> None:
    """The realistic scenario (thin background) through a real server, its research scanners'
    network listed: they reach every sensor, yet no multi-sensor or campaign incident names
    them, their scans are not exported, and neither the IoC feed, STIX nor MISP names them;
    every campaign STIX carries is at or above the confidence threshold."""
    settings = CorrelationConfig(benign_networks=[world.RESEARCH_NETWORK])
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)
    options = SimulationOptions(scenario="realistic", rate_events_per_second=0.3, start=start)
    plan = plan_simulation(options, settings)
    truth = write_simulation(plan, tmp_path / "trace")
    scanners = {s for e in truth.entities if e.plant == "research_scanner" for s in e.sources}
    assert len(scanners) == 3 and all(len(e.sensors) == len(plan.sensors)
                                      for e in truth.entities if e.plant == "research_scanner")
    lines = [json.loads(line) for line in (tmp_path / "trace" / "trace.jsonl").read_text().splitlines()]
    window = {"since": (start - timedelta(hours=1)).isoformat(), "until": datetime.now(UTC).isoformat()}
    server, stop = start_on_backend(tmp_path / "data", correlation={"benign_networks": [world.RESEARCH_NETWORK]})
    try:
        tokens = {spec.name: server.add_sensor(spec.name, honeypot=spec.honeypot) for spec in plan.sensors}
        batch: dict[str, list[dict]] = {}
        # ten minutes at a time (ISO time to the tens of minutes), each sensor's records of them in one request
        for n, line in enumerate(lines):
            batch.setdefault(line["sensor"], []).append(line["record"])
            if n + 1 == len(lines) or lines[n + 1]["record"]["ts"][:15] != line["record"]["ts"][:15]:
                for sensor, records in batch.items():
                    assert post(server, tokens[sensor], ndjson(records), fmt="event").status_code == 200
                batch = {}
        server.run(server.service.sink.save_incidents())
        stored = server.run(server.service.store.query_incidents(IncidentQuery(limit=10_000)))
        naming = [i for i in stored if scanners & ({i.key} | set(i.sources))]
        assert naming and {str(i.kind) for i in naming} == {"horizontal_scan"}  # their scans are real
        assert any(i.kind is IncidentKind.CAMPAIGN for i in stored)
        for incident in naming[:3]:
            for route in ("stix", "misp"):
                assert httpx.get(f"{server.url}api/v1/incidents/{incident.id}/{route}").status_code == 404
        rows = parse_ioc_json(httpx.get(f"{server.url}api/v1/iocs", params=window).raise_for_status().content)
        assert rows and not scanners & {row.ip for row in rows}
        bundle = httpx.get(f"{server.url}api/v1/stix", params=window).raise_for_status().json()
        validate(bundle)
        assert not [s for s in scanners if s in json.dumps(bundle)]
        campaigns = [o for o in bundle["objects"] if o["type"] == "grouping" and "campaign" in o["labels"]]
        assert campaigns and all(g["confidence"] >= 100 * settings.export_min_confidence for g in campaigns)
    finally:
        stop()
