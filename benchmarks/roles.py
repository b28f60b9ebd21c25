"""The cluster roles measured: ingest alone, worker alone, 1+1 and 2+2 against `--role all`.

Every scenario gets a fresh NATS server (JetStream with its defaults, its own store
directory) and a fresh PostgreSQL database on one server started for the whole benchmark
(tests/engines: Debian's PostgreSQL on a free port, with fsync and synchronous commits on,
unlike the tests: DuckDB syncs its commits in the `all` process too); the sensor is registered with
`honeyatlas sensor add --config cluster.toml` and each role runs as an operator runs it,
`python -m honeyatlas serve --config cluster.toml --role ROLE`, in its own data directory.
The load is the ingest benchmark's (2 sender processes x 8 keep-alive connections, batches
of 100 cowrie records back to back), each request with its own Idempotency-Key, as the
forward agent sends them; the `all` process (DuckDB) gets the same load in the same run and
every aggregate is reported as a ratio against it.

- ingest alone: no worker runs, JetStream absorbs; accepted events/s and the ingest CPU.
- worker alone: the stream the ingest-alone run filled (its ingest stopped), one worker
  started; the drain into PostgreSQL timed from the worker's "serving" line until the
  events table holds every accepted event; the worker's and PostgreSQL's CPU.
- 1+1 and 2+2: accepted events/s from the senders, stored events/s from the events table
  (its count at the start and the end of the window). 2+2: the ingest processes share one
  port with `--reuse-port` (the kernel spreads the 16 connections), the workers split the
  partitions with `--worker-index`/`--workers`.
- the ingest hot path: the stage timings of benchmarks/stages.py (decode, record context,
  cowrie adapter, GeoIP, the bus batch encoding) plus the publish measured here: the CPU of
  this process per event while it publishes prepared EventBatches through `NatsBus` to a
  real NATS server, 16 batches in flight (the senders' connections), as `BusSink` does.

On two cores every process of a scenario (senders, roles, NATS, PostgreSQL) shares the same
two cores, so the aggregates say what one small host does, not how the roles scale.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import stages
from benchmarks.harness import Context, CpuWindow, Figure, ServerProcess, WorkerGroup, add_sensor, cpu_seconds
from benchmarks.live_server import _IDLE_LEAVES, start_profiler
from benchmarks.load import sender
from benchmarks.records import BATCH, geolocated_events

INGEST_PATH = "/api/v1/ingest/cowrie"
HOT_PATH_TARGET_US = 40.0  # issue 11: 25,000 events/s per ingest process


# --------------------------------------------------------------------------- engines


def _postgres_pids(port: int) -> list[int]:
    """The postmaster listening on `port` and its children (one backend per connection)."""
    root = None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"/postgres") and b"-p" in args and str(port).encode() in args:
            root = int(proc.name)
            break
    if root is None:
        return []
    pids = [root]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if int((proc / "stat").read_bytes().rsplit(b")", 1)[1].split()[1]) == root:
                    pids.append(int(proc.name))
            except (OSError, IndexError, ValueError):
                continue
    return pids


class GroupCpu:
    """CPU cores of a set of processes (found again at `stop`, so backends that came and
    went in between are missed: PostgreSQL's live as long as their connection, the roles')."""

    def __init__(self, find: Callable[[], list[int]]) -> None:
        self._find = find
        self._t0 = 0.0
        self._c0: dict[int, float] = {}
        self.cores = math.nan

    @staticmethod
    def _cpu(pids: list[int]) -> dict[int, float]:
        out = {}
        for pid in pids:
            with contextlib.suppress(OSError):
                out[pid] = cpu_seconds(pid)
        return out

    def start(self) -> None:
        self._t0, self._c0 = time.monotonic(), self._cpu(self._find())

    def stop(self) -> float:
        elapsed = time.monotonic() - self._t0
        now = self._cpu(self._find())
        used = sum(c - self._c0.get(pid, 0.0) for pid, c in now.items())
        self.cores = used / elapsed if elapsed > 0 else math.nan
        return self.cores


@dataclass
class Scenario:
    """One cluster: a NATS server, a database, a config file, a registered sensor, its roles."""

    name: str
    root: Path
    database_url: str
    postgres_port: int
    nats: Any  # tests.engines.nats.NatsServer
    config_file: Path
    token: str = ""
    processes: list[ServerProcess] = field(default_factory=list)

    def role(self, role: str, n: int, *args: str, port: int = 0) -> ServerProcess:
        return self.roles([(role, n, list(args), port)])[0]

    def roles(self, wanted: list[tuple[str, int, list[str], int]]) -> list[ServerProcess]:
        """Start (role, n, args, port) processes together; return once every one serves."""
        started = [ServerProcess(self.root / f"{role}{n}", config_file=self.config_file, port=port,
                                 args=["--role", role, *args]).launch() for role, n, args, port in wanted]
        self.processes += started
        return [process.wait_ready() for process in started]

    def stored(self) -> int:
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as con:
            row = con.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0

    def engines_cpu(self) -> tuple[GroupCpu, GroupCpu]:
        nats_pid = self.nats._process.pid if self.nats._process is not None else 0
        return GroupCpu(lambda: [nats_pid] if nats_pid else []), GroupCpu(lambda: _postgres_pids(self.postgres_port))


@contextlib.contextmanager
def scenario(ctx: Context, postgres: Any, name: str) -> Iterator[Scenario]:
    from tests.engines.nats import NatsServer

    from honeyatlas.cluster import free_port, nats_binary

    root = ctx.workdir / name
    nats_dir = root / "nats"
    nats_dir.mkdir(parents=True)
    nats = NatsServer(nats_binary(), nats_dir, free_port())
    nats.start()
    database_url = postgres.new_database(f"bench_{name.replace('-', '_')}")
    config_file = root / "cluster.toml"
    config_file.write_text(
        f'[storage]\nbackend = "postgresql"\nurl = "{database_url}"\ndata_dir = "{root / "data"}"\n'
        f'[bus]\nurl = "{nats.url}"\npartitions = 8\n'
    )
    current = Scenario(name, root, database_url, postgres.port, nats, config_file)
    try:
        current.token = add_sensor(root / "cli", "bench", config_file=config_file)
        yield current
    finally:
        for process in current.processes:
            process.stop()
        nats.kill()
        shutil.rmtree(nats_dir, ignore_errors=True)


# --------------------------------------------------------------------------- load


@dataclass
class Window:
    accepted: float  # events answered 200 inside the window
    accepted_total: float  # and those answered just after it (still in the stream)
    seconds: float
    cores: dict[str, float]
    statuses: dict[int, int]
    errors: int
    sender_cores: float
    stored_delta: int | None = None
    load_average: float = math.nan  # 1-minute, at the end of the window: other work on the machine shows here

    @property
    def accepted_per_second(self) -> float:
        return self.accepted / self.seconds

    @property
    def stored_per_second(self) -> float:
        return math.nan if self.stored_delta is None else self.stored_delta / self.seconds


def saturate(ctx: Context, targets: list[tuple[str, int]], token: str, tag: str,
             watch: dict[str, CpuWindow | GroupCpu], stored: Callable[[], int] | None = None) -> Window:
    """The ingest benchmark's senders against `targets` (split between them) for the window."""
    duration = ctx.size(30.0, 0.5)
    processes = ctx.size(2, 1)
    connections = ctx.size(8, 4)
    group = WorkerGroup()
    try:
        group.spawn(sender, [
            {"host": targets[n % len(targets)][0], "port": targets[n % len(targets)][1], "path": INGEST_PATH,
             "token": token, "mode": "saturate", "duration": duration, "connections": connections, "tag": tag,
             "seed": 300 + n, "idempotency": True}
            for n in range(processes)])
        group.wait_ready(processes)
        start = group.go()
        time.sleep(max(0.0, start - time.monotonic()))
        for window in watch.values():
            window.start()
        stored0 = stored() if stored is not None else None
        time.sleep(max(0.0, start + duration - time.monotonic()))
        for window in watch.values():
            window.stop()
        stored1 = stored() if stored is not None else None
        load_average = os.getloadavg()[0]
        results = group.results(processes, timeout=duration + 120)
    finally:
        group.terminate()
    statuses: dict[int, int] = {}
    for r in results:
        for status, n in r["statuses"].items():
            statuses[int(status)] = statuses.get(int(status), 0) + n
    return Window(
        accepted=sum(r["events"] for r in results), accepted_total=sum(r["events_total"] for r in results),
        seconds=duration, cores={name: w.cores for name, w in watch.items()}, statuses=statuses,
        errors=sum(r["errors"] for r in results), sender_cores=sum(r["cpu_seconds"] for r in results) / duration,
        stored_delta=None if stored0 is None or stored1 is None else stored1 - stored0,
        load_average=load_average,
    )


