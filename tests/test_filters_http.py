"""The filter language over HTTP (issue 13), on both backends: for each filter parameter the
summary's total equals the number of events /api/v1/events returns and the export holds
exactly those events; `order=asc` replays a window oldest first; repeating a parameter means
any of; bad values are 400s that say why; the export stops at its cap and says so."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from honeyatlas.event import Event, Kind, Outcome
from honeyatlas.incident import Incident, IncidentKind, IncidentStatus
from honeyatlas.store.filters import EventFilter
from tests.conftest import RunningServer
from tests.store.test_window_summary import events_around, matches

ROUTES = ("api/v1/events", "api/v1/stats/summary", "api/v1/stats/histogram", "api/v1/incidents",
          "api/v1/events/export", "api/v1/iocs", "api/v1/stix")


def filter_of(params: dict[str, Any]) -> EventFilter:
    """What the parameters ask, read the plain way (the oracle's side of the comparison)."""

    def many(name: str) -> tuple[str, ...]:
        value = params.get(name, [])
        return tuple(value if isinstance(value, list) else [value])

    return EventFilter(
        since=datetime.fromisoformat(params["since"]), until=datetime.fromisoformat(params["until"]),
        sensors=many("sensor"), honeypots=many("honeypot"), kinds=tuple(map(Kind, many("kind"))),
        outcomes=tuple(map(Outcome, many("outcome"))), protocols=many("protocol"), ports=tuple(map(int, many("port"))),
        countries=tuple(c.upper() for c in many("country")),
        asns=tuple(int(a.removeprefix("AS")) for a in many("asn")),
        addresses=tuple(a for a in many("src_ip") if "/" not in a), networks=tuple(n for n in many("src_ip") if "/" in n),
    )


def fill(server: RunningServer, now: datetime) -> list[Event]:
    events = events_around(now, 700, seed=5)
    server.run(server.service.store.append(events, []))
    return events


def all_events(server: RunningServer, params: dict[str, Any], limit: int = 1000) -> list[dict[str, Any]]:
    """Every page of /api/v1/events, following next_cursor."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = httpx.get(f"{server.url}api/v1/events", params={**params, "limit": limit,
                                                                **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        found += body["events"]
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def test_each_parameter_means_the_same_in_the_summary_the_events_and_the_export(server: RunningServer) -> None:
    now = datetime.now(UTC)
    events = fill(server, now)
    window = {"since": (now - timedelta(hours=30)).isoformat(), "until": (now + timedelta(hours=1)).isoformat()}
    asked: list[dict[str, Any]] = [
        {}, {"sensor": "nyc-2"}, {"honeypot": "dionaea"}, {"kind": ["login_attempt", "command"]},
        {"outcome": "success"}, {"protocol": ["ssh", "smb"]}, {"port": "22"}, {"country": "cn"},
        {"asn": ["15169", "AS3320"]}, {"src_ip": "198.51.100.7"}, {"src_ip": "198.51.100.0/23"},
        {"src_ip": ["2001:db8::/32", "203.0.113.5"]}, {"kind": "login_attempt", "country": ["US", "DE"], "port": "22"},
    ]
    for extra in asked:
        params = {**window, **extra}
        expected = {e.id for e in events if matches(e, filter_of(params))}
        assert expected or extra == {}, extra  # the mix has events for every filter
        summary = httpx.get(f"{server.url}api/v1/stats/summary", params=params)
        assert summary.status_code == 200, summary.text
        assert summary.json()["total"] == len(expected), extra
        listed = all_events(server, params, limit=97)
        assert len(listed) == len({e["id"] for e in listed}) and {e["id"] for e in listed} == expected, extra

        as_json = httpx.get(f"{server.url}api/v1/events/export", params={**params, "format": "json"})
        assert as_json.status_code == 200 and as_json.headers["content-type"].startswith("application/json")
        exported = json.loads(as_json.content)
        assert exported["truncated"] is False and {e["id"] for e in exported["events"]} == expected, extra
        as_csv = httpx.get(f"{server.url}api/v1/events/export", params={**params, "format": "csv"})
        assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert sorted(r["id"] for r in rows) == sorted(expected), extra

        histogram = httpx.get(f"{server.url}api/v1/stats/histogram", params={**params, "bucket_seconds": 3600})
        assert sum(b["count"] for b in histogram.json()["buckets"]) == len(expected), extra

    before = datetime.now(UTC)
    day = httpx.get(f"{server.url}api/v1/stats/summary", params={"range": "24h", "kind": "login_attempt"}).json()
    after = datetime.now(UTC)
    logins = [e.ts for e in events if e.kind == Kind.LOGIN_ATTEMPT]
    # `range` ends at the server's now, between `before` and `after`
    assert (sum(after - timedelta(hours=24) <= ts < before for ts in logins) <= day["total"]
            <= sum(before - timedelta(hours=24) <= ts < after for ts in logins))
    assert set(day["top"]) == {"countries", "asns", "ips", "ports", "usernames", "passwords", "commands",
                               "payloads", "sensors"}
    live = httpx.get(f"{server.url}api/v1/stats/summary").json()  # no window, no filter: the live answer
    assert set(live) == {"counts", "top", "pipeline", "generated_at"}


def test_order_asc_replays_a_window_oldest_first_without_gaps_or_repeats(server: RunningServer) -> None:
    now = datetime.now(UTC)
    events = fill(server, now)
    params = {"since": (now - timedelta(hours=25)).isoformat(), "until": now.isoformat(), "order": "asc"}
    replayed = all_events(server, params, limit=41)
    expected = sorted((e for e in events if now - timedelta(hours=25) <= e.ts < now), key=lambda e: (e.ts, e.id))
    assert [e["id"] for e in replayed] == [e.id for e in expected]


def test_incidents_and_exports_take_the_same_parameters(server: RunningServer) -> None:
    now = datetime.now(UTC)
    events = fill(server, now)
    made = [
        Incident(id="a", kind=IncidentKind.MULTI_SENSOR, key="198.51.100.7", status=IncidentStatus.OPEN,
                 opened_at=now - timedelta(hours=2), last_seen=now, window_seconds=600, summary="t", event_count=3,
                 sources=("198.51.100.7",), source_count=1, sensors=("fra-1", "nyc-2")),
        Incident(id="b", kind=IncidentKind.VERTICAL_SCAN, key="2001:db8::1", status=IncidentStatus.OPEN,
                 opened_at=now - timedelta(days=3), last_seen=now - timedelta(days=2), window_seconds=600,
                 summary="t", event_count=3, sources=("2001:db8::1",), source_count=1, sensors=("sgp-3",)),
    ]
    server.run(server.service.store.append([], [], incidents=made))

    def incident_ids(**params: Any) -> set[str]:
        got = httpx.get(f"{server.url}api/v1/incidents", params=params)
        assert got.status_code == 200, got.text
        return {i["id"] for i in got.json()["incidents"]}

    assert incident_ids(sensor="nyc-2") == {"a"}
    assert incident_ids(sensor=["nyc-2", "sgp-3"]) == {"a", "b"}
    assert incident_ids(src_ip="2001:db8::/32") == {"b"}
    assert incident_ids(kind=["vertical_scan", "epidemic"]) == {"b"}
    assert incident_ids(range="24h") == {"a"}
    assert incident_ids(country="CN") == {"a", "b"}  # an event-only dimension: said to be ignored
    assert httpx.get(f"{server.url}api/v1/incidents", params={"country": "CN"}).json()["ignored"] == ["country"]

    day_window = {"since": (now - timedelta(hours=24)).isoformat(), "until": now.isoformat()}
    feed = httpx.get(f"{server.url}api/v1/iocs", params={**day_window, "src_ip": "198.51.100.0/24"}
                     ).raise_for_status().json()
    day = [e for e in events if now - timedelta(hours=24) <= e.ts < now]
    expected = {e.src_ip for e in day if e.src_ip and e.src_ip.startswith("198.51.100.")}
    assert {row["ip"] for row in feed["attackers"]} == expected
    kinds = httpx.get(f"{server.url}api/v1/iocs", params={**day_window, "kind": "command", "sensor": "fra-1"}).json()
    assert {row["ip"] for row in kinds["attackers"]} == {e.src_ip for e in day if e.src_ip and e.kind == "command"
                                                     and e.sensor == "fra-1"}
    bundle = httpx.get(f"{server.url}api/v1/stix", params={**day_window, "src_ip": "203.0.113.0/24"}
                       ).raise_for_status().json()
    addresses = {o["value"] for o in bundle["objects"] if o["type"] in ("ipv4-addr", "ipv6-addr")}
    assert addresses == {"203.0.113.5"}


@pytest.mark.parametrize("route", ROUTES)
def test_bad_values_are_400s_that_say_why(server: RunningServer, route: str) -> None:
    now = datetime.now(UTC)
    for params, reason in (
        ({"src_ip": "198.51.100.0/33"}, "src_ip"),
        ({"src_ip": "not-an-address"}, "src_ip"),
        ({"kind": "login"} if route != "api/v1/incidents" else {"kind": "login_attempt"}, "kind"),
        ({"country": "CHN"}, "country"),
        ({"port": "70000"}, "port"),
        ({"port": "-1"}, "port"),
        ({"asn": "AS-x"}, "asn"),
        ({"outcome": "maybe"}, "outcome"),
        ({"sensor": ["s"] * 51}, "at most 50"),
        ({"range": "2d"}, "range"),
        ({"range": "24h", "since": now.isoformat()}, "range"),
        ({"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()}, "since must be before until"),
    ):
        got = httpx.get(f"{server.url}{route}", params=params)
        assert got.status_code == 400, (route, params, got.status_code)
        assert reason in got.text, (route, params, got.text)


def test_the_export_stops_at_its_cap_and_says_so(server: RunningServer) -> None:
    now = datetime.now(UTC)
    fill(server, now)
    window = {"since": (now - timedelta(hours=30)).isoformat(), "until": (now + timedelta(hours=1)).isoformat()}
    capped = httpx.get(f"{server.url}api/v1/events/export", params={**window, "limit": 25, "order": "asc"})
    body = json.loads(capped.content)
    assert capped.headers["x-honeyatlas-export-limit"] == "25"
    assert body["truncated"] is True and len(body["events"]) == 25 and body["limit"] == 25
    first = all_events(server, {**window, "order": "asc"}, limit=25)[:25]
    assert [e["id"] for e in body["events"]] == [e["id"] for e in first]
    as_csv = httpx.get(f"{server.url}api/v1/events/export", params={**window, "limit": 25, "format": "csv"}).text
    assert as_csv.splitlines()[-1] == "# truncated: more than 25 events match; narrow the view"
    assert len(as_csv.splitlines()) == 1 + 25 + 1
    assert httpx.get(f"{server.url}api/v1/events/export", params={"limit": 10**9}).status_code == 400
    spec = httpx.get(f"{server.url}api/v1/openapi.json").json()
    described = {p["name"] for p in spec["paths"]["/api/v1/events/export"]["get"]["parameters"]}
    assert {"since", "until", "range", "sensor", "honeypot", "kind", "outcome", "protocol", "port", "country",
            "asn", "src_ip", "format", "limit"} <= described
