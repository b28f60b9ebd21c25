"""Slow clients: ingest and the map while 1,000+ connections trickle request heads.

One server with every default, and windows of the same length without the attack (the
baseline) and with it, in the order ABBA so that a drift of the machine's other load falls
on both sides. In each window a sender posts cowrie batches back to back from 127.0.0.1
(benchmarks/load.py, `saturate`) and a prober times what a visitor and an operator do: the
map page, `/api/v1/stats/summary`, and a live WebSocket up to its snapshot. The attacker (its
own process) holds `per_address` connections from each of `addresses` loopback addresses
(127.0.1.x; all of 127/8 is the loopback on Linux), each sending a request head one byte a
second and never finishing it, and opens again each connection the server closes, as a
slowloris does; it tries a few connections per address more than the server's cap, which
are refused.

Figures: ingest events/s and probe latencies under attack, each against the same figure
without it (ratio 1.0 = the attack cost nothing), the connections the attack held, the CPU
the attack alone costs the server, and the server's header timeouts and per-address
refusals from /metrics. docs/reliability.md ("Slow clients") has the numbers and the method.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import socket
import statistics
import time
from typing import Any

import httpx
from websockets.sync.client import connect

from benchmarks.harness import (
    Context,
    CpuWindow,
    Figure,
    RssSampler,
    ServerProcess,
    WorkerGroup,
    add_sensor,
    process_cpu_seconds,
    quantile,
    read_token,
)
from benchmarks.load import Ready, sender

INGEST_PATH = "/api/v1/ingest/cowrie"
CAP_PER_ADDRESS = 64  # server.max_connections_per_address, the default the attack runs into
ATTACK_TICK_SECONDS = 1.0  # each attacking connection sends one byte a tick


def slowloris(ctx: Context) -> list[Figure]:
    rounds = ctx.size(4, 1)
    duration = ctx.size(12.0, 1.0)  # per window; `rounds` windows each side, in the order ABBA
    addresses = ctx.size(20, 2)
    per_address = CAP_PER_ADDRESS + ctx.size(6, 2)
    data_dir = ctx.workdir / "slowloris"
    token = add_sensor(data_dir, "bench")
    reader = read_token(data_dir)  # the summary and the live stream need a reader
    # The load benchmarks turn the cap off (their clients share 127.0.0.1); this one runs
    # the server as an operator would, with every default.
    server = ServerProcess(data_dir, env={}).start()
    host, port = server.host_port
    attack_spec = {"host": host, "port": port, "addresses": [f"127.0.1.{n + 1}" for n in range(addresses)],
                   "per_address": per_address}
    baseline: list[dict[str, Any]] = []
    attacked: list[dict[str, Any]] = []
    attacks: list[dict[str, Any]] = []
    counted = {"header_timeouts": 0.0, "refusals": 0.0, "counted_seconds": 0.0}  # around each attack window
    try:
        idle = _server_cores(server, ctx.size(10.0, 0.5))
        idle_attacked = math.nan
        for n in range(rounds):
            attack_first = n % 2 == 1  # A B, B A, ...: a drift of the machine's load falls on both sides
            if not attack_first:
                baseline.append(_window(ctx, server, token, reader, duration, tag=f"sb{n}"))
            extra = ctx.size(10.0, 0.5) if n == 0 else 0.0  # the first attack: its cost alone
            group = WorkerGroup()
            stop = multiprocessing.get_context("spawn").Event()
            try:
                refusals_before = _metric(server.url, reader, *_COUNTED["refusals"])
                group.spawn(attacker, [{**attack_spec, "stop": stop, "seconds": duration + extra + 300}])
                group.wait_ready(1)
                group.go(delay=0.0)
                _wait_for_the_cap(server, reader, refusals_before, timeout=ctx.size(60.0, 20.0))
                if n == 0:
                    idle_attacked = _server_cores(server, extra)
                before = {k: _metric(server.url, reader, *query) for k, query in _COUNTED.items()}
                read_at = time.monotonic()
                attacked.append(_window(ctx, server, token, reader, duration, tag=f"sa{n}"))
                counted["counted_seconds"] += time.monotonic() - read_at
                for k, query in _COUNTED.items():
                    counted[k] += _metric(server.url, reader, *query) - before[k]
                stop.set()
                [attack] = group.results(1, timeout=60)
            finally:
                group.terminate()
            started = attacked[-1]["started"]
            # the attacker counts once a tick (1 s): the count just before the window is in it too
            attack["held"] = [held for at, held in attack.pop("held_samples")
                              if started - ATTACK_TICK_SECONDS <= at <= started + duration]
            attacks.append(attack)
            if attack_first:
                baseline.append(_window(ctx, server, token, reader, duration, tag=f"sb{n}"))
        alive = server.alive()
    finally:
        server.stop()
    held = [h for a in attacks for h in a["held"]]
    seconds = rounds * duration
    base, under = _pooled(baseline, seconds), _pooled(attacked, seconds)
    attacker_cores = sum(a["cpu_seconds"] for a in attacks) / sum(a["seconds"] for a in attacks)
    held_mean = statistics.fmean(held) if held else math.nan
    ctx.extra["slowloris"] = {
        "rounds": rounds, "window_seconds": duration, "addresses": addresses, "per_address_tried": per_address,
        "cap_per_address": CAP_PER_ADDRESS, "baseline": base, "attacked": under,
        "windows": {"baseline": baseline, "attacked": attacked},
        "attack": {"held_mean": held_mean, "held_min": min(held, default=0),
                   "reconnects": sum(a["reconnects"] for a in attacks),
                   "failed_connects": sum(a["failed_connects"] for a in attacks), "client_cores": attacker_cores},
        "server_cores_idle": idle, "server_cores_attack_only": idle_attacked, **counted, "server_survived": alive,
    }
    note = (f"{addresses} addresses x {per_address} trickling connections (cap {CAP_PER_ADDRESS}); {rounds} x "
            f"{duration:g} s windows each side, ABBA; baseline: the same server and clients without the attack")
    figures = [
        Figure("slowloris", "attack connections held (mean over the windows)", held_mean, "connections",
               notes=f"min {min(held, default=0)}; every one cut at the header deadline and reopened"),
        Figure("slowloris", "ingest events/s under attack", under["events_per_second"], "events/s",
               baseline=base["events_per_second"], notes=note),
    ]
    for probe in ("summary", "map", "live"):
        for q in ("p50", "p99"):
            figures.append(Figure("slowloris", f"{probe} {q} under attack", under[probe][q] * 1000, "ms",
                                  baseline=base[probe][q] * 1000, higher_is_better=False,
                                  notes=f"{under[probe]['count']} probes, {under[probe]['failed']} failed"))
    figures += [
        Figure("slowloris", "server CPU under attack", under["server_cores"], "cores",
               baseline=base["server_cores"], higher_is_better=False, notes="with the ingest load"),
        Figure("slowloris", "server CPU for the attack alone", idle_attacked, "cores", baseline=idle,
               higher_is_better=False, notes="no other load; baseline: the idle server"),
        Figure("slowloris", "attacker CPU", attacker_cores, "cores", higher_is_better=False,
               notes="on the same machine as the server: it competes for the same cores"),
        Figure("slowloris", "header timeouts per second", counted["header_timeouts"] / counted["counted_seconds"], "1/s",
               notes="honeyatlas_connections_timed_out_total{phase=header}: the deadline cutting the attack"),
        Figure("slowloris", "per-address refusals per second", counted["refusals"] / counted["counted_seconds"], "1/s",
               notes="honeyatlas_connections_refused_total{reason=per_address_limit}"),
    ]
    return figures


_COUNTED = {"header_timeouts": ("honeyatlas_connections_timed_out_total", "header"),
            "refusals": ("honeyatlas_connections_refused_total", "per_address_limit")}


def _pooled(windows: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """One side's windows as one: events over the total time, quantiles over every probe."""
    out: dict[str, Any] = {"events_per_second": sum(w["events"] for w in windows) / seconds,
                           "server_cores": statistics.fmean(w["server_cores"] for w in windows)}
    for name in ("summary", "map", "live"):
        times = [t for w in windows for t in w["probes"][name][0]]
        out[name] = {"p50": quantile(times, 0.5), "p99": quantile(times, 0.99), "count": len(times),
                     "failed": sum(w["probes"][name][1] for w in windows)}
    return out