def cpu_us_per_event(window: Window) -> float:
    """CPU of every process of the scenario per event: ingest and NATS per accepted event,
    workers and PostgreSQL per stored one (a backlog builds when they differ). Unlike the
    rates, this hardly depends on how much of the machine other work leaves to the run. A
    process with no events in the window (only in a smoke run's half second) adds nothing."""
    total = 0.0
    for name, used in window.cores.items():
        rate = window.accepted_per_second if name.startswith(("ingest", "nats", "all")) else window.stored_per_second
        if rate > 0:
            total += used / rate * 1e6
    return total


# --------------------------------------------------------------------------- scenarios


def _all_process(ctx: Context) -> Window:
    server, token = ctx.server("roles-all")
    try:
        return saturate(ctx, [server.host_port], token, "ra", {"all": CpuWindow(server.pid)})
    finally:
        server.stop()


def _ingest_then_worker(ctx: Context, postgres: Any) -> tuple[Window, dict[str, Any]]:
    """Ingest alone into JetStream, then one worker alone draining what it accepted."""
    with scenario(ctx, postgres, "roles-alone") as cluster:
        ingest = cluster.role("ingest", 0)
        nats_cpu, _ = cluster.engines_cpu()
        profiler, profile = None, None
        if ctx.profile is not None:  # the whole window: py-spy stops by itself
            profile = ctx.profile.with_name(f"{ctx.profile.stem}-ingest-role{ctx.profile.suffix}")
            profiler = start_profiler(ingest.pid, profile, ctx.size(30.0, 0.5) + 0.3)
        alone = saturate(ctx, [ingest.host_port], cluster.token, "ri",
                         {"ingest": CpuWindow(ingest.pid), "nats": nats_cpu})
        if profiler is not None and profile is not None:
            profiler.wait(60)
            ctx.extra["roles_ingest_profile"] = {"file": str(profile), "inclusive_shares": where_ingest_time_goes(profile)}
        ingest.stop()
        expected = int(alone.accepted_total)
        began = time.monotonic()
        worker = cluster.role("worker", 0)
        ready = time.monotonic()
        worker_cpu, (_, pg_cpu) = CpuWindow(worker.pid), cluster.engines_cpu()
        worker_cpu.start()
        pg_cpu.start()
        stored_at_ready = cluster.stored()
        deadline = ready + ctx.size(300.0, 30.0)
        stored, last_change, last_count = stored_at_ready, ready, stored_at_ready
        while stored < expected and time.monotonic() < deadline and time.monotonic() - last_change < 10:
            time.sleep(ctx.size(0.5, 0.1))
            stored = cluster.stored()
            if stored != last_count:
                last_change, last_count = time.monotonic(), stored
        finished = last_change if stored < expected else time.monotonic()
        worker_cpu.stop()
        pg_cpu.stop()
        drain = {
            "expected_events": expected, "stored_events": stored, "stored_before_ready": stored_at_ready,
            "worker_start_seconds": ready - began, "drain_seconds": finished - ready,
            "events_per_second": (stored - stored_at_ready) / max(finished - ready, 1e-9),
            "worker_cores": worker_cpu.cores, "postgres_cores": pg_cpu.cores, "complete": stored >= expected,
        }
        return alone, drain


