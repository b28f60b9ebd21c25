"""The public view's redaction, the country of a position, and one encode per view in the hub."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from honeyatlas.enrichment.countries import CountryShapes
from honeyatlas.enrichment.geoip import BUNDLED_CENTROIDS, load_centroids
from honeyatlas.event import Event, Geo, Kind, Precision
from honeyatlas.incident import Incident, IncidentKind, IncidentStatus
from honeyatlas.metrics import Metrics
from honeyatlas.sinks.hub import LiveHub
from honeyatlas.transforms.redact import PublicView, network_of


def places() -> CountryShapes:
    return CountryShapes.load(centroids=load_centroids(BUNDLED_CENTROIDS))


def event(**fields: object) -> Event:
    now = datetime.now(UTC)
    base: dict[str, object] = dict(
        id="e1", ts=now, ingest_ts=now, sensor="syd-01", honeypot="cowrie", kind=Kind.LOGIN_ATTEMPT,
        src_ip="45.155.205.233", src_port=51234, dst_ip="10.1.2.3", dst_port=22, username="root",
        password="hunter2", command="uname -a", url="http://x/y", user_agent="curl/8", client_version="SSH-2.0-Go",
        session="abc", raw='{"secret": 1}', src_geo=Geo(country="RU", lat=55.7, lon=37.6, precision=Precision.CITY),
        dst_geo=Geo(lat=-33.87, lon=151.21, precision=Precision.SENSOR),
    )
    base.update(fields)
    return Event(**base)  # type: ignore[arg-type]


def test_networks_cut_addresses_and_drop_what_is_not_one() -> None:
    assert network_of("45.155.205.233") == "45.155.205.0/24"
    assert network_of("2001:db8:1:2::5") == "2001:db8:1::/48"
    assert network_of("<script>") == ""


def test_public_event_keeps_the_map_and_drops_the_rest() -> None:
    view = PublicView(places, {})
    public = view.event(event())
    assert public.src_ip == "45.155.205.0/24" and public.src_geo is not None and public.src_geo.country == "RU"
    assert public.sensor == "AU" and public.dst_geo is not None
    assert public.dst_geo.precision is Precision.COUNTRY and public.dst_geo.country == "AU"
    assert (public.dst_geo.lat, public.dst_geo.lon) != (-33.87, 151.21)  # the country's point, not the sensor's
    for hidden in ("username", "password", "command", "url", "user_agent", "client_version", "dst_ip", "session",
                   "raw", "src_port", "honeypot"):
        assert not getattr(public, hidden), hidden
    assert public.kind is Kind.LOGIN_ATTEMPT and public.dst_port == 22


def test_an_alias_replaces_the_country() -> None:
    assert PublicView(places, {"syd-01": "Oceania 1"}).event(event()).sensor == "Oceania 1"


def test_positions_fall_in_their_country_even_on_the_coast() -> None:
    table = places()
    cities = {(-33.87, 151.21): "AU", (50.11, 8.68): "DE", (49.28, -123.12): "CA", (40.71, -74.0): "US",
              (1.29, 103.85): "SG", (35.9, 14.51): "MT", (-23.55, -46.63): "BR", (60.17, 24.94): "FI"}
    assert {point: table.country_at(*point) for point in cities} == cities


def test_public_incident_keeps_kind_and_size_only() -> None:
    now = datetime.now(UTC)
    incident = Incident(id="inc_1", kind=IncidentKind.CAMPAIGN, key="root:hunter2|admin:admin", status=IncidentStatus.OPEN,
                        opened_at=now, last_seen=now, window_seconds=60, summary="campaign on root:hunter2",
                        event_count=30, sources=("45.155.205.233",), source_count=9, sensors=("syd-01", "fra-01"))
    public = PublicView(places, {}).incident(incident)
    text = json.dumps(public.summary) + public.key + "".join(public.sources) + "".join(public.sensors)
    assert "hunter2" not in text and "45.155" not in text and "syd-01" not in text
    assert public.kind is IncidentKind.CAMPAIGN and public.source_count == 9 and public.event_count == 30
    assert not public.keys and public.fingerprint is None and not public.timeline


def test_hub_encodes_each_frame_once_per_view() -> None:
    async def run() -> None:
        hub = LiveHub(frame_interval_seconds=60, client_queue_events=1000, snapshot_events=10, heartbeat_seconds=60,
                      max_clients=10, metrics=Metrics(), views={"public": PublicView(places, {})})
        clients = [hub.connect("full") for _ in range(3)] + [hub.connect("public") for _ in range(2)]
        hub.publish([event()])
        hub.flush()
        frames = [(await c.next_messages())[0] for c, _ in clients if c is not None]  # type: ignore[union-attr]
        assert frames[0] is frames[1] is frames[2]  # one encode for the full view...
        assert frames[3] is frames[4]  # ...and one for the public view
        assert "hunter2" in frames[0] and "hunter2" not in frames[3] and "45.155.205.0/24" in frames[3]
        _, snapshot = hub.connect("public")  # type: ignore[misc]
        assert "hunter2" not in snapshot and "45.155.205.0/24" in snapshot

    asyncio.run(run())