def _window(ctx: Context, server: ServerProcess, token: str, reader: str, duration: float,
            tag: str) -> dict[str, Any]:
    """One window: the sender saturating ingest and the prober, both for `duration`."""
    host, port = server.host_port
    group = WorkerGroup()
    try:
        group.spawn(sender, [{"host": host, "port": port, "path": INGEST_PATH, "token": token, "mode": "saturate",
                              "duration": duration, "connections": 4, "tag": tag, "seed": 700}])
        group.spawn(prober, [{"url": server.url, "token": reader, "duration": duration}])
        group.wait_ready(2)
        cpu = CpuWindow(server.pid)
        with RssSampler(server.pid) as rss:
            start = group.go()
            time.sleep(max(0.0, start - time.monotonic()))
            cpu.start()
            results = group.results(2, timeout=duration + 180)
            cpu.stop()
    finally:
        group.terminate()
    sent = next(r for r in results if "events" in r)
    probes = next(r for r in results if "probes" in r)["probes"]
    summary = probes["summary"][0]
    ctx.log(f"{tag}: {sent['events'] / duration:,.0f} events/s; summary p50 {quantile(summary, 0.5) * 1000:.1f} ms")
    return {"started": start, "events": sent["events"], "statuses": sent["statuses"], "errors": sent["errors"],
            "server_cores": cpu.cores, "server_peak_rss_mib": rss.peak_mib, "probes": probes}