def _aggregate(ctx: Context, postgres: Any, ingests: int, workers: int) -> Window:
    from honeyatlas.cluster import free_port

    with scenario(ctx, postgres, f"roles-{ingests}x{workers}") as cluster:
        port = free_port() if ingests > 1 else 0
        shared = ["--reuse-port"] if ingests > 1 else []
        started = cluster.roles([("ingest", n, shared, port) for n in range(ingests)]
                                + [("worker", n, ["--worker-index", str(n), "--workers", str(workers)], 0)
                                   for n in range(workers)])
        ingest, worker = started[:ingests], started[ingests:]
        nats_cpu, pg_cpu = cluster.engines_cpu()
        watch: dict[str, CpuWindow | GroupCpu] = {f"ingest{n}": CpuWindow(p.pid) for n, p in enumerate(ingest)}
        watch |= {f"worker{n}": CpuWindow(p.pid) for n, p in enumerate(worker)}
        watch |= {"nats": nats_cpu, "postgres": pg_cpu}
        return saturate(ctx, [ingest[0].host_port], cluster.token, f"r{ingests}", watch, stored=cluster.stored)


def _publish_cost(ctx: Context) -> dict[str, float]:
    """CPU of this process per event while it publishes EventBatches of 100 through NatsBus."""
    from tests.engines.nats import NatsServer

    from honeyatlas.bus import EventBatch, publish_batch
    from honeyatlas.bus.nats import NatsBus
    from honeyatlas.cluster import free_port, nats_binary
    from honeyatlas.config import BusConfig
    from honeyatlas.metrics import Metrics

    count = ctx.size(50_000, 2_000)
    events = geolocated_events(count)
    batches = [EventBatch(source="http", sensor="bench", events=events[i : i + BATCH], dead_letters=[])
               for i in range(0, len(events), BATCH)]
    store = ctx.workdir / "roles-publish"
    store.mkdir(parents=True)
    nats = NatsServer(nats_binary(), store, free_port())
    nats.start()

    async def run() -> tuple[float, float, float]:
        bus = NatsBus(BusConfig(url=nats.url, partitions=8), metrics=Metrics(), name="bench-publish")
        await bus.start()
        try:
            nats_window = CpuWindow(nats._process.pid)  # type: ignore[union-attr]
            limit = asyncio.Semaphore(16)  # the senders' 16 connections: at most 16 batches in flight

            async def one(n: int, batch: EventBatch) -> None:
                async with limit:
                    await publish_batch(bus, batch, f"k{n}")

            nats_window.start()
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(one(n, b) for n, b in enumerate(batches)))
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            nats_window.stop()
            return cpu, wall, nats_window.cores * wall
        finally:
            await bus.stop()

    try:
        cpu, wall, nats_seconds = asyncio.run(run())
    finally:
        nats.kill()
        shutil.rmtree(store, ignore_errors=True)
    return {"events": len(events), "us_per_event": cpu / len(events) * 1e6, "events_per_second": len(events) / wall,
            "nats_server_us_per_event": nats_seconds / len(events) * 1e6}


