"""Date query parameters at the ends of the calendar, on every route that takes one: each
answers 400 with a reason or a valid (possibly empty) result, never a 500 (web/params.py)."""

from __future__ import annotations

import base64
import itertools

import httpx
import pytest

from tests.conftest import RunningServer
from tests.test_ingest_http import cowrie_records_with_public_sources, ndjson, post

# Every route with a date parameter (those of web/params.py's view_filter), and extra
# parameters that make it do the most date arithmetic.
DATED_ROUTES = {
    "/api/v1/events": {},
    "/api/v1/events/export": {"format": "csv"},
    "/api/v1/stats/summary": {"kind": "login_attempt"},  # the per-minute rollups' path
    "/api/v1/incidents": {},
    "/api/v1/stats/histogram": {"bucket_seconds": 366 * 86400, "by_kind": "true"},
    "/api/v1/iocs": {"format": "csv"},
    "/api/v1/stix": {},
}
DATE_PARAMETERS = ("since", "until")
EDGES = (
    "0001-01-01T00:00:00+01:00",  # no UTC form: an hour before the calendar starts
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59-05:00",  # no UTC form: five hours after the calendar ends
    "9999-12-31T23:59:59.999999Z",
)


def assert_answered(response: httpx.Response) -> None:
    assert response.status_code in (200, 400), (response.request.url, response.status_code, response.text)
    if response.status_code == 400:
        assert response.json()["detail"], response.text  # with a reason


@pytest.mark.parametrize("route", DATED_ROUTES)
def test_dates_at_the_ends_of_the_calendar_are_answered(server: RunningServer, route: str) -> None:
    token = server.add_sensor("s1")
    assert post(server, token, ndjson(cowrie_records_with_public_sources(recent=True)[:5])).status_code == 200
    extra = DATED_ROUTES[route]
    for name, value in itertools.product(DATE_PARAMETERS, EDGES):
        assert_answered(httpx.get(f"{server.url}{route.lstrip('/')}", params={**extra, name: value}))
    for since, until in itertools.product(EDGES, EDGES):
        assert_answered(httpx.get(f"{server.url}{route.lstrip('/')}", params={**extra, "since": since, "until": until}))


def test_event_dates_before_or_after_the_calendar_mean_everything_or_nothing(server: RunningServer) -> None:
    token = server.add_sensor("s1")
    assert post(server, token, ndjson(cowrie_records_with_public_sources(recent=True)[:5])).status_code == 200

    def events(**params: str) -> list[dict]:
        response = httpx.get(f"{server.url}api/v1/events", params=params)
        assert response.status_code == 200, response.text
        return response.json()["events"]

    assert len(events(since="0001-01-01T00:00:00+01:00")) == 5
    assert len(events(until="9999-12-31T23:59:59-05:00")) == 5
    assert events(until="0001-01-01T00:00:00+01:00") == []
    assert events(since="9999-12-31T23:59:59-05:00") == []
    forged = base64.urlsafe_b64encode(b"0001-01-01T00:00:00+01:00|x").decode()
    assert httpx.get(f"{server.url}api/v1/events", params={"cursor": forged}).status_code == 400


@pytest.mark.parametrize("backend", ["duckdb"], indirect=True)  # the OpenAPI document is the same on both
def test_every_date_parameter_is_in_the_edge_test(server: RunningServer) -> None:
    spec = httpx.get(f"{server.url}api/v1/openapi.json").json()
    dated = {(path, parameter["name"]) for path, operations in spec["paths"].items()
             for operation in operations.values() for parameter in operation.get("parameters", [])
             if "date-time" in str(parameter.get("schema"))}
    assert dated == set(itertools.product(DATED_ROUTES, DATE_PARAMETERS))
