"""Benchmarks against a running server: ingest, latency, fan-out, overload.

Each starts its own server subprocess on a fresh data directory (so one cannot skew the
next), drives it from worker processes (benchmarks/load.py) and samples the server's CPU
and memory from /proc.
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import (
    REPO,
    Context,
    CpuWindow,
    Figure,
    RssSampler,
    ServerProcess,
    WorkerGroup,
    memory_kib,
    quantile,
)
from benchmarks.load import receiver, sender
from benchmarks.records import BATCH, Batches, live_event_dicts

INGEST_PATH = "/api/v1/ingest/cowrie"


def _sender_spec(server: Any, token: str, **more: Any) -> dict[str, Any]:
    host, port = server.host_port
    return {"host": host, "port": port, "path": INGEST_PATH, "token": token, **more}


class NaiveIngest:
    """`python -m benchmarks.naive_ingest DIR` as a child process (the ingest baseline)."""

    def __init__(self, data_dir: Path, live_url: str | None = None) -> None:
        live = ["--live", live_url] if live_url is not None else []
        self.process = subprocess.Popen([sys.executable, "-m", "benchmarks.naive_ingest", str(data_dir), *live],
                                        stdout=subprocess.PIPE, cwd=REPO)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode()
        if "listening on " not in line:
            self.process.kill()
            raise RuntimeError(f"naive ingest server did not start: {line!r}")
        self.url = line.rsplit(" ", 1)[1].strip()
        self.pid = self.process.pid

    @property
    def host_port(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("http://").rstrip("/").rsplit(":", 1)
        return host, int(port)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _naive_run(ctx: Context, name: str, specs: list[dict[str, Any]], duration: float) -> dict[str, Any]:
    """The same senders against the naive ingest server: statuses, accepted events/s, CPU, peak RSS."""
    naive = NaiveIngest(ctx.workdir / name)
    group = WorkerGroup()
    try:
        host, port = naive.host_port
        group.spawn(sender, [{**spec, "host": host, "port": port} for spec in specs])
        group.wait_ready(len(specs))
        cpu = CpuWindow(naive.pid)
        with RssSampler(naive.pid) as rss:
            start = group.go()
            time.sleep(max(0.0, start - time.monotonic()))
            cpu.start()
            time.sleep(duration)
            cpu.stop()
            results = group.results(len(specs), timeout=duration + 180)
        alive = naive.alive()
        peak = memory_kib(naive.pid)["VmHWM"] / 1024 if alive else math.nan
    finally:
        group.terminate()
        naive.stop()
    return {"statuses": _statuses(results), "events_per_second": _sum(results, "events") / duration,
            "server_cores": cpu.cores, "peak_rss_mib": peak, "sampled_peak_rss_mib": rss.peak_mib, "survived": alive,
            "answer_seconds": [t for r in results for ts in r.get("answer_seconds", {}).values() for t in ts]}


def _sum(results: list[dict[str, Any]], key: str) -> float:
    return sum(r[key] for r in results)


def _statuses(results: list[dict[str, Any]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in results:
        for status, n in r["statuses"].items():
            out[int(status)] = out.get(int(status), 0) + n
    return out


# --------------------------------------------------------------------------- 1. ingest


def ingest(ctx: Context) -> list[Figure]:
    """Accepted events/s at saturation: batches of 100 cowrie records, back to back.

    60 s: long enough for the store's write-ahead log to pass its checkpoint threshold
    (256 MiB: about 290,000 of these events, 925 bytes of log each) about twice at ~10,000
    events/s, so checkpoints are in the figure."""
    duration = ctx.size(60.0, 0.5)
    processes = ctx.size(2, 1)
    connections = ctx.size(8, 4)
    server, token = ctx.server("ingest")
    group = WorkerGroup()
    profiler = None
    try:
        group.spawn(receiver, [{"ws_url": server.ws_url, "clients": 1, "tag": "hs", "sample_every": 10**9,
                                "listen_seconds": duration + ctx.size(3.0, 0.5), **server.auth}])
        group.spawn(sender, [_sender_spec(server, token, mode="saturate", duration=duration, connections=connections,
                                          tag="hs", seed=100 + n) for n in range(processes)])
        group.wait_ready(processes + 1)
        cpu = CpuWindow(server.pid)
        start = group.go()
        time.sleep(max(0.0, start - time.monotonic()))
        cpu.start()
        if ctx.profile is not None:
            profiler = start_profiler(server.pid, ctx.profile, duration)
        results = group.results(processes + 1, timeout=duration + 120)
        cpu.stop()
        rss = memory_kib(server.pid)
        commits = _metric(server, "honeyatlas_store_commits_total")
    finally:
        group.terminate()
        if profiler is not None:
            profiler.wait(60)
        server.stop()
    received = next(r for r in results if "counts" in r)
    sent = [r for r in results if "counts" not in r]
    events = _sum(sent, "events")
    rate = events / duration
    ctx.capacity_events_per_second = rate
    client_cores = (_sum(sent, "cpu_seconds") + received["cpu_seconds"]) / duration
    naive = _naive_run(ctx, "naive-ingest", [
        {"path": INGEST_PATH, "token": "-", "mode": "saturate", "duration": duration, "connections": connections,
         "tag": "hn", "seed": 100 + n} for n in range(processes)], duration)
    ctx.extra["ingest"] = {"statuses": _statuses(sent), "errors": _sum(sent, "errors"),
                           "live_events_received": received["counts"][0], "events_accepted": events,
                           "server_rss_mib": rss["VmRSS"] / 1024, "processes": processes,
                           "connections_per_process": connections, "duration_seconds": duration,
                           "store_commits": commits, "events_per_commit": events / commits if commits else None,
                           "naive": {k: v for k, v in naive.items() if k != "answer_seconds"}}
    note = f"{processes}x{connections} keep-alive connections, {duration:g} s"
    return [
        Figure("ingest", "accepted events/s (saturation)", rate, "events/s", baseline=naive["events_per_second"],
               target=">= 50000", notes=note + "; baseline: benchmarks/naive_ingest.py, same senders"),
        Figure("ingest", "server CPU at saturation", cpu.cores, "cores", higher_is_better=False,
               notes=f"naive server: {naive['server_cores']:.2f} cores"),
        Figure("ingest", "load-generator CPU", client_cores, "cores", higher_is_better=False,
               notes="senders + 1 live client; must stay below the server's to not be the limit"),
        Figure("ingest", "live hub delivered / accepted",
               received["counts"][0] / _sum(sent, "events_total") if events else math.nan,
               "share", notes="one WebSocket client counting every event"),
    ]


def _metric(server: ServerProcess, name: str) -> float:
    """The sum of a counter over its label sets, from the server's /metrics."""
    text = httpx.get(server.url + "metrics", headers=server.auth, timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name)] in " {")