# Where the ingest process's CPU goes, from py-spy's collapsed stacks: each sample is charged
# to the first of these found walking from its innermost frame outwards, so the adapter's
# time is the adapter's even though the HTTP route is below it on the stack, and a socket
# write is charged to whoever wrote (uvicorn's answer, nats-py's flusher).
_INGEST_PARTS = (
    ("cowrie adapter", ("honeyatlas/adapters/",)),
    ("GeoIP", ("honeyatlas/transforms/geolocate", "honeyatlas/enrichment/geoip", "maxminddb/")),
    ("publish (bus + nats-py)", ("honeyatlas/bus/", "nats/")),
    ("framing + decode", ("honeyatlas/sources/framing",)),
    ("idempotency keys (SQLite)", ("honeyatlas/sources/idempotency",)),
    ("receipt look-up (PostgreSQL)", ("honeyatlas/store/", "psycopg/", "psycopg_pool/")),
    ("HTTP (h11, uvicorn, Litestar)", ("h11/", "uvicorn/", "litestar/", "anyio/")),
    ("pipeline + ingest route", ("honeyatlas/pipeline", "honeyatlas/sources/http", "honeyatlas/web/")),
)
_LOOP_PART = "event loop (asyncio, selectors), nothing more specific on the stack"


def where_ingest_time_goes(collapsed: Path) -> dict[str, float]:
    """Share of busy samples per part of the ingest process (see _INGEST_PARTS)."""
    counts: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        if re.sub(r":\d+\)$", ")", stack.rsplit(";", 1)[-1]) in _IDLE_LEAVES:  # waiting for work, not working
            continue
        n = int(count)
        total += n
        part = ""
        for frame in reversed(stack.split(";")):
            part = next((name for name, needles in _INGEST_PARTS if any(x in frame for x in needles)), "")
            if part:
                break
        part = part or _LOOP_PART  # every stack starts in the event loop
        counts[part] = counts.get(part, 0) + n
    return {name: n / total for name, n in sorted(counts.items(), key=lambda kv: -kv[1])} if total else {}


# --------------------------------------------------------------------------- the benchmark


