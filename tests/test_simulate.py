"""`honeyatlas simulate`: the three files, byte-identical for a seed, validated options, and a
truth that agrees with the trace it describes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import pytest

from honeyatlas.cli import main
from honeyatlas.config import CorrelationConfig
from honeyatlas.incident import IncidentKind
from honeyatlas.sources.simulate import SimulationOptions, Truth, plan_simulation, world, write_simulation
from honeyatlas.sources.simulate.truth import Limits, expectations, first_reach

SMALL = ["--duration-seconds", "900", "--rate", "3"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def simulate(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HONEYATLAS_")}
    return subprocess.run([sys.executable, "-m", "honeyatlas", "simulate", "--out", str(out), *args],
                          capture_output=True, text=True, timeout=120, env=env)


def read_trace(out: Path) -> tuple[list[str], list[tuple[int, int, dict]], Truth]:
    names = [s["name"] for s in json.loads((out / "sensors.json").read_text())["sensors"]]
    index = {name: i for i, name in enumerate(names)}
    items = []
    for line in (out / "trace.jsonl").read_text().splitlines():
        entry = json.loads(line)
        record = dict(entry["record"])
        ts = datetime.fromisoformat(record.pop("ts").replace("Z", "+00:00"))
        items.append(((ts - EPOCH) // timedelta(milliseconds=1), index[entry["sensor"]], record))
    return names, items, msgspec.json.decode((out / "truth.json").read_bytes(), type=Truth)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "baseline"
    done = simulate(out, *SMALL, "--seed", "7")
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "expects" in done.stdout
    return out


def test_cli_writes_trace_sensors_and_truth(written: Path) -> None:
    assert sorted(p.name for p in written.iterdir()) == ["sensors.json", "trace.jsonl", "truth.json"]
    names, items, truth = read_trace(written)
    assert len(names) == truth.sensors == 20
    assert truth.format == "honeyatlas-simulation-truth" and truth.version == 1 and truth.seed == 7
    assert truth.counts.events == len(items) == truth.counts.background_events + truth.counts.planted_events
    assert [t for t, _, _ in items] == sorted(t for t, _, _ in items)  # event-time order
    assert truth.start <= EPOCH + timedelta(milliseconds=items[0][0])
    assert EPOCH + timedelta(milliseconds=items[-1][0]) < truth.end
    assert {r["kind"] for _, _, r in items} >= {"connection", "login_attempt", "command", "file_download", "scan",
                                                 "web_request"}
    assert set(truth.counts.expected) == {str(k) for k in IncidentKind}
    assert set(truth.counts.expected_none) == {str(k) for k in IncidentKind}  # near misses of every kind
    first = json.loads((written / "trace.jsonl").read_text().splitlines()[0])
    assert set(first) == {"sensor", "record"} and first["record"]["ts"].endswith("Z")


def test_same_seed_same_bytes_other_seed_other_trace(written: Path, tmp_path: Path) -> None:
    again = simulate(tmp_path / "again", *SMALL, "--seed", "7")
    assert again.returncode == 0, again.stderr
    for name in ("trace.jsonl", "sensors.json", "truth.json"):
        assert (tmp_path / "again" / name).read_bytes() == (written / name).read_bytes(), name
    other = simulate(tmp_path / "other", *SMALL, "--seed", "8")
    assert other.returncode == 0, other.stderr
    assert (tmp_path / "other" / "trace.jsonl").read_bytes() != (written / "trace.jsonl").read_bytes()


@pytest.mark.parametrize(("args", "says"), [
    (["--scenario", "nope"], "unknown scenario 'nope'; pick one of baseline"),
    (["--sensors", "2"], "--sensors must be between 5 and"),
    (["--rate", "0"], "--rate must be more than 0"),
    (["--rate", "nan"], "--rate must be more than 0"),
    (["--duration-seconds", "60"], "--duration-seconds must be between 600"),
    (["--rate", "50000", "--duration-seconds", "31000000"], "keep it under 500,000,000"),
    (["--start", "yesterday"], "--start 'yesterday' is not an ISO-8601 time"),
])
def test_bad_options_are_one_clear_line(args: list[str], says: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    assert main(["simulate", "--out", str(tmp_path / "file"), *SMALL]) == 2
    assert "is a file; give a directory" in capsys.readouterr().err


def test_thresholds_come_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "honeyatlas.toml"
    config.write_text("[correlation]\nmulti_sensor_min_sensors = 4\ncampaign_min_sources = 6\n")
    assert simulate(tmp_path / "out", *SMALL, "--config", str(config)).returncode == 0
    _, items, truth = read_trace(tmp_path / "out")
    assert truth.thresholds["multi_sensor_min_sensors"] == 4 and truth.thresholds["campaign_min_sources"] == 6
    limits = Limits.of(msgspec.convert(truth.thresholds, CorrelationConfig))
    assert_truth_matches_trace(items, truth, limits, [f"sim-{i + 1:02d}" for i in range(truth.sensors)])


def assert_truth_matches_trace(items: list, truth: Truth, limits: Limits, names: list[str]) -> None:
    """The definitions applied to the whole trace find exactly what the truth expects, when it
    expects it: the background and the near misses open nothing, and no key is shared."""
    whole = {(k, key, q): hit for k, key, q, hit in expectations(items, limits, names)}
    expected = {(e.kind, e.key, e.qualifier): e.defining_hit for entity in truth.entities for e in entity.expect}
    assert {key: EPOCH + timedelta(milliseconds=hit) for key, hit in whole.items()} == expected
    near = {(n.kind, n.key, n.qualifier) for entity in truth.entities for n in entity.expect_none}
    assert near and not near & set(whole)


def test_truth_matches_the_definitions_on_the_whole_trace(written: Path) -> None:
    names, items, truth = read_trace(written)
    assert_truth_matches_trace(items, truth, Limits.of(CorrelationConfig()), names)


def test_defining_hits_are_the_kth_distinct_member_in_the_trace(written: Path) -> None:
    """Counted directly from trace.jsonl, without the truth module (planted positives lie within their windows)."""
    names, items, truth = read_trace(written)
    c = CorrelationConfig()
    members: dict[tuple, list[tuple[int, object]]] = defaultdict(list)
    for ts, sensor, r in items:
        members[("multi_sensor", r["src_ip"], "")].append((ts, sensor))
        if "dst_port" in r:
            members[("horizontal_scan", r["src_ip"], str(r["dst_port"]))].append((ts, sensor))
            members[("vertical_scan", r["src_ip"], names[sensor])].append((ts, r["dst_port"]))
        if "sha256" in r:
            members[("epidemic", r["sha256"], "")].append((ts, sensor))
        if r["kind"] == "file_download":
            members[("campaign", urlsplit(r["url"]).hostname, "download_host")].append((ts, r["src_ip"]))
        # a banner is a weak key: it opens with a second key (tests/transforms/test_campaign_background.py)
    threshold = {"multi_sensor": c.multi_sensor_min_sensors, "horizontal_scan": c.scan_min_sensors,
                 "vertical_scan": c.scan_min_ports, "epidemic": c.epidemic_min_sensors, "campaign": c.campaign_min_sources}
    checked = defaultdict(int)
    for entity in truth.entities:
        for e in entity.expect:
            hits = members.get((str(e.kind), e.key, e.qualifier))
            if hits is None:  # credential and command campaigns need sessions; the test above covers them
                continue
            seen: list[object] = []
            for ts, member in hits:
                if member not in seen:
                    seen.append(member)
                    if len(seen) == threshold[str(e.kind)]:
                        assert EPOCH + timedelta(milliseconds=ts) == e.defining_hit, (entity.id, e)
                        break
            else:
                raise AssertionError(f"{entity.id}: {e.kind} {e.key} never reaches its threshold in the trace")
            checked[str(e.kind)] += 1
    assert checked["multi_sensor"] >= 20 and checked["epidemic"] >= 8 and checked["campaign"] >= 10
    assert checked["horizontal_scan"] >= 10 and checked["vertical_scan"] >= 10


def test_a_horizontal_scan_is_also_a_multi_sensor_attacker(written: Path) -> None:
    _, _, truth = read_trace(written)
    for entity in (e for e in truth.entities if e.plant == "horizontal_scan"):
        kinds = {str(e.kind) for e in entity.expect}
        assert {"horizontal_scan", "multi_sensor"} <= kinds, entity.id


@pytest.mark.parametrize("scenario", ["dense", "slow-epidemic"])
def test_other_scenarios_plan_every_kind(scenario: str, tmp_path: Path) -> None:
    """Thin backgrounds (the plants stay the same): every kind expected, near misses of every kind."""
    options = SimulationOptions(scenario=scenario, rate_events_per_second=0.01 if scenario != "dense" else 2.0,
                                duration_seconds=None if scenario != "dense" else 1200.0)
    truth = write_simulation(plan_simulation(options, CorrelationConfig()), tmp_path)
    assert set(truth.counts.expected) == {str(k) for k in IncidentKind}
    assert set(truth.counts.expected_none) == {str(k) for k in IncidentKind}
    if scenario == "dense":
        assert truth.counts.plants["botnet"] == 6
        assert any(len({str(e.kind) for e in entity.expect}) >= 3 for entity in truth.entities)  # overlapping
    else:
        assert truth.counts.plants["near_epidemic_spread"] == 5  # samples spread wider than seven days
        assert truth.duration_seconds == 10 * 86400


def test_first_reach_counts_members_whose_latest_hit_is_within_the_window() -> None:
    assert first_reach([(0, "a"), (10, "b"), (20, "c")], 3, 20) == 20
    assert first_reach([(0, "a"), (10, "b"), (21, "c")], 3, 20) is None  # "a" left the window
    assert first_reach([(0, "a"), (10, "b"), (15, "a"), (30, "c")], 3, 20) == 30  # "a" came back at 15
    assert first_reach([(0, "a"), (1, "a"), (2, "a")], 2, 100) is None


def test_realistic_background_looks_alike_but_the_truth_tells_campaigns_apart(tmp_path: Path) -> None:
    """The realistic scenario (thinner background, same plants): over 1,000 background sources
    whose library banners, dictionary credentials, recon commands and public hosts meet the
    plain campaign definition, which the truth lists as look-alikes, never as expectations;
    planted campaigns of 8-15 sources after the warm-up; research scanners at every sensor."""
    options = SimulationOptions(scenario="realistic", rate_events_per_second=1.0)
    plan = plan_simulation(options, CorrelationConfig())
    truth = write_simulation(plan, tmp_path)
    names, items, _ = read_trace(tmp_path)
    limits = Limits.of(CorrelationConfig())
    assert truth.counts.background_sources >= 1000
    warmup_end = truth.start + timedelta(seconds=plan.scenario.warmup_seconds)
    for entity in truth.entities:
        assert entity.first >= warmup_end, entity.id
        if entity.plant.startswith("campaign_") or entity.plant == "botnet":
            assert 8 <= len(entity.sources) <= 15, entity.id
        if entity.plant == "research_scanner":
            assert len(entity.sensors) == len(names)
    whole = {(k, key, q): hit for k, key, q, hit in expectations(items, limits, names)}
    expected = {(e.kind, e.key, e.qualifier): e.defining_hit for entity in truth.entities for e in entity.expect}
    assert {k: EPOCH + timedelta(milliseconds=whole[k]) for k in expected} == expected  # planted: as alone
    dictionary = {f"{u}/{p}" for u, p in world.DICTIONARY}
    recon = {c for commands in world.RECON_SETS for c in commands}
    listed = {(x.qualifier, x.key) for x in truth.lookalikes}
    extra = [(key, q) for (kind, key, q) in whole if (kind, key, q) not in expected]
    assert {str(kind) for kind, _, _ in (k for k in whole if k not in expected)} == {"campaign"}
    # the definition opens on the look-alikes that are strong keys (Mirai lists, dictionary
    # triples, public hosts); the learned background, not the definition, tells them apart
    assert len(extra) >= 5
    for key, q in extra:
        if q == "credentials":
            assert set(key.split(", ")) <= dictionary, key
        elif q == "commands":
            assert set(key.split(" ; ")) <= recon, key
        else:
            assert (q, key) in listed, (q, key)


def test_a_bad_benign_network_in_the_config_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "honeyatlas.toml"
    config.write_text('[correlation]\nbenign_networks = ["10.0.0.0/33"]\n')
    done = simulate(tmp_path / "out", *SMALL, "--config", str(config))
    assert done.returncode == 2 and "correlation.benign_networks" in done.stderr, done.stderr
