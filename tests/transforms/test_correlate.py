"""Correlation detectors: thresholds, growth, closing on event time, replay invariance, bounds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import msgspec

from honeyatlas.config import CorrelationConfig
from honeyatlas.event import Event, Geo, Kind, Outcome, Precision, new_event_id
from honeyatlas.incident import Fingerprint, Incident, IncidentKind, IncidentStatus
from honeyatlas.transforms.correlate import Correlator

T0 = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def ev(src: str, sensor: str, seconds: float, port: int | None = 22, **fields: object) -> Event:
    ts = T0 + timedelta(seconds=seconds)
    fields.setdefault("kind", Kind.CONNECTION)
    return Event(id=new_event_id(), ts=ts, ingest_ts=ts, sensor=sensor, honeypot="cowrie", src_ip=src,
                 dst_port=port, **fields)  # type: ignore[arg-type]


def correlator(**options: object) -> Correlator:
    return Correlator(msgspec.structs.replace(CorrelationConfig(), **options))


def latest(found: list[Incident]) -> dict[str, Incident]:
    return {incident.id: incident for incident in found}


def of_kind(found: list[Incident], kind: IncidentKind) -> list[Incident]:
    return [incident for incident in found if incident.kind is kind]


def test_multi_sensor_opens_at_the_kth_sensor_grows_and_closes_on_event_time() -> None:
    c = correlator()
    assert c.observe([ev("8.8.8.8", "a", 0), ev("8.8.8.8", "a", 10), ev("8.8.8.8", "b", 20)]) == []
    [opened] = c.observe([ev("8.8.8.8", "c", 30)])
    assert opened.kind is IncidentKind.MULTI_SENSOR and opened.status is IncidentStatus.OPEN
    assert opened.key == "8.8.8.8" and opened.sensors == ("a", "b", "c")
    assert opened.opened_at == T0 + timedelta(seconds=30)  # event time of the k-th hit
    assert [step.sensor for step in opened.timeline] == ["a", "b", "c"]
    assert opened.timeline[0].ts == T0 and opened.event_count == 4
    [grown] = c.observe([ev("8.8.8.8", "d", 40)])
    assert grown.id == opened.id and grown.sensors == ("a", "b", "c", "d") and grown.event_count == 5
    # 10 minutes of event time without the source: another source's event closes it
    [closed] = c.observe([ev("9.9.9.9", "a", 40 + 601)])
    assert closed.id == opened.id and closed.status is IncidentStatus.CLOSED
    assert c.open_incidents == 0
    # a later burst is a new incident with a new id
    later = c.observe([ev("8.8.8.8", s, 2000 + i) for i, s in enumerate("xyz")])
    assert len(later) == 1 and later[0].id != opened.id


def test_hits_spread_wider_than_the_window_give_nothing() -> None:
    c = correlator()
    assert c.observe([ev("8.8.8.8", s, i * 400) for i, s in enumerate("abcdef")]) == []


def test_group_by_prefix_and_asn() -> None:
    c = correlator(multi_sensor_group_by="prefix")
    found = c.observe([ev(f"198.51.100.{i}", s, i) for i, s in enumerate("abc", start=1)])
    assert [(i.key, i.source_count) for i in found] == [("198.51.100.0/24", 3)]
    geo = Geo(asn=64500, precision=Precision.COUNTRY, country="NL")
    c = correlator(multi_sensor_group_by="asn")
    found = c.observe([ev(f"192.0.2.{i}", s, i, src_geo=geo) for i, s in enumerate("abc", start=1)])
    assert [(i.key, i.sources) for i in found] == [("AS64500", ("192.0.2.1", "192.0.2.2", "192.0.2.3"))]


def test_vertical_and_horizontal_scans_are_told_apart() -> None:
    c = correlator()
    vertical = of_kind(c.observe([ev("1.1.1.1", "a", i, port=1000 + i) for i in range(12)]),
                       IncidentKind.VERTICAL_SCAN)
    assert len(vertical) == 1 and vertical[0].ports == tuple(range(1000, 1012))
    assert vertical[0].opened_at == T0 + timedelta(seconds=9)  # the 10th port
    c = correlator()
    found = c.observe([ev("1.1.1.1", f"s{i}", i, port=23) for i in range(6)])
    horizontal = of_kind(found, IncidentKind.HORIZONTAL_SCAN)
    assert not of_kind(found, IncidentKind.VERTICAL_SCAN)
    assert len(horizontal) == 1 and horizontal[0].ports == (23,) and len(horizontal[0].sensors) == 6
    assert horizontal[0].opened_at == T0 + timedelta(seconds=4)  # the 5th sensor
    assert of_kind(found, IncidentKind.MULTI_SENSOR)  # it is also one source on many sensors


def login(src: str, sensor: str, seconds: float, username: str, password: str) -> Event:
    return ev(src, sensor, seconds, kind=Kind.LOGIN_ATTEMPT, outcome=Outcome.FAILURE, username=username,
              password=password, session=f"{src}-{sensor}")


def test_campaign_on_a_shared_credential_list_in_any_order() -> None:
    c = correlator()
    creds = [("root", "Zx9!kq"), ("admin", "hunter2x"), ("ubnt", "ubnt77")]
    events = []
    for n in range(6):
        order = creds[n % 3:] + creds[: n % 3]
        events += [login(f"203.0.{n}.7", f"s{n % 2}", n * 60 + i, u, p) for i, (u, p) in enumerate(order)]
    [campaign] = of_kind(c.observe(events), IncidentKind.CAMPAIGN)
    assert campaign.fingerprint is Fingerprint.CREDENTIALS
    assert campaign.key == "admin/hunter2x, root/Zx9!kq, ubnt/ubnt77"
    assert campaign.source_count == 6 and campaign.sources[0] == "203.0.0.7"
    assert campaign.opened_at == T0 + timedelta(seconds=4 * 60 + 2)  # third credential of the 5th source
    assert campaign.summary.startswith("6 sources shared one credentials, rare on the background (0 other sources")
    [key] = campaign.keys
    assert (key.fingerprint, key.value, key.sources, key.background, key.strong) == (
        Fingerprint.CREDENTIALS, campaign.key, 5, 0.0, True)


def test_campaign_on_commands_download_host_and_banner() -> None:
    c = correlator()
    events = []
    for n in range(5):
        src, sensor = f"100.64.{n}.1", f"s{n}"
        events += [ev(src, sensor, n * 10 + i, kind=Kind.COMMAND, command=cmd, session=f"x{n}")
                   for i, cmd in enumerate(["cd /tmp", "uname  -a", "cat /proc/cpuinfo"])]
        events.append(ev(src, sensor, n * 10 + 5, kind=Kind.FILE_DOWNLOAD, url=f"http://evil.example:8080/b{n}.sh"))
        events.append(ev(src, sensor, n * 10 + 6, client_version="SSH-2.0-zbot_1.2"))
        events.append(ev(src, sensor, n * 10 + 7, client_version=f"SSH-2.0-OpenSSH_9.{n}"))
    found = {i.fingerprint: i for i in of_kind(c.observe(events), IncidentKind.CAMPAIGN)}
    assert found[Fingerprint.COMMANDS].key == "cd /tmp ; uname -a ; cat /proc/cpuinfo"
    assert found[Fingerprint.DOWNLOAD_HOST].key == "evil.example"
    assert found[Fingerprint.CLIENT_VERSION].key == "SSH-2.0-zbot_1.2"
    assert set(found) == {Fingerprint.COMMANDS, Fingerprint.DOWNLOAD_HOST, Fingerprint.CLIENT_VERSION}


def test_campaign_needs_min_sources_within_the_window() -> None:
    c = correlator()
    events = [ev(f"100.64.{n}.1", "s", n * 1000, client_version="SSH-2.0-rare") for n in range(8)]
    assert c.observe(events) == []  # 8 sources, but never 5 within an hour


def test_epidemic_records_spread_order_sources_and_doubling_time() -> None:
    c = correlator()
    digest = "ab" * 32
    order = ["s3", "s1", "s4", "s1", "s2", "s5", "s6"]
    events = [ev(f"45.0.0.{i}", sensor, 3600 * i * (i + 1) / 2, kind=Kind.FILE_DOWNLOAD, sha256=digest)
              for i, sensor in enumerate(order)]
    found = latest(of_kind(c.observe(events), IncidentKind.EPIDEMIC))
    [epidemic] = found.values()
    assert epidemic.key == digest and epidemic.sensors == ("s3", "s1", "s4", "s2", "s5", "s6")
    assert [s.sensor for s in epidemic.timeline] == ["s3", "s1", "s4", "s2", "s5", "s6"]
    assert epidemic.timeline[0].source == "45.0.0.0"
    assert epidemic.sources_per_sensor == {"s3": 1, "s1": 2, "s4": 1, "s2": 1, "s5": 1, "s6": 1}
    assert epidemic.opened_at == events[2].ts and epidemic.event_count == 7
    assert epidemic.doubling_seconds is not None and epidemic.doubling_seconds > 0


def random_trace(seed: int, count: int) -> list[Event]:
    rng = random.Random(seed)
    sources = [f"198.18.{i // 256}.{i % 256}" for i in range(60)]
    digests = [f"{i:064x}" for i in range(4)]
    events = []
    for n in range(count):
        src, sensor = rng.choice(sources), f"s{rng.randrange(8)}"
        roll = rng.random()
        fields: dict[str, object] = {}
        if roll < 0.2:
            fields = {"kind": Kind.LOGIN_ATTEMPT, "username": "root", "password": rng.choice("abcdef"),
                      "session": f"{src}{sensor}"}
        elif roll < 0.3:
            fields = {"kind": Kind.FILE_DOWNLOAD, "sha256": rng.choice(digests), "url": "http://h.example/x"}
        elif roll < 0.4:
            fields = {"client_version": rng.choice(["SSH-2.0-Go", "SSH-2.0-libssh_0.9"])}
        events.append(ev(src, sensor, n * 0.4, port=rng.choice([22, 23, 80, 2222, 8080, rng.randrange(65536)]),
                         **fields))
    return events


def history(c: Correlator, batches: list[list[Event]]) -> list[bytes]:
    return [msgspec.json.encode(incident) for batch in batches for incident in c.observe(batch)]


def final_states(c: Correlator, batches: list[list[Event]]) -> dict[str, Incident]:
    return latest([incident for batch in batches for incident in c.observe(batch)])


def test_same_incidents_at_once_or_in_small_batches() -> None:
    events = random_trace(7, 4000)
    at_once = final_states(correlator(), [events])
    rng = random.Random(1)
    batches, i = [], 0
    while i < len(events):
        size = rng.randint(1, 40)
        batches.append(events[i : i + size])
        i += size
    assert final_states(correlator(), batches) == at_once
    assert len({i.kind for i in at_once.values()}) >= 4  # the trace exercises most detectors


def test_state_stays_bounded_with_many_distinct_sources() -> None:
    c = correlator(max_sources=1000, max_sessions=500, max_fingerprints=300)
    for block in range(20):
        c.observe([
            ev(f"10.{block}.{i // 256}.{i % 256}", f"s{i % 3}", block * 100 + i / 1000, port=i % 50,
               kind=Kind.LOGIN_ATTEMPT, username=f"u{i}", password="p", session=f"{block}-{i}",
               client_version=f"SSH-2.0-bot{i}")
            for i in range(5000)
        ])
    # campaign: sessions and sources' keys (max_sessions each), fingerprints and parts (max_fingerprints each)
    bounds = {"multi_sensor": 1000, "scan": 1000, "campaign": 2 * 500 + 2 * 300, "epidemic": 20_000}
    for name, detector in c.detectors.items():
        assert detector.tracked <= bounds[name], name
    assert c.detectors["multi_sensor"].evictions >= 99_000 - 1000
    assert c.detectors["campaign"].evictions > 0


def test_a_sensor_clock_in_the_future_cannot_close_everything() -> None:
    c = correlator()
    assert len(c.observe([ev("8.8.8.8", s, i) for i, s in enumerate("abc")])) == 1
    far = T0 + timedelta(days=365)
    liar = Event(id=new_event_id(), ts=far, ingest_ts=T0 + timedelta(seconds=5), sensor="z", honeypot="x",
                 kind=Kind.CONNECTION, src_ip="7.7.7.7")
    assert c.observe([liar]) == []  # watermark held to arrival + 5 minutes: the incident stays open
    assert c.open_incidents == 1


def test_rebuild_after_restart_reproduces_ids_and_closes_what_it_cannot() -> None:
    events = random_trace(11, 3000)
    before = final_states(correlator(), [events])
    fresh = correlator()
    lost = msgspec.structs.replace(next(iter(before.values())), id="inc_lost", status=IncidentStatus.OPEN)
    rebuilt = latest(fresh.rebuild(events, [lost]))
    assert {k: v for k, v in rebuilt.items() if k != "inc_lost"} == before
    assert rebuilt["inc_lost"].status is IncidentStatus.CLOSED
