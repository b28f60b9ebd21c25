"""schemathesis against the served OpenAPI document, on a real server, with credentials: no
case may answer 5xx or go unanswered, and every refusal (4xx) says why in its body.

The short run (a few hundred cases per backend, every operation, valid and invalid inputs)
is part of the normal suite. The long run (at least 100,000 cases) is marked `fuzz` and left
out of it (pyproject.toml's addopts): `pytest -m fuzz tests/test_fuzz.py`, or the benchmark
`python -m benchmarks.run --only fuzz`; its count and result are in docs/reliability.md.

Credentials come from one fixture, `fuzz_credentials`: headers by path prefix (the longest
matching prefix wins). When a route gains an audience or a new kind of credential, add it
there, and every fuzz run sends it.
"""

from __future__ import annotations

import httpx
import pytest
from benchmarks.fuzz import Credentials, fuzz

from tests.conftest import RunningServer

SHORT_CASES = 200
LONG_CASES = 100_000


@pytest.fixture
def fuzz_credentials(server: RunningServer) -> Credentials:
    """Who the fuzzer is on each route: a sensor's token on the ingest routes, the test
    reader's token everywhere else."""
    sensor_token = server.add_sensor("fuzz-1")
    return (Credentials()
            .add("/", server.auth)
            .add("/api/v1/ingest/", {"Authorization": f"Bearer {sensor_token}"}))


def test_short_fuzz_run_no_server_error_and_every_refusal_says_why(server: RunningServer,
                                                                   fuzz_credentials: Credentials) -> None:
    # The time bound only guards against a hang; the first round covers every operation.
    report = fuzz(server.url, fuzz_credentials, cases=SHORT_CASES, max_seconds=90)
    assert not report.failures, "\n".join(report.failures)
    assert len(report.per_operation) == report.operations > 10, report.per_operation
    assert report.statuses[200] > 0 and report.statuses[400] > 0, report.statuses  # valid and invalid inputs


def test_the_document_describes_the_api_not_the_routes_that_serve_it(server: RunningServer) -> None:
    """Found by the fuzzer: the document listed its own routes, and `/api/v1/{path}` answers
    anything but a known renderer with an HTML 404 that gives no reason."""
    paths = httpx.get(server.url + "api/v1/openapi.json", timeout=30).json()["paths"]
    assert "/api/v1/{path}" not in paths and "/api/v1" not in paths and "/api/v1/openapi.json" not in paths
    assert "/api/v1/stats/summary" in paths


def test_a_nul_character_in_the_path_or_query_is_refused_with_a_reason(server: RunningServer) -> None:
    """Found sending the fuzzer's NUL strings to PostgreSQL (its text cannot hold NUL: the read
    failed, a 5xx). No stored value holds one (adapters strip control characters), so both
    backends refuse."""
    for path in ("api/v1/events?sensor=%00", "api/v1/events?src_ip=198.51.100.7%00", "api/v1/incidents/%00",
                 "api/v1/incidents/x%00y/stix", "api/v1/stats/summary?x%00=1"):
        answer = httpx.get(server.url + path, timeout=30)
        assert answer.status_code == 400, (path, answer.text)
        assert "NUL character" in answer.json()["detail"], path
    assert httpx.get(server.url + "api/v1/events?sensor=x", timeout=30).status_code == 200


@pytest.mark.fuzz
def test_long_fuzz_run(server: RunningServer, fuzz_credentials: Credentials) -> None:
    report = fuzz(server.url, fuzz_credentials, cases=LONG_CASES)
    print(report.as_dict())
    assert not report.failures, "\n".join(report.failures)
    assert report.cases >= LONG_CASES
