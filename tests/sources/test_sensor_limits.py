"""Per-sensor limits on HTTP ingest: the formats a sensor may name, and its events a second.

Real server, real registry; the refusals say what to do and are counted per sensor."""

from __future__ import annotations

from pathlib import Path

import httpx

from honeyatlas.enrichment.sensors import SensorSettings
from tests.conftest import RunningServer, start_server
from tests.test_ingest_http import cowrie_records_with_public_sources, ndjson

DIONAEA = b'{"timestamp": "2026-11-27T22:00:00.000000", "src_ip": "45.155.205.233", "src_port": 4444, ' \
          b'"dst_ip": "10.0.0.2", "dst_port": 445, "transport": "tcp", "protocol": "smbd", "connection": {}}'


def post(server: RunningServer, token: str, fmt: str, body: bytes) -> httpx.Response:
    return httpx.post(f"{server.url}api/v1/ingest/{fmt}", content=body, headers={"Authorization": f"Bearer {token}"},
                      timeout=60)


def test_a_sensor_names_only_its_own_formats_unless_given_others(server: RunningServer) -> None:
    token = server.add_sensor("cow-01")  # a cowrie sensor
    cowrie = ndjson(cowrie_records_with_public_sources()[:3])
    assert post(server, token, "cowrie", cowrie).status_code == 200
    assert post(server, token, "auto", cowrie).status_code == 200
    refused = post(server, token, "dionaea", DIONAEA)
    assert refused.status_code == 403
    assert "may not send format 'dionaea'" in refused.json()["error"] and "--formats" in refused.json()["error"]
    assert server.service.metrics.total("honeyatlas_requests_refused_total", reason="format_not_allowed") == 1
    server.service.registry.configure("cow-01", SensorSettings(formats=("dionaea",)))  # `sensor set --formats`
    assert post(server, token, "dionaea", DIONAEA).status_code == 200
    assert post(server, token, "auto", cowrie).status_code == 403  # an explicit list without auto


def test_a_sensor_over_its_rate_gets_429_with_retry_after_and_others_do_not(tmp_path: Path) -> None:
    server, stop = start_server(tmp_path / "data", ingest={"sensor_events_per_second": 0.5, "sensor_burst_events": 5})
    try:
        loud, quiet = server.add_sensor("loud-01"), server.add_sensor("quiet-01")
        records = cowrie_records_with_public_sources()
        assert post(server, loud, "cowrie", ndjson(records[:5])).status_code == 200  # the burst
        over = post(server, loud, "cowrie", ndjson(records[5:7]))
        assert over.status_code == 429 and int(over.headers["retry-after"]) >= 1
        assert "over its rate of 0.5 events/s" in over.json()["error"]
        assert post(server, quiet, "cowrie", ndjson(records[:3])).status_code == 200  # a bucket each
        metrics = server.service.metrics
        assert metrics.total("honeyatlas_sensor_rate_limited_total", sensor="loud-01") == 1
        assert metrics.total("honeyatlas_sensor_rate_limited_total", sensor="quiet-01") == 0
        server.service.registry.configure("loud-01", SensorSettings(rate_per_second=1000.0))  # its own rate
        assert post(server, loud, "cowrie", ndjson(records[5:7])).status_code == 200
    finally:
        stop()