def roles(ctx: Context) -> list[Figure]:
    from tests.engines.postgres import running_postgres

    ctx.log("stage timings (hot path)")
    timings = stages.measure(ctx)
    hot = {name: timings[name] for name in stages.HOT_PATH}
    ctx.log("publish through NatsBus")
    publish = _publish_cost(ctx)
    ctx.log("all (DuckDB)")
    every = _all_process(ctx)
    with running_postgres(durable=True) as postgres:  # fsync on: the workers pay what production pays
        ctx.log("ingest alone, then worker alone")
        alone, drain = _ingest_then_worker(ctx, postgres)
        ctx.log("1 ingest + 1 worker")
        one = _aggregate(ctx, postgres, 1, 1)
        ctx.log("2 ingest + 2 workers")
        two = _aggregate(ctx, postgres, 2, 2)

    # The publish figure includes its own encoding; the hot path counts the encoding once.
    publish_client_us = max(0.0, publish["us_per_event"] - hot[stages.BUS_BATCH])
    hot_total = sum(hot.values()) + publish_client_us
    base = every.accepted_per_second
    ingest_us = alone.cores["ingest"] / alone.accepted_per_second * 1e6 if alone.accepted else math.nan
    ctx.extra["roles"] = {
        "stages_us_per_event": hot, "publish": publish, "hot_path_us_per_event": hot_total,
        "windows": {name: {**w.__dict__, "accepted_per_second": w.accepted_per_second,
                           "stored_per_second": w.stored_per_second, "cpu_us_per_event": cpu_us_per_event(w)}
                    for name, w in (("all", every), ("ingest_alone", alone), ("1x1", one), ("2x2", two))},
        "worker_alone": drain,
    }

    all_us = cpu_us_per_event(every)
    worker_us = drain["worker_cores"] / drain["events_per_second"] * 1e6 if drain["events_per_second"] else math.nan
    postgres_us = drain["postgres_cores"] / drain["events_per_second"] * 1e6 if drain["events_per_second"] else math.nan

    def ratio_note(value: float) -> str:
        return f"{value / base:.2f}x the all process ({base:,.0f} events/s, same run)" if base else ""

    def cores(window: Window) -> str:
        return ", ".join(f"{name} {c:.2f}" for name, c in window.cores.items())

    figures = [
        Figure("roles", "all (DuckDB): accepted = stored events/s", base, "events/s",
               notes=f"cores: {cores(every)}; senders {every.sender_cores:.2f}; load average {every.load_average:.1f}"),
        Figure("roles", "all (DuckDB): process CPU per event", all_us, "us/event", higher_is_better=False),
        Figure("roles", "ingest alone: accepted events/s", alone.accepted_per_second, "events/s", baseline=base,
               target=">= 25000", notes=f"JetStream absorbs, no worker; cores: {cores(alone)}"),
        Figure("roles", "ingest alone: process CPU per event", ingest_us, "us/event", higher_is_better=False,
               notes="everything the ingest process does: HTTP, auth, idempotency, framing, adapter, GeoIP, publish"),
        Figure("roles", "worker alone: drained events/s into PostgreSQL", drain["events_per_second"], "events/s",
               baseline=base, notes=f"{drain['stored_events'] - drain['stored_before_ready']:,} events in "
                                     f"{drain['drain_seconds']:.1f} s; worker {drain['worker_cores']:.2f} cores, "
                                     f"PostgreSQL {drain['postgres_cores']:.2f}"),
        Figure("roles", "worker alone: process CPU per event", worker_us, "us/event", higher_is_better=False,
               notes=f"PostgreSQL spent {postgres_us:.1f} us more per event"),
        Figure("roles", "1 ingest + 1 worker: accepted events/s", one.accepted_per_second, "events/s",
               baseline=base, notes=f"cores: {cores(one)}"),
        Figure("roles", "1 ingest + 1 worker: stored events/s", one.stored_per_second, "events/s", baseline=base,
               notes=ratio_note(one.stored_per_second)),
        Figure("roles", "1 ingest + 1 worker: CPU per event, every process", cpu_us_per_event(one), "us/event",
               baseline=all_us, higher_is_better=False, notes="ingest, worker, NATS and PostgreSQL"),
        Figure("roles", "2 ingest + 2 workers: accepted events/s", two.accepted_per_second, "events/s",
               baseline=base, notes=f"one port, --reuse-port; cores: {cores(two)}"),
        Figure("roles", "2 ingest + 2 workers: stored events/s", two.stored_per_second, "events/s", baseline=base,
               notes=ratio_note(two.stored_per_second)),
        Figure("roles", "2 ingest + 2 workers: CPU per event, every process", cpu_us_per_event(two), "us/event",
               baseline=all_us, higher_is_better=False, notes="ingest, worker, NATS and PostgreSQL"),
    ]
    figures += [Figure("roles", f"hot path: {name}", us, "us/event", higher_is_better=False) for name, us in hot.items()]
    figures += [
        Figure("roles", "hot path: publish (NatsBus client, beyond the encoding)", publish_client_us, "us/event",
               higher_is_better=False, notes=f"{publish['us_per_event']:.1f} us with the encoding; the NATS server "
                                             f"spent {publish['nats_server_us_per_event']:.1f} us more"),
        Figure("roles", "hot path: sum (decode, adapter, GeoIP, publish)", hot_total, "us/event",
               higher_is_better=False, target=f"<= {HOT_PATH_TARGET_US:g}",
               notes=f"{1e6 / hot_total:,.0f} events/s on one core for the hot path alone"),
    ]
    return figures
