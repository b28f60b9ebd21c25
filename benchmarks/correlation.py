"""Correlation against ground truth: precision, recall and delay per detector, determinism, bounded state.

For each committed scenario of `honeyatlas simulate` (baseline, dense, slow-epidemic, realistic):
1. the labelled trace is written into the scratch directory (`write_simulation`, as the CLI does);
2. a real `Service` (DuckDB store in the scratch directory, GeoIP, live hub; no listeners)
   registers the trace's sensors, and the trace is fed to `pipeline.ingest` in event-time
   order, in batches of consecutive records of one sensor (at most 50). Up to 256 batches
   are in flight so the store can commit many at once: the pipeline correlates before its
   first await, so batches still reach the detectors in trace order (the determinism check
   below would show it if that changed);
3. the incidents are read back from the store (after the pipeline saved the growth it holds
   back for up to `correlation.save_interval_seconds`, as `Service.stop` does), the latest
   state of each, and matched to
   the truth per incident kind: an expected (kind, key, qualifier) with an incident is a
   true positive, without one a false negative; an incident no entity expects is a false
   positive, and so is a second incident for one expectation. Delay = opened_at minus the
   truth's defining hit, in seconds of event time;
4. determinism: the same records, adapted by the same `event` adapter, go to a fresh
   `Correlator` in a single observe() call (at once); its final incidents (ids and bodies)
   must equal the store's.

Bounded state: the `flood` scenario (over a million distinct sources) is streamed, never
held, into a `Correlator` with default bounds and with small ones, each in a fresh
interpreter (`python -m benchmarks.correlation --bounded-state SPEC`, which imports neither
the store nor the web stack) so its peak RSS (VmHWM) is its own. Every 10,000 events each detector's `tracked` is
checked against its bound; evictions and forced closures are counted, and the flood's own
plants are scored too (what the bounds cost in recall).

`python -m benchmarks.correlation RESULTS.json` prints the markdown report of a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict, deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from benchmarks.harness import REPO, Context, Figure, memory_kib
from honeyatlas.config import Config, CorrelationConfig, GeoIPConfig, StorageConfig
from honeyatlas.event import Event, Kind, Outcome
from honeyatlas.incident import Incident, IncidentKind
from honeyatlas.sources.simulate import SCENARIOS as PLANNED
from honeyatlas.sources.simulate import SimulationOptions, Trace, Truth, plan_simulation, write_simulation
from honeyatlas.sources.simulate.truth import Entity
from honeyatlas.transforms.correlate import Correlator
from honeyatlas.transforms.correlate.campaigns import WARMUP_CONFIDENCE

if TYPE_CHECKING:  # the store and the web stack are imported where used: the bounded-state child needs neither
    from honeyatlas.adapters import Adapter
    from honeyatlas.pipeline import IngestResult
    from honeyatlas.service import Service

SCENARIOS = ["baseline", "dense", "slow-epidemic", "realistic"]
# Smoke: the same plants in a thinner, shorter background, so a run takes seconds.
SMOKE = {"baseline": (1800.0, 2.0), "dense": (1200.0, 6.0), "slow-epidemic": (10 * 86400.0, 0.004),
         "realistic": (3 * 3600.0, 1.0)}
SEED = 1
MAX_BATCH = 50
IN_FLIGHT = 256
TARGET_SHARE = 0.95
TARGET_DELAY_SECONDS = 5.0
SMALL_BOUNDS = {"max_sources": 10_000, "max_hits_per_source": 64, "max_sessions": 10_000, "max_fingerprints": 5_000,
                "max_samples": 2_000, "max_open_incidents": 1_000}
SMOKE_SMALL_BOUNDS = {"max_sources": 1_000, "max_hits_per_source": 64, "max_sessions": 1_000, "max_fingerprints": 500,
                      "max_samples": 200, "max_open_incidents": 100}
KINDS = [str(k) for k in IncidentKind]


class TraceLine(msgspec.Struct):
    sensor: str
    record: msgspec.Raw


# --------------------------------------------------------------------------- scoring


def qualifier(incident: Incident) -> str:
    """What tells incidents of one key apart, as the truth writes it (incident.incident_id)."""
    if incident.kind is IncidentKind.HORIZONTAL_SCAN:
        return str(incident.ports[0]) if incident.ports else ""
    if incident.kind is IncidentKind.VERTICAL_SCAN:
        return incident.sensors[0] if incident.sensors else ""
    if incident.kind is IncidentKind.CAMPAIGN:
        return str(incident.fingerprint)
    return ""


def score(incidents: list[Incident], truth_entities: list[Entity],
          min_confidence: float | None = None) -> dict[str, dict[str, Any]]:
    """Per incident kind: TP, FP, FN, precision, recall, delay p50/max/min (s), hard negatives.
    Every incident is scored, those opened while the campaign detector learns the background
    included (`low_confidence` counts the campaigns at or below its warm-up confidence).
    With `min_confidence`, only what the exports take: campaigns below it are left out."""
    groups: dict[tuple[str, str, str], list[Incident]] = defaultdict(list)
    low: Counter[str] = Counter()
    for incident in incidents:
        if incident.confidence is not None and incident.confidence <= WARMUP_CONFIDENCE:
            low[str(incident.kind)] += 1
        if min_confidence is not None and incident.confidence is not None and incident.confidence < min_confidence:
            continue
        groups[(str(incident.kind), incident.key, qualifier(incident))].append(incident)
    expected: dict[tuple[str, str, str], tuple[datetime, str]] = {}
    negatives: dict[tuple[str, str, str], str] = {}
    for entity in truth_entities:
        for e in entity.expect:
            expected[(str(e.kind), e.key, e.qualifier)] = (e.defining_hit, entity.id)
        for n in entity.expect_none:
            negatives[(str(n.kind), n.key, n.qualifier)] = entity.id
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        positives = [key for key in expected if key[0] == kind]
        found = [key for key in positives if key in groups]
        missed = [key for key in positives if key not in groups]
        false = [key for key in groups if key[0] == kind and key not in expected]
        split = sum(len(groups[key]) - 1 for key in found)
        fp = sum(len(groups[key]) for key in false) + split
        delays = [(min(i.opened_at for i in groups[key]) - expected[key][0]).total_seconds() for key in found]
        hard = [key for key in negatives if key[0] == kind]
        out[kind] = {
            "positives": len(positives), "tp": len(found), "fn": len(missed), "fp": fp, "split": split,
            "precision": len(found) / (len(found) + fp) if found or fp else math.nan,
            "recall": len(found) / len(positives) if positives else math.nan,
            "delay_p50_seconds": statistics.median(delays) if delays else math.nan,
            "delay_max_seconds": max(delays) if delays else math.nan,
            "delay_min_seconds": min(delays) if delays else math.nan,
            "hard_negatives": len(hard), "hard_negatives_detected": sum(key in groups for key in hard),
            "low_confidence": low[kind],
            "missed": [f"{expected[key][1]}: {key[1][:80]} {key[2]}" for key in missed[:5]],
            "false": [f"{negatives.get(key, 'background')}: {key[1][:80]} {key[2]} (opened "
                      f"{groups[key][0].opened_at:%Y-%m-%d %H:%M:%S})" for key in false[:5]],
        }
    return out


# --------------------------------------------------------------------------- one scenario


def scenario_options(name: str, smoke: bool) -> SimulationOptions:
    duration, rate = SMOKE[name] if smoke else (None, None)
    return SimulationOptions(scenario=name, seed=SEED, duration_seconds=duration, rate_events_per_second=rate)


def _config(data_dir: Path, correlation: CorrelationConfig | None = None) -> Config:
    return Config(storage=StorageConfig(data_dir=str(data_dir)), geoip=GeoIPConfig(search_city_db=False),
                  correlation=correlation or CorrelationConfig())


def _batches(path: Path) -> Any:
    """(sensor, [RawRecord]) runs of one sensor, at most MAX_BATCH records, in trace order."""
    from honeyatlas.pipeline import RawRecord

    decode_line = msgspec.json.Decoder(TraceLine).decode
    decode_record = msgspec.json.Decoder().decode
    sensor, records = None, []
    with path.open("rb") as f:
        for line in f:
            parsed = decode_line(line)
            if (parsed.sensor != sensor or len(records) >= MAX_BATCH) and records:
                yield sensor, records
                records = []
            sensor = parsed.sensor
            raw = bytes(parsed.record)
            records.append(RawRecord(len(records), raw, decode_record(raw)))
    if records:
        yield sensor, records


async def _replay(service: Service, trace: Path) -> dict[str, Any]:
    sensors = {s.name: s for s in service.registry.list()}
    in_flight: deque[asyncio.Task[IngestResult]] = deque()
    events = batches = rejected = 0
    began = time.perf_counter()

    async def settle(task: asyncio.Task[IngestResult]) -> None:
        nonlocal events, rejected
        result = await task
        events += result.events
        rejected += len(result.rejected) + len(result.ignored)

    for sensor, records in _batches(trace):
        batches += 1
        in_flight.append(asyncio.create_task(
            service.pipeline.ingest(source="bench", fmt="event", sensor=sensors[sensor], records=records)))
        if len(in_flight) >= IN_FLIGHT:
            await settle(in_flight.popleft())
    while in_flight:
        await settle(in_flight.popleft())
    seconds = time.perf_counter() - began
    if rejected:
        raise RuntimeError(f"{rejected} trace records were rejected or ignored; the simulator wrote a bad record")
    return {"events": events, "batches": batches, "mean_batch": events / batches, "seconds": seconds,
            "events_per_second": events / seconds}


def _at_once(trace: Path, correlation: CorrelationConfig, adapter: Adapter) -> dict[str, Incident]:
    """Every record adapted as the pipeline does, then one observe() call with all of them."""
    from honeyatlas.adapters import RecordContext

    received = datetime.now(UTC)
    events: list[Event] = []
    for sensor, records in _batches(trace):
        for record in records:
            ctx = RecordContext(sensor=sensor, honeypot="tpot", received=received, timezone=UTC,
                                raw=record.raw.decode())
            events += adapter.adapt(record.value, ctx)
    return {i.id: i for i in Correlator(correlation).observe(events)}


async def run_scenario(name: str, workdir: Path, options: SimulationOptions) -> dict[str, Any]:
    """Generate, replay through a real Service, compare with the at-once run, score against the truth."""
    from honeyatlas.service import Service
    from honeyatlas.store import IncidentQuery

    correlation = CorrelationConfig()
    began = time.perf_counter()
    plan = plan_simulation(options, correlation)
    trace_dir = workdir / f"correlation-{name}"
    write_simulation(plan, trace_dir)
    generated = time.perf_counter() - began
    service = Service(_config(workdir / f"correlation-{name}-store", correlation))
    await service.start(listeners=False)
    try:
        for spec in plan.sensors:
            service.registry.add(spec.name, honeypot=spec.honeypot, lat=spec.lat, lon=spec.lon, label=spec.label)
        replay = await _replay(service, trace_dir / "trace.jsonl")
        await service.sink.save_incidents()  # growth held back for at most a second (stop() does the same)
        stored = await service.store.query_incidents(IncidentQuery(limit=10_000_000))
        adapter = service.pipeline.adapters["event"]
    finally:
        await service.stop()
    at_once = _at_once(trace_dir / "trace.jsonl", correlation, adapter)
    replayed = {i.id: msgspec.json.encode(i) for i in stored}
    once = {key: msgspec.json.encode(i) for key, i in at_once.items()}
    differing = sorted(key for key in replayed.keys() | once.keys() if replayed.get(key) != once.get(key))
    truth = msgspec.json.decode((trace_dir / "truth.json").read_bytes(), type=Truth)
    return {
        "scenario": name, "description": truth.description, "sensors": truth.sensors,
        "rate_events_per_second": truth.rate_events_per_second, "duration_seconds": truth.duration_seconds,
        "counts": msgspec.to_builtins(truth.counts), "generate_seconds": round(generated, 2),
        "trace_mib": round((trace_dir / "trace.jsonl").stat().st_size / 1048576, 1),
        "replay": replay, "incidents": len(stored),
        "determinism": {"identical": not differing, "replayed_incidents": len(replayed), "at_once_incidents": len(once),
                        "differing": differing[:10], "replay_mean_batch": round(replay["mean_batch"], 2)},
        "detectors": score(stored, truth.entities),
        "exported": score(stored, truth.entities, correlation.export_min_confidence),
        "export_min_confidence": correlation.export_min_confidence,
        "planted_after_seconds": PLANNED[name].warmup_seconds,
    }


# --------------------------------------------------------------------------- bounded state (a child interpreter)

_FIELDS = ("src_ip", "src_port", "dst_port", "transport", "protocol", "session", "username", "password", "command",
           "url", "sha256", "client_version", "action", "user_agent")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bounded_state_run(spec: dict[str, Any]) -> dict[str, Any]:
    """Stream the flood trace into one Correlator; runs alone in a fresh interpreter."""
    correlation = msgspec.convert(spec["bounds"], CorrelationConfig)
    options = SimulationOptions(scenario="flood", seed=SEED, rate_events_per_second=spec.get("rate"),
                                duration_seconds=spec.get("duration_seconds"))
    plan = plan_simulation(options, CorrelationConfig())
    names = [s.name for s in plan.sensors]
    trace = Trace(plan)
    correlator = Correlator(correlation)
    # campaign: sessions and as many sources' recent keys, fingerprints (pairs included) and as
    # many credential pairs and commands (parts)
    bounds = {"multi_sensor": correlation.max_sources, "scan": correlation.max_sources,
              "campaign": 2 * correlation.max_sessions + 2 * correlation.max_fingerprints,
              "epidemic": correlation.max_samples}
    peak_tracked = dict.fromkeys(bounds, 0)
    peak_open = 0
    over: list[str] = []
    latest: dict[str, Incident] = {}
    checkpoints = []
    rss_start = memory_kib(os.getpid())["VmRSS"]
    began = time.perf_counter()
    batch: list[Event] = []
    count = 0
    every = spec["checkpoint_every"]
    for ts_ms, sensor, record in trace:
        ts = _EPOCH + timedelta(milliseconds=ts_ms)
        batch.append(Event(id="", ts=ts, ingest_ts=ts, sensor=names[sensor], honeypot="tpot", kind=Kind(record["kind"]),
                           outcome=Outcome(record.get("outcome", "unknown")),
                           **{k: record[k] for k in _FIELDS if k in record}))
        count += 1
        if len(batch) < 1000:
            continue
        for incident in correlator.observe(batch):
            latest[incident.id] = incident
        batch = []
        if count % 10_000 == 0:
            for name, detector in correlator.detectors.items():
                peak_tracked[name] = max(peak_tracked[name], detector.tracked)
                if detector.tracked > bounds[name]:
                    over.append(f"{name} tracked {detector.tracked} > {bounds[name]} at event {count}")
            peak_open = max(peak_open, correlator.open_incidents)
        if count % every == 0:
            checkpoints.append({"events": count, "sources": trace.background_sources,
                                "rss_mib": round(memory_kib(os.getpid())["VmRSS"] / 1024, 1)})
    for incident in correlator.observe(batch):
        latest[incident.id] = incident
    seconds = time.perf_counter() - began
    sources = trace.background_sources + sum(len(e.sources) for e in plan.entities)
    return {
        "label": spec["label"], "bounds": {k: getattr(correlation, k) for k in SMALL_BOUNDS},
        "events": count, "distinct_sources": sources, "seconds": round(seconds, 1),
        "events_per_second": count / seconds,
        "rss_start_mib": round(rss_start / 1024, 1),
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec
        "peak_rss_mib": round(memory_kib(os.getpid())["VmHWM"] / 1024, 1),
        "checkpoints": checkpoints, "tracked_bound": bounds, "peak_tracked": peak_tracked,
        "peak_open_incidents": peak_open, "bounds_respected": not over and peak_open <= correlation.max_open_incidents,
        "violations": over[:5],
        "evictions": {name: d.evictions for name, d in correlator.detectors.items()},
        "forced_closures": correlator.forced_closures,
        "detectors": score(list(latest.values()), plan.entities),
    }


def _bounded_state(ctx: Context) -> list[dict[str, Any]]:
    small = SMOKE_SMALL_BOUNDS if ctx.smoke else SMALL_BOUNDS
    size = {"rate": 8.0, "duration_seconds": 2700.0} if ctx.smoke else {}
    specs = [
        {"label": "default bounds", "bounds": {}, "checkpoint_every": ctx.size(250_000, 5_000), **size},
        {"label": "small bounds", "bounds": small, "checkpoint_every": ctx.size(250_000, 5_000), **size},
    ]
    # Each run in an interpreter of its own, both at once (two cores).
    children = [subprocess.Popen([sys.executable, "-m", "benchmarks.correlation", "--bounded-state", json.dumps(spec)],
                                 cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for spec in specs]
    results = []
    for child in children:
        out, err = child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"bounded-state run failed ({child.returncode}): {err.decode()[-2000:]}")
        results.append(json.loads(out))
    return results


# --------------------------------------------------------------------------- the benchmark


def correlation(ctx: Context) -> list[Figure]:
    figures: list[Figure] = []
    scenarios: dict[str, Any] = {}
    for name in SCENARIOS:
        ctx.log(f"scenario {name}: generating and replaying")
        result = asyncio.run(run_scenario(name, ctx.workdir, scenario_options(name, ctx.smoke)))
        scenarios[name] = result
        replay = result["replay"]
        ctx.log(f"  {replay['events']:,} events in {replay['seconds']:.0f} s, {result['incidents']} incidents, "
                f"identical at once: {result['determinism']['identical']}")
        for kind, s in result["detectors"].items():
            note = f"TP {s['tp']} FP {s['fp']} FN {s['fn']}; hard negatives {s['hard_negatives']}"
            figures.append(Figure("correlation", f"{name} {kind} precision", s["precision"], "",
                                  target=f">= {TARGET_SHARE}", notes=note))
            figures.append(Figure("correlation", f"{name} {kind} recall", s["recall"], "", target=f">= {TARGET_SHARE}",
                                  notes=note))
            figures.append(Figure("correlation", f"{name} {kind} delay max", s["delay_max_seconds"], "s",
                                  higher_is_better=False, target=f"<= {TARGET_DELAY_SECONDS:g}",
                                  notes=f"p50 {s['delay_p50_seconds']:g} s, event time"))
        shared = result["exported"]["campaign"]
        if shared["tp"] + shared["fp"]:
            figures.append(Figure("correlation", f"{name} campaign precision, exported", shared["precision"], "",
                                  target=f">= {TARGET_SHARE}",
                                  notes=f"confidence >= {result['export_min_confidence']:g}; TP {shared['tp']} FP "
                                  f"{shared['fp']} FN {shared['fn']}"))
        else:  # a trace shorter than the warm-up exports nothing: no precision to speak of
            figures.append(Figure("correlation", f"{name} campaigns exported", 0.0, "incidents",
                                  notes=f"all {shared['fn']} planted campaigns opened within the warm-up"))
        figures.append(Figure("correlation", f"{name} campaign recall, exported", shared["recall"], "",
                              notes="planted campaigns of a fresh instance's first hour have the warm-up's confidence"))
        figures.append(Figure("correlation", f"{name} replay through the pipeline", replay["events_per_second"],
                              "events/s", notes=f"{replay['events']:,} events, mean batch {replay['mean_batch']:.1f}"))
        figures.append(Figure("correlation", f"{name} at once == replayed", float(result["determinism"]["identical"]),
                              "yes=1", target=">= 1"))
    ctx.log("bounded state: flood trace, default and small bounds (two processes)")
    bounded = _bounded_state(ctx)
    for run in bounded:
        label = run["label"]
        ctx.log(f"  {label}: {run['events']:,} events, {run['distinct_sources']:,} sources, peak RSS "
                f"{run['peak_rss_mib']:.0f} MiB, bounds respected: {run['bounds_respected']}")
        figures.append(Figure("correlation", f"flood {label}: peak RSS", run["peak_rss_mib"], "MiB",
                              higher_is_better=False, notes=f"{run['distinct_sources']:,} distinct sources, "
                              f"{run['events']:,} events; RSS before the stream {run['rss_start_mib']:.0f} MiB"))
        figures.append(Figure("correlation", f"flood {label}: tracked within bounds", float(run["bounds_respected"]),
                              "yes=1", target=">= 1", notes=f"peak tracked {run['peak_tracked']}"))
    if not ctx.smoke:
        figures.append(Figure("correlation", "flood distinct sources", float(bounded[0]["distinct_sources"]), "sources",
                              target=">= 1000000"))
    ctx.extra["correlation"] = {"smoke": ctx.smoke, "seed": SEED, "scenarios": scenarios, "bounded_state": bounded}
    return figures


# --------------------------------------------------------------------------- the report


def _num(value: float, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def markdown(report: dict[str, Any]) -> str:
    """The results of one run as the tables of docs/correlation.md."""
    details = report["details"]["correlation"]
    scenarios = details["scenarios"]
    lines = [f"Run of {report['date']} on commit `{report['commit']}`: {report['machine']['nproc']} cores "
             f"({report['machine']['cpu_model']}), {report['machine']['ram_gib']} GiB RAM, Python "
             f"{report['machine']['python']}. Command: `{report['command']}`; seed {details['seed']}.", ""]
    lines += ["### Scenarios", "",
              "| scenario | sensors | background rate (events/s) | duration | events | background sources | "
              "planted entities | expected incidents | near misses |", "|---|---:|---:|---:|---:|---:|---|---|---|"]
    for name, s in scenarios.items():
        c = s["counts"]
        hours = s["duration_seconds"] / 3600
        duration = f"{hours / 24:g} d" if hours >= 48 else f"{hours:g} h"
        lines.append(f"| `{name}` | {s['sensors']} | {s['rate_events_per_second']:g} | {duration} | {c['events']:,} | "
                     f"{c['background_sources']:,} | " + ", ".join(f"{k} {v}" for k, v in c["plants"].items()) + " | "
                     + ", ".join(f"{k} {v}" for k, v in c["expected"].items()) + " | "
                     + ", ".join(f"{k} {v}" for k, v in c["expected_none"].items()) + " |")
    lines += ["", "### Detection", "",
              "Delay is opened_at minus the defining hit, in seconds of event time. FP counts incidents no planted "
              "entity expects (the background satisfies no definition) and second incidents for one expectation.", "",
              "| scenario | detector | expected | TP | FP | FN | precision | recall | delay p50 (s) | delay max (s) | "
              "near misses detected | low confidence (warm-up) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in scenarios.items():
        for kind, d in s["detectors"].items():
            lines.append(f"| `{name}` | `{kind}` | {d['positives']} | {d['tp']} | {d['fp']} | {d['fn']} | "
                         f"{_num(d['precision'])} | {_num(d['recall'])} | {_num(d['delay_p50_seconds'])} | "
                         f"{_num(d['delay_max_seconds'])} | {d['hard_negatives_detected']} of {d['hard_negatives']} | "
                         f"{d.get('low_confidence', 0)} |")
    lines += ["", "### Campaigns as exported", "",
              "Only campaigns at or above `export_min_confidence` count here (what STIX and MISP take); a planted "
              "campaign that opened while the detector was learning the background (its first hour) has the "
              "warm-up's confidence and counts as missed.", "",
              "| scenario | export_min_confidence | campaigns planted after (s) | expected | TP | FP | FN | precision | "
              "recall | delay max (s) |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in scenarios.items():
        if "exported" not in s:
            continue
        d = s["exported"]["campaign"]
        lines.append(f"| `{name}` | {s['export_min_confidence']:g} | {s['planted_after_seconds']:g} | {d['positives']} | "
                     f"{d['tp']} | {d['fp']} | {d['fn']} | {_num(d['precision'])} | {_num(d['recall'])} | "
                     f"{_num(d['delay_max_seconds'])} |")
    lines += ["", "### Determinism and throughput", "",
              "| scenario | replayed events | pipeline batches (mean size) | replay events/s | incidents | "
              "at once == replayed |", "|---|---:|---:|---:|---:|---|"]
    for name, s in scenarios.items():
        r, d = s["replay"], s["determinism"]
        lines.append(f"| `{name}` | {r['events']:,} | {r['batches']:,} ({r['mean_batch']:.2f}) | "
                     f"{r['events_per_second']:,.0f} | {s['incidents']} | {'yes' if d['identical'] else 'NO'} |")
    lines += ["", "### Bounded state: the `flood` trace", "",
              "| bounds | events | distinct sources | RSS before (MiB) | peak RSS (MiB) | RSS at checkpoints (MiB) | "
              "peak tracked / bound | evictions | within bounds | events/s |",
              "|---|---:|---:|---:|---:|---|---|---|---|---:|"]
    for run in details["bounded_state"]:
        b = run["bounds"]
        label = run["label"] + ("" if run["label"] == "default bounds" else " (" + ", ".join(
            f"{k} {v:,}" for k, v in b.items()) + ")")
        points = ", ".join(f"{p['sources'] / 1000:,.0f}k src: {p['rss_mib']:.0f}" for p in run["checkpoints"])
        tracked = ", ".join(f"{k} {run['peak_tracked'][k]:,}/{run['tracked_bound'][k]:,}" for k in run["peak_tracked"])
        evictions = ", ".join(f"{k} {v:,}" for k, v in run["evictions"].items())
        lines.append(f"| {label} | {run['events']:,} | {run['distinct_sources']:,} | {run['rss_start_mib']:.0f} | "
                     f"{run['peak_rss_mib']:.0f} | {points} | {tracked} | {evictions} | "
                     f"{'yes' if run['bounds_respected'] else 'NO'} | {run['events_per_second']:,.0f} |")
    lines += ["", "Recall of the flood's own plants under each bound (what evictions cost):", "",
              "| bounds | " + " | ".join(f"`{k}`" for k in KINDS) + " |", "|---|" + "---:|" * len(KINDS)]
    for run in details["bounded_state"]:
        lines.append(f"| {run['label']} | " + " | ".join(
            f"{_num(run['detectors'][k]['recall'])} (FP {run['detectors'][k]['fp']})" for k in KINDS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.correlation",
                                     description="print the markdown report of a results file")
    parser.add_argument("results", nargs="?", type=Path, help="JSON written by python -m benchmarks.run")
    parser.add_argument("--bounded-state", metavar="SPEC", help=argparse.SUPPRESS)  # the child run, JSON in and out
    args = parser.parse_args(argv)
    if args.bounded_state:
        sys.stdout.write(json.dumps(bounded_state_run(json.loads(args.bounded_state))))
        return 0
    if args.results is None:
        parser.error("give the results JSON of a run")
    sys.stdout.write(markdown(json.loads(args.results.read_bytes())))  # json: results may hold NaN (no TP, no FP)
    return 0


if __name__ == "__main__":
    sys.exit(main())
