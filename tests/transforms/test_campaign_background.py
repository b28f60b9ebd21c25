"""Campaign keys that carry information (issue 15): background fingerprints and fingerprints
made only of common parts open nothing, in one Correlator and split across workers; on the
realistic simulated background every planted campaign opens and no library banner or
dictionary credential set does; known research scanners open no multi-sensor or campaign
incident."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from honeyatlas.adapters import RecordContext, load_adapters
from honeyatlas.config import CorrelationConfig
from honeyatlas.errors import ConfigError
from honeyatlas.event import Event, Kind
from honeyatlas.incident import Fingerprint, Incident, IncidentKind, download_key
from honeyatlas.sources import simulate
from honeyatlas.sources.simulate import world
from honeyatlas.transforms.correlate import Correlator, Hit
from honeyatlas.transforms.correlate.campaigns import WARMUP_CONFIDENCE
from honeyatlas.transforms.correlate.stages import KeyedStage, SourceStage
from tests.transforms.test_correlate import T0, ev, of_kind
from tests.transforms.test_stages import split_run, workers_of

Realistic = tuple[simulate.Truth, list[Incident], datetime]  # truth, final incidents, end of the warm-up
DICTIONARY = [("root", "root"), ("admin", "admin"), ("root", "123456"), ("pi", "raspberry")]


def logins(src: str, at: float, pairs: list[tuple[str, str]]) -> list[Event]:
    return [ev(src, "s1", at + i, kind=Kind.LOGIN_ATTEMPT, username=u, password=p, session=f"{src}-{at}")
            for i, (u, p) in enumerate(pairs)]


def dictionary_background() -> list[Event]:
    """20 unrelated bots try two pairs each (no list yet), one a minute: each pair is then
    used by 10 sources, common."""
    return [e for n in range(20) for e in logins(f"198.51.100.{n}", n * 60, [DICTIONARY[n % 4], DICTIONARY[(n + 1) % 4]])]


def test_a_credential_list_of_common_pairs_opens_nothing_one_with_a_rare_pair_does() -> None:
    c = Correlator(CorrelationConfig())
    events = dictionary_background()
    events += [e for n in range(6) for e in logins(f"203.0.113.{n}", 1300 + n * 30, DICTIONARY[:3])]
    events += [e for n in range(6) for e in logins(f"192.0.2.{n}", 1300 + n * 30, [*DICTIONARY[:2], ("root", "k7#Qa")])]
    [campaign] = of_kind(c.observe(events), IncidentKind.CAMPAIGN)
    assert campaign.key == "admin/admin, root/k7#Qa, root/root"
    assert campaign.sources[0] == "192.0.2.0"


def download(src: str, sensor: str, at: float, host: str) -> Event:
    return ev(src, sensor, at, kind=Kind.FILE_DOWNLOAD, url=f"http://{host}/x.sh")


def test_a_fingerprint_that_trickled_in_before_its_window_is_background() -> None:
    c = Correlator(CorrelationConfig(campaign_warmup_seconds=0))
    # one source every 20 minutes (never 5 within the hour), then a burst of 6
    trickle = [download(f"198.51.100.{n}", "s1", n * 1200, "files.example") for n in range(6)]
    burst = [download(f"203.0.113.{n}", "s2", 9000 + n * 10, "files.example") for n in range(6)]
    fresh = [download(f"192.0.2.{n}", "s3", 9000 + n * 10, "zbot.example") for n in range(6)]
    found = of_kind(c.observe([*trickle, *sorted(burst + fresh, key=lambda e: e.ts)]), IncidentKind.CAMPAIGN)
    assert {i.key for i in found} == {"zbot.example"}
    assert c.detectors["campaign"].background_refusals >= 1  # type: ignore[attr-defined]
    [latest] = found[-1:]
    assert latest.keys[0].background == 0 and latest.keys[0].strong and latest.confidence == 0.7


def test_a_weak_key_opens_only_with_a_second_key_its_sources_share() -> None:
    """Six sources with one unknown banner open nothing; six with a banner and one same
    command sequence open both (each is the other's second key), with the keys listed."""
    c = Correlator(CorrelationConfig(campaign_warmup_seconds=0))
    alone = [ev(f"198.51.100.{n}", "s1", n * 30, client_version="SSH-2.0-zbot_1.2") for n in range(6)]
    assert not of_kind(c.observe(alone), IncidentKind.CAMPAIGN)
    assert c.detectors["campaign"].weak_refusals >= 1  # type: ignore[attr-defined]
    tool = ["/bin/busybox ZXQ", "cd /tmp", "./zxq"]
    both: list[Event] = []
    for n in range(6):
        src, at = f"203.0.113.{n}", 600 + n * 30
        both.append(ev(src, "s2", at, client_version="SSH-2.0-qbot_7.1", session=f"q{n}"))
        both += [ev(src, "s2", at + 1 + i, kind=Kind.COMMAND, command=text, session=f"q{n}") for i, text in enumerate(tool)]
    found = {i.key: i for i in of_kind(c.observe(both), IncidentKind.CAMPAIGN)}
    assert set(found) == {"SSH-2.0-qbot_7.1", "/bin/busybox ZXQ ; cd /tmp ; ./zxq"}
    banner = found["SSH-2.0-qbot_7.1"]
    assert banner.opened_at == T0 + timedelta(seconds=600 + 4 * 30 + 3)  # the fifth source's third command
    assert [(str(k.fingerprint), k.sources, k.background, k.strong) for k in banner.keys] == [
        ("client_version", 5, 0.0, False), ("commands", 5, 0.0, False)]
    assert banner.confidence == 0.64 and "also shared: commands" in banner.summary


MIRAI = [("root", "xc3511"), ("root", "vizxv"), ("admin", "admin")]


def test_a_known_bot_dictionary_list_opens_nothing_from_the_first_minute() -> None:
    """Six unrelated bots try a Mirai-family list within five minutes of a fresh start:
    nothing has been learned yet, but its pairs are in the shipped list. Without that list
    the same burst opens a (warm-up) campaign; an operator's own pairs count like it."""
    burst = [e for n in range(6) for e in logins(f"203.0.113.{n}", n * 40, MIRAI)]
    assert not of_kind(Correlator(CorrelationConfig()).observe(burst), IncidentKind.CAMPAIGN)
    [learning] = of_kind(Correlator(CorrelationConfig(campaign_builtin_credentials=False)).observe(burst),
                         IncidentKind.CAMPAIGN)
    assert learning.confidence == WARMUP_CONFIDENCE
    own = [("sysadm", "Gr8wall"), ("sysadm", "Gr8wall!"), ("sysadm", "sysadm")]
    theirs = [e for n in range(6) for e in logins(f"192.0.2.{n}", n * 40, own)]
    assert of_kind(Correlator(CorrelationConfig()).observe(theirs), IncidentKind.CAMPAIGN)
    told = CorrelationConfig(campaign_common_credentials=["sysadm/Gr8wall", "sysadm/Gr8wall!", " sysadm / sysadm "])
    assert not of_kind(Correlator(told).observe(theirs), IncidentKind.CAMPAIGN)


def test_a_public_file_host_is_keyed_by_its_owner() -> None:
    """Unrelated bots each fetching their own file from GitHub share the host and nothing
    else; a campaign's members fetching different files of one repository share its owner
    part, and that opens, from the first minute."""
    c = Correlator(CorrelationConfig())
    unrelated = [ev(f"198.51.100.{n}", "s1", n * 20, kind=Kind.FILE_DOWNLOAD,
                    url=f"https://raw.githubusercontent.com/user{n}/dots/main/setup.sh") for n in range(8)]
    repo = [ev(f"203.0.113.{n}", f"s{n}", 200 + n * 20, kind=Kind.FILE_DOWNLOAD,
               url=f"https://raw.githubusercontent.com/k1ller/bins/main/{arch}") for n, arch in
            enumerate(["x86", "arm7", "mips", "x86", "arm7", "mips"])]
    [campaign] = of_kind(c.observe(unrelated + repo), IncidentKind.CAMPAIGN)
    assert (campaign.key, str(campaign.fingerprint)) == ("raw.githubusercontent.com/k1ller/bins", "download_host")
    assert campaign.sources[0] == "203.0.113.0"


@pytest.mark.parametrize(("url", "key"), [
    ("http://45.95.147.10/bins/x86", "45.95.147.10"),
    ("http://CDN.Evil.example:8080/a.sh", "cdn.evil.example"),
    ("https://github.com/k1ller/bins/raw/main/x86", "github.com/k1ller/bins"),
    ("https://gist.githubusercontent.com/k1ller/0a1b/raw/x.sh", "gist.githubusercontent.com/k1ller/0a1b"),
    ("https://pastebin.com/raw/Zq81xT", "pastebin.com/raw/Zq81xT"),
    ("https://drive.google.com/uc?export=download&id=1AbC", "drive.google.com/uc?export=download&id=1AbC"),
    ("https://files.catbox.moe/q0x1.sh", "files.catbox.moe/q0x1.sh"),
    ("https://notgithub.com/x/y/z", "notgithub.com"),
    ("https://pastebin.com/", None),
    ("not a url", None),
    ("http://[::1/x", None),
])
def test_download_key(url: str, key: str | None) -> None:
    assert download_key(url, tuple(CorrelationConfig().campaign_shared_hosts)) == key


def test_a_campaign_while_the_background_is_unknown_has_low_confidence() -> None:
    c = Correlator(CorrelationConfig())  # warm-up: one hour from the first key
    early = [download(f"203.0.113.{n}", "s1", n * 30, "early.example") for n in range(5)]
    late = [download(f"192.0.2.{n}", "s2", 3600 + n * 30, "late.example") for n in range(5)]
    found = {i.key: i for i in of_kind(c.observe(early + late), IncidentKind.CAMPAIGN)}
    assert found["early.example"].confidence == WARMUP_CONFIDENCE
    assert "still being learned" in found["early.example"].summary
    assert found["late.example"].confidence == 0.7


def test_the_source_stage_carries_common_in_the_hit() -> None:
    settings = CorrelationConfig()
    source, keyed = SourceStage(settings, route=lambda _: 0), KeyedStage(settings)
    events = dictionary_background() + [e for n in range(6) for e in logins(f"203.0.113.{n}", 1300 + n * 30, DICTIONARY[:3])]
    source.observe(events)
    items = source.take()
    hits = [hit for _, _, hit in items if hit is not None and hit.value == "admin/admin, root/123456, root/root"]
    assert hits and all(hit.common for hit in hits[-6:])
    assert Hit("credentials", "x", True) == Hit("credentials", "x", True)
    assert not of_kind(keyed.observe([(e, h) for _, e, h in items]), IncidentKind.CAMPAIGN)


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> Realistic:
    out: Path = tmp_path_factory.mktemp("realistic")
    options = simulate.SimulationOptions(scenario="realistic", rate_events_per_second=1.0)
    plan = simulate.plan_simulation(options, CorrelationConfig())
    truth = simulate.write_simulation(plan, out)
    adapter = load_adapters()["event"]
    received = datetime.now(UTC)
    events: list[Event] = []
    for line in (out / "trace.jsonl").read_text().splitlines():
        item = json.loads(line)
        ctx = RecordContext(sensor=item["sensor"], honeypot="tpot", received=received, timezone=UTC, raw=line)
        events += adapter.adapt(item["record"], ctx)
    latest = {i.id: i for i in Correlator(CorrelationConfig()).observe(events)}
    return truth, list(latest.values()), truth.start + timedelta(seconds=plan.scenario.warmup_seconds)


def test_every_planted_campaign_opens_on_the_realistic_background(realistic: Realistic) -> None:
    truth, incidents, _ = realistic
    opened = {(i.key, str(i.fingerprint)): i.opened_at for i in of_kind(incidents, IncidentKind.CAMPAIGN)}
    expected = [e for entity in truth.entities for e in entity.expect if e.kind is IncidentKind.CAMPAIGN]
    assert len(expected) >= 30
    confidence = {(i.key, str(i.fingerprint)): i.confidence for i in of_kind(incidents, IncidentKind.CAMPAIGN)}
    threshold = CorrelationConfig().export_min_confidence
    assert {str(e.qualifier) for e in expected} == {str(f) for f in Fingerprint}  # weak keys with their second key too
    for e in expected:
        assert (e.key, e.qualifier) in opened, e
        assert timedelta(0) <= opened[(e.key, e.qualifier)] - e.defining_hit <= timedelta(seconds=5), e
        assert confidence[(e.key, e.qualifier)] >= threshold, e  # planted after the warm-up: exported


def test_no_campaign_on_a_library_banner_or_dictionary_credentials_alone(realistic: Realistic) -> None:
    """No campaign on a library banner, a recon sequence, dictionary credentials (a Mirai
    list's pairs are in the dictionary) or a public host, at any time, the fresh instance's
    first hour included: banners and recon sequences are weak keys their bots never pair,
    the dictionary's pairs and the public hosts are known before any traffic (known.py,
    `campaign_shared_hosts`). Every campaign that opens is a planted one."""
    truth, incidents, _ = realistic
    campaigns = of_kind(incidents, IncidentKind.CAMPAIGN)
    library = {banner for banner, _ in world.LIBRARY_BANNERS}
    dictionary = {f"{u}/{p}" for u, p in world.DICTIONARY}
    recon = {c for commands in world.RECON_SETS for c in commands}
    public = tuple(world.PUBLIC_HOSTS)
    assert not [i.key for i in campaigns if str(i.fingerprint) == "client_version" and i.key in library]
    assert not [i.key for i in campaigns if str(i.fingerprint) == "commands" and set(i.key.split(" ; ")) <= recon]
    assert not [i.key for i in campaigns if str(i.fingerprint) == "credentials" and set(i.key.split(", ")) <= dictionary]
    assert not [i.key for i in campaigns if str(i.fingerprint) == "download_host" and i.key.startswith(public)]
    expected = {(e.key, e.qualifier) for entity in truth.entities for e in entity.expect}
    assert not [(i.key, i.confidence) for i in campaigns if (i.key, str(i.fingerprint)) not in expected]


def test_known_research_scanners_open_no_multi_sensor_or_campaign_incident(tmp_path: Path) -> None:
    """With the simulated scanners' network in benign_networks, the truth expects only their
    scans, and one Correlator and two split workers find exactly that: no multi-sensor or
    campaign incident names them, while their horizontal scans are still reported."""
    settings = CorrelationConfig(benign_networks=[world.RESEARCH_NETWORK])
    options = simulate.SimulationOptions(scenario="realistic", rate_events_per_second=0.3)
    truth = simulate.write_simulation(simulate.plan_simulation(options, settings), tmp_path)
    scanners = {s for e in truth.entities if e.plant == "research_scanner" for s in e.sources}
    assert len(scanners) == 3
    adapter = load_adapters()["event"]
    received = datetime.now(UTC)
    events: list[Event] = []
    for line in (tmp_path / "trace.jsonl").read_text().splitlines():
        item = json.loads(line)
        ctx = RecordContext(sensor=item["sensor"], honeypot="tpot", received=received, timezone=UTC, raw=line)
        events += adapter.adapt(item["record"], ctx)
    one = Correlator(settings).observe(events)
    named = {(str(i.kind), i.key) for i in one if scanners & ({i.key} | set(i.sources))}
    assert named and {kind for kind, _ in named} == {"horizontal_scan"}
    expected = {(str(e.kind), e.key) for entity in truth.entities for e in entity.expect}
    assert {key for key in expected if key[1] in scanners} == named
    split = split_run(events, workers_of(2, settings))
    assert {(str(i.kind), i.key) for i in split if scanners & ({i.key} | set(i.sources))} == named


def test_a_bad_benign_network_names_the_option() -> None:
    with pytest.raises(ConfigError, match=r"correlation\.benign_networks"):
        Correlator(CorrelationConfig(benign_networks=["10.0.0.0/33"]))