def _server_cores(server: ServerProcess, seconds: float) -> float:
    cpu = CpuWindow(server.pid)
    cpu.start()
    time.sleep(seconds)
    return cpu.stop()


def _wait_for_the_cap(server: ServerProcess, reader: str, refusals_before: float, timeout: float) -> None:
    """Until the attacker's connections fill its addresses' slots: refusals start again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _metric(server.url, reader, *_COUNTED["refusals"]) > refusals_before:
            return
        time.sleep(0.2)
    raise RuntimeError("the attack never reached the per-address cap")


def _metric(url: str, reader: str, name: str, label: str | None = None) -> float:
    """A counter from /metrics, summed over its label sets (those with a label of value `label`)."""
    answer = httpx.get(url + "metrics", headers={"Authorization": f"Bearer {reader}"}, timeout=30)
    answer.raise_for_status()
    text = answer.text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name)] in " {" and (label is None or f'="{label}"' in line))


# --------------------------------------------------------------------------- workers


def attacker(spec: dict[str, Any], ready: Ready) -> dict[str, Any]:
    """Process entry: hold `per_address` trickling connections from each address until
    `stop` is set (at most `seconds`), reopening what the server closes; report how many it
    held, once a tick."""
    start = ready()
    end = start + spec["seconds"]
    cpu0 = process_cpu_seconds()
    target = (spec["host"], spec["port"])
    slots: list[tuple[str, socket.socket | None]] = [(a, None) for a in spec["addresses"]
                                                     for _ in range(spec["per_address"])]
    reconnects = failed = 0
    held_samples: list[tuple[float, int]] = []  # (CLOCK_MONOTONIC, connections held)

    def open_one(source: str) -> socket.socket | None:
        nonlocal failed
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(5)
            sock.bind((source, 0))
            sock.connect(target)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: victim\r\nUser-Agent: slowloris\r\n")
            sock.setblocking(False)
            return sock
        except OSError:
            failed += 1
            sock.close()
            return None

    def answered(sock: socket.socket) -> bool:
        try:
            sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return True  # a 408 or 503, or the close

    while time.monotonic() < end and not spec["stop"].is_set():
        tick = time.monotonic()
        held = 0
        for n, (source, sock) in enumerate(slots):
            if sock is not None and not answered(sock):
                try:
                    sock.send(b"X")  # a header name that never ends
                    held += 1
                    continue
                except OSError:
                    pass
            if sock is not None:
                sock.close()
                reconnects += 1
            slots[n] = (source, open_one(source))
        held_samples.append((tick, held))
        time.sleep(max(0.0, ATTACK_TICK_SECONDS - (time.monotonic() - tick)))
    for _, sock in slots:
        if sock is not None:
            sock.close()
    return {"held_samples": held_samples, "reconnects": reconnects, "failed_connects": failed,
            "cpu_seconds": process_cpu_seconds() - cpu0, "seconds": time.monotonic() - start}


def prober(spec: dict[str, Any], ready: Ready) -> dict[str, Any]:
    """Process entry: time the map page and the summary every 0.25 s, and a live WebSocket
    up to its snapshot every second, for `duration` seconds."""
    url = spec["url"]
    credentials = {"Authorization": f"Bearer {spec['token']}"}
    ws_url = url.replace("http://", "ws://") + "api/v1/live"
    probes: dict[str, tuple[list[float], int]] = {"summary": ([], 0), "map": ([], 0), "live": ([], 0)}

    def record(name: str, check: Any) -> None:
        seconds, failed = probes[name]
        began = time.monotonic()
        try:
            check()
            seconds.append(time.monotonic() - began)
        except Exception:
            probes[name] = (seconds, failed + 1)

    def live() -> None:
        with connect(ws_url, open_timeout=30, compression=None, additional_headers=credentials) as ws:
            assert json.loads(ws.recv(timeout=30))["type"] == "snapshot"

    with httpx.Client(base_url=url, timeout=30, headers=credentials) as client:
        start = ready()
        end = start + spec["duration"]
        time.sleep(max(0.0, start - time.monotonic()))
        k = 0
        while time.monotonic() < end:
            record("summary", lambda: client.get("/api/v1/stats/summary").raise_for_status())
            record("map", lambda: client.get("/").raise_for_status())
            if k % 4 == 0:
                record("live", live)
            k += 1
            time.sleep(max(0.0, start + k * 0.25 - time.monotonic()))
    return {"probes": probes}