def start_profiler(pid: int, out: Path, duration: float) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        raise SystemExit(f"--profile needs py-spy next to {sys.executable}: pip install -e '.[bench]'")
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [str(py_spy), "record", "--pid", str(pid), "--duration", str(max(1, int(duration) - 1)),
               "--rate", "200", "--format", "raw", "--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Leaves where a thread waits rather than works (py-spy's idle detection misses these waits
# in C): idle thread-pool workers, and threads parked on a condition.
_IDLE_LEAVES = ("_worker (concurrent/futures/thread.py)", "Condition.wait (threading.py)")


def top_own_time(collapsed: Path, limit: int = 10) -> list[tuple[str, float]]:
    """Functions by own (leaf) share of busy samples, from py-spy's raw collapsed stacks.

    A leaf is the innermost Python frame, so time spent in C called from it (DuckDB's
    INSERT and COMMIT, msgspec, getrandom) is charged to that Python function.
    """
    leaves: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        leaf = stack.rsplit(";", 1)[-1]
        name = leaf.rsplit(":", 1)[0] + ")" if leaf.endswith(")") and ":" in leaf else leaf
        if name in _IDLE_LEAVES:
            continue
        leaves[name] = leaves.get(name, 0) + int(count)
        total += int(count)
    ranked = sorted(leaves.items(), key=lambda kv: kv[1], reverse=True)[:limit]
    return [(name, n / total) for name, n in ranked]


# --------------------------------------------------------------------------- 2. latency


def latency(ctx: Context) -> list[Figure]:
    """POST to WebSocket receipt, per event, at 1,000, 5,000 and 10,000 events/s (open loop)."""
    duration = ctx.size(15.0, 0.5)
    grace = ctx.size(3.0, 0.5)
    runs: dict[int, dict[str, Any]] = {}
    server, token = ctx.server("latency")
    try:
        for rate in (1000, 5000, 10000):  # 5,000: below the ingest capacity, where the knee is
            tag = f"lt{rate}x"
            runs[rate] = _latency_run(server.pid, server.ws_url, duration, grace, _sender_spec(
                server, token, mode="paced", rate=rate, duration=duration, connections=32, tag=tag, worker=0,
                seed=rate), tag, server.auth)
    finally:
        server.stop()
    # The naive path at 1,000 events/s only: its capacity is ~300 events/s, so above that its
    # queue only grows faster.
    naive_rate = 1000
    fanout_proc, fanout_url = _start_naive()
    naive_server = None
    try:
        naive_server = NaiveIngest(ctx.workdir / "naive-latency", live_url=fanout_url + "feed")
        naive = _latency_run(naive_server.pid, fanout_url + "api/v1/live", duration, grace,
                             _sender_spec(naive_server, "", mode="paced", rate=naive_rate, duration=duration,
                                          connections=32, tag="ltnaive", worker=0, seed=naive_rate), "ltnaive")
    finally:
        if naive_server is not None:
            naive_server.stop()
        fanout_proc.terminate()
        fanout_proc.wait(10)
    ctx.extra["latency_naive_1000"] = naive["extra"]
    figures: list[Figure] = []
    for rate, run in runs.items():
        ctx.extra[f"latency_{rate}"] = run["extra"]
        base = naive if rate == naive_rate else None
        figures += [
            Figure("latency", f"p50 at {rate:,} events/s", run["p50"], "ms", higher_is_better=False,
                   baseline=base["p50"] if base else None, notes=run["note"]),
            Figure("latency", f"p99 at {rate:,} events/s", run["p99"], "ms", higher_is_better=False,
                   baseline=base["p99"] if base else None, target="< 300" if rate == 10000 else None,
                   notes="baseline: benchmarks/naive_ingest.py --live + naive_fanout.py (json, row inserts, "
                   "a message per event per client)" if base else ""),
            Figure("latency", f"received / offered at {rate:,} events/s", run["received_share"], "share",
                   baseline=base["received_share"] if base else None, notes=f"HTTP statuses {run['statuses']}"),
        ]
    return figures


def _latency_run(pid: int, ws_url: str, duration: float, grace: float, send_spec: dict[str, Any],
                 tag: str, auth: dict[str, str] | None = None) -> dict[str, Any]:
    """One open-loop run: a paced sender, one receiver timing every marked event."""
    group = WorkerGroup()
    try:
        group.spawn(receiver, [{"ws_url": ws_url, "clients": 1, "tag": tag, "sample_every": 1,
                                "listen_seconds": duration + grace, **(auth or {})}])
        group.spawn(sender, [send_spec])
        group.wait_ready(2)
        cpu = CpuWindow(pid)
        start = group.go()
        time.sleep(max(0.0, start - time.monotonic()))
        cpu.start()
        results = group.results(2, timeout=duration + 120)
        cpu.stop()
    finally:
        group.terminate()
    received = next(r for r in results if "counts" in r)
    sent = next(r for r in results if "counts" not in r)
    lat = received["latencies"]
    accepted = sent["events"]
    return {
        "p50": quantile(lat, 0.5) * 1000 if lat else math.nan,
        "p99": quantile(lat, 0.99) * 1000 if lat else math.nan,
        "received_share": len(lat) / (sent["batches"] * BATCH) if sent["batches"] else math.nan,
        "statuses": sent["statuses"],
        "note": (f"{len(lat)} of {accepted} accepted events timed; sender late by up to {sent['late_max'] * 1000:.0f} "
                 f"ms; server CPU {cpu.cores:.2f} cores"),
        "extra": {"statuses": sent["statuses"], "events_accepted": accepted, "events_received": received["counts"][0],
                  "client_late_max_s": sent["late_max"], "server_cpu_cores": cpu.cores,
                  "sender_cpu_cores": sent["cpu_seconds"] / duration},
    }


# --------------------------------------------------------------------------- 3. fan-out


def fanout(ctx: Context) -> list[Figure]:
    """N live clients at 1,000 events/s: honeyatlas's hub, then the naive server, same receivers."""
    clients = ctx.size(1000, 20)
    rate = 1000
    duration = ctx.size(15.0, 0.5)
    grace = ctx.size(3.0, 0.5)
    receivers = ctx.size(2, 1)
    sample_every = ctx.size(20, 1)
    server, token = ctx.server("fanout")
    try:
        hub = _fanout_run(ctx, server.pid, server.ws_url, clients, receivers, sample_every, duration, grace,
                          _sender_spec(server, token, mode="paced", rate=rate, duration=duration, connections=16,
                                       tag="fh", worker=0, seed=5), "fh", server.auth)
    finally:
        server.stop()
    naive_proc, naive_url = _start_naive()
    try:
        naive = _fanout_run(ctx, naive_proc.pid, naive_url + "api/v1/live", clients, receivers, sample_every, duration,
                            grace, {"mode": "paced", "transport": "ws-feed", "feed_url": naive_url + "feed",
                                    "events": live_event_dicts(BATCH), "rate": rate, "duration": duration,
                                    "tag": "fn", "worker": 0, "seed": 5}, "fn")
    finally:
        naive_proc.terminate()
        naive_proc.wait(10)
    ctx.extra["fanout"] = {"hub": hub, "naive": naive, "clients": clients, "rate": rate, "duration_seconds": duration}
    note = f"{clients} clients, {rate} events/s for {duration:g} s (+{grace:g} s to drain)"
    return [
        Figure("fanout", "events delivered per client per second", hub["per_client_rate"], "events/s",
               baseline=naive["per_client_rate"], target=f">= {rate * 0.99:g}", notes=note),
        Figure("fanout", "worst client's share of events", hub["min_share"], "share", baseline=naive["min_share"],
               target=">= 1", notes="every client must receive every accepted event"),
        Figure("fanout", "server CPU", hub["server_cores"], "cores", baseline=naive["server_cores"],
               target="< 1", higher_is_better=False),
        Figure("fanout", "p99 latency", hub["p99_ms"], "ms", baseline=naive["p99_ms"], target="< 500",
               higher_is_better=False, notes=f"every {sample_every}th client timed"),
        Figure("fanout", "receiver CPU", hub["client_cores"], "cores", higher_is_better=False,
               notes=f"naive run: {naive['client_cores']:.2f} cores"),
    ]


def _start_naive() -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.naive_fanout"], stdout=subprocess.PIPE, cwd=REPO)
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if "listening on " not in line:
        process.kill()
        raise RuntimeError(f"naive fan-out server did not start: {line!r}")
    return process, line.rsplit(" ", 1)[1].strip()


def _fanout_run(ctx: Context, pid: int, ws_url: str, clients: int, receivers: int, sample_every: int, duration: float,
                grace: float, send_spec: dict[str, Any], tag: str, auth: dict[str, str] | None = None
                ) -> dict[str, Any]:
    group = WorkerGroup()
    share = [clients // receivers + (1 if n < clients % receivers else 0) for n in range(receivers)]
    try:
        group.spawn(receiver, [{"ws_url": ws_url, "clients": n, "tag": tag, "sample_every": sample_every,
                                "listen_seconds": duration + grace, **(auth or {})} for n in share])
        group.spawn(sender, [send_spec])
        group.wait_ready(receivers + 1)
        ctx.log(f"fan-out {tag}: {clients} clients connected")
        cpu = CpuWindow(pid)
        start = group.go()
        time.sleep(max(0.0, start - time.monotonic()))
        cpu.start()
        time.sleep(duration)
        cpu.stop()  # CPU while events flow at the target rate
        results = group.results(receivers + 1, timeout=duration + 180)
    finally:
        group.terminate()
    sent = next(r for r in results if "counts" not in r)
    got = [r for r in results if "counts" in r]
    counts = [c for r in got for c in r["counts"]]
    latencies = [x for r in got for x in r["latencies"]]
    accepted = sent["events"]
    return {
        "accepted": accepted,
        "per_client_rate": statistics.fmean(counts) / duration if counts else math.nan,
        "min_share": min(counts) / accepted if counts and accepted else math.nan,
        "server_cores": cpu.cores,
        "p50_ms": quantile(latencies, 0.5) * 1000,
        "p99_ms": quantile(latencies, 0.99) * 1000,
        "dropped_notices": sum(r["dropped"] for r in got),
        "closed_early": sum(r["closed_early"] for r in got),
        "client_cores": (sum(r["cpu_seconds"] for r in got) + sent["cpu_seconds"]) / duration,
        "sender_statuses": sent["statuses"],
    }


# --------------------------------------------------------------------------- 5. overload


# Without an ingest figure in this run (`--only overload`), 10x this is offered.
ASSUMED_CAPACITY = 7_000.0


def overload(ctx: Context) -> list[Figure]:
    """Offer 10x capacity open loop: refusals, memory, survival, time to recover."""
    duration = ctx.size(15.0, 0.5)
    processes = 2
    connections = ctx.size(512, 16)
    capacity = ctx.capacity_events_per_second or ASSUMED_CAPACITY
    rate = 10 * capacity
    server, token = ctx.server("overload")
    group = WorkerGroup()
    profiler = None
    try:
        group.spawn(sender, [_sender_spec(server, token, mode="flood", rate=rate / processes, duration=duration,
                                          connections=connections, tag="ov", seed=300 + n) for n in range(processes)])
        group.wait_ready(processes)
        cpu = CpuWindow(server.pid)
        with RssSampler(server.pid) as rss:
            start = group.go()
            time.sleep(max(0.0, start - time.monotonic()))
            cpu.start()
            if ctx.profile is not None:
                profiler = start_profiler(server.pid, ctx.profile.with_name(ctx.profile.name + ".overload"), duration)
            time.sleep(duration)
            stopped = time.monotonic()
            cpu.stop()
            results = group.results(processes, timeout=duration + 120)
            recovery = _recovery_seconds(server.url, token, stopped, timeout=ctx.size(120.0, 30.0))
        peak = memory_kib(server.pid)["VmHWM"] / 1024 if server.alive() else math.nan
        alive = server.alive()
    finally:
        group.terminate()
        if profiler is not None:
            profiler.wait(60)
        exit_code = server.stop()
    naive = _naive_run(ctx, "naive-overload", [
        {"path": INGEST_PATH, "token": "-", "mode": "flood", "rate": rate / processes, "duration": duration,
         "connections": connections, "tag": "on", "seed": 300 + n} for n in range(processes)], duration)
    statuses = _statuses(results)
    answered = sum(statuses.values())
    scheduled = _sum(results, "scheduled")
    sent = scheduled - _sum(results, "unsent")
    answers = {status: [t for r in results for t in r["answer_seconds"].get(str(status), [])] for status in statuses}
    ctx.extra["overload"] = {
        "statuses": statuses, "errors": _sum(results, "errors"), "exit_code": exit_code,
        "sampled_peak_rss_mib": rss.peak_mib, "capacity_events_per_second": capacity,
        "capacity_measured": ctx.capacity_events_per_second is not None, "server_cpu_cores": cpu.cores,
        "connections": processes * connections, "client_cpu_cores": _sum(results, "cpu_seconds") / duration,
        "batches_scheduled": scheduled, "batches_unsent": _sum(results, "unsent"),
        "answer_ms_p50_p99": {status: (quantile(t, 0.5) * 1000, quantile(t, 0.99) * 1000) for status, t in answers.items()},
        "naive": {**{k: v for k, v in naive.items() if k != "answer_seconds"},
                  "answer_ms_p50_p99": (quantile(naive["answer_seconds"], 0.5) * 1000,
                                        quantile(naive["answer_seconds"], 0.99) * 1000)},
    }
    basis = "the ingest capacity measured in this run" if ctx.capacity_events_per_second else \
        f"an assumed capacity of {ASSUMED_CAPACITY:,.0f} events/s (no ingest figure in this run)"
    return [
        Figure("overload", "offered events/s (open loop)", scheduled * BATCH / duration, "events/s",
               notes=f"10x {basis}; {processes}x{connections} connections"),
        Figure("overload", "sent / offered", sent / scheduled if scheduled else math.nan, "share",
               notes="a batch due while every connection waited for an answer was not sent"),
        Figure("overload", "share answered 429", statuses.get(429, 0) / answered if answered else math.nan, "share",
               notes=f"statuses {statuses}, connection errors {_sum(results, 'errors')}"),
        Figure("overload", "accepted events/s under overload", _sum(results, "events") / duration, "events/s",
               baseline=naive["events_per_second"],
               notes=f"capacity {capacity:,.0f} events/s; baseline: the naive server under the same flood "
                     f"(statuses {naive['statuses']}, never 429)"),
        *(Figure("overload", f"p99 time to a {status}", quantile(answers[status], 0.99) * 1000, "ms",
                 higher_is_better=False, notes=f"from the scheduled send time; p50 {quantile(answers[status], 0.5) * 1000:.0f} ms")
          for status in (200, 429) if answers.get(status)),
        Figure("overload", "peak RSS (VmHWM)", peak, "MiB", baseline=naive["peak_rss_mib"], target="< 1024",
               higher_is_better=False),
        Figure("overload", "server survived", 1.0 if alive else 0.0, "bool", target=">= 1",
               notes=f"exit code after SIGINT: {exit_code}"),
        Figure("overload", "recovery after load stops", recovery, "s", higher_is_better=False,
               notes="until the store queue is empty and a new batch is answered 200"),
    ]


def _recovery_seconds(url: str, token: str, stopped: float, timeout: float) -> float:
    body = Batches(seed=9).prebuilt(1, "rc")[0]
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() - stopped < timeout:
            try:
                pending = client.get("api/v1/health").json()["store"]["pending_events"]
                if pending == 0 and client.post(INGEST_PATH, content=body, headers=headers).status_code == 200:
                    return time.monotonic() - stopped
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    return math.inf
