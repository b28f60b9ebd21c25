"""Crash test at scale (issue 14): many clients, Idempotency-Keys, the server killed with SIGKILL.

`run_crash` is the whole experiment and its audit. Eight client threads post batches of the
real cowrie sample to `python -m honeyatlas serve` (a child process, as an operator starts
it), each batch with its own `Idempotency-Key` and a marker in every record's session
(`<key>/<cowrie session>`). A client retries the same bytes with the same key after a
connection error, a timeout, a 409, a 429 or a 5xx (after Retry-After when there is one).
When a batch's first attempt ends in a connection error, the client instead gives the batch
up with a seeded probability, as a client that crashed would, so some batches are never
acknowledged. Meanwhile the killer waits until the server has acknowledged a batch, lets it
run for a seeded random moment, SIGKILLs it and at once starts it again on the same data
directory and port.

Afterwards the server is stopped cleanly and the store is read directly (DuckDB's file or
the PostgreSQL database): every acknowledged batch is stored exactly once, every batch never
acknowledged is stored whole or not at all, no event id is stored twice and no event carries
a marker that was never sent. `tests/test_crash_many_clients.py` runs it reduced (3 kills) on
both backends; `crash` below runs the full version (>= 10 kills) for the figures in
docs/reliability.md ("Crash test").

On PostgreSQL the events table is keyed by (ts, id) and a batch stored twice would keep its
derived ids, so the duplicate would be absorbed there; DuckDB's events table has no key, so
there a second copy of a batch shows as extra rows: the DuckDB run is the sharp one.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import signal
import socket
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tests.waiting import wait_until

from benchmarks.harness import Context, Figure, ServerProcess, add_sensor
from benchmarks.records import sample_records

INGEST_PATH = "/api/v1/ingest/cowrie"
SENSOR = "crash-01"
_RETRY_STATUSES = {409, 429, 502, 503, 504}  # and 500, which is also a defect


@dataclass
class Batch:
    key: str  # the Idempotency-Key, also the marker in every record's session
    attempts: int = 0
    acknowledged: bool = False
    abandoned: bool = False
    replayed: bool = False  # answered `Idempotent-Replayed`: an earlier attempt was stored
    events: int | None = None  # the acknowledged answer's event count


@dataclass
class Kill:
    at: float  # monotonic, when SIGKILL was sent
    serving: float  # monotonic, when the restarted server printed "serving on"
    first_ack: float | None = None  # monotonic, the first batch acknowledged after `serving`
    acknowledged_before: int = 0  # batches acknowledged before the kill: the store's size then
    killed_while_starting: bool = False  # its restart was killed once more before it served

    @property
    def restart_seconds(self) -> float:
        return self.serving - self.at

    @property
    def recovery_seconds(self) -> float:
        return math.nan if self.first_ack is None else self.first_ack - self.at


@dataclass
class Audit:
    """What the store holds, against what the clients were told."""

    stored_events: int
    events_per_batch: int  # what an acknowledged answer reports (the largest, if they differ)
    answered_counts: list[int]  # every event count the acknowledged answers gave: one value
    lost_acknowledged: list[str]  # acknowledged, not (fully) stored
    partial: list[str]  # stored in part: neither whole nor absent
    duplicated: list[str]  # batches with more events stored than a whole copy
    duplicate_ids: int  # event ids stored more than once
    unknown_markers: list[str]  # stored, never sent
    abandoned_stored: int  # never acknowledged, stored once (committed before a kill)

    @property
    def defects(self) -> list[str]:
        found = []
        if len(self.answered_counts) > 1:
            found.append(f"acknowledged answers disagree on a batch's event count: {self.answered_counts}")
        for name in ("lost_acknowledged", "partial", "duplicated", "unknown_markers"):
            values = getattr(self, name)
            if values:
                found.append(f"{len(values)} {name.replace('_', ' ')} batches, e.g. {values[:3]}")
        if self.duplicate_ids:
            found.append(f"{self.duplicate_ids} event ids stored more than once")
        return found


@dataclass
class CrashRun:
    seed: int
    backend: str
    kills: list[Kill]  # kills of a serving server, each with its restart
    kills_while_starting: int  # more kills, of a restarted server before it served
    batches: list[Batch]
    statuses: Counter[int]  # every answer the clients got, by status
    unexpected: list[str]  # answers no client should ever get (a 500, a 4xx), with their body
    seconds: float
    first_start_seconds: float  # the first start, on an empty store: what any start costs here
    audit: Audit | None = None

    @property
    def acknowledged(self) -> list[Batch]:
        return [b for b in self.batches if b.acknowledged]

    def summary(self) -> dict[str, Any]:
        once = [k for k in self.kills if not k.killed_while_starting]  # one start each: comparable
        restarts = [k.restart_seconds for k in once]
        recoveries = [k.recovery_seconds for k in once]
        audit = self.audit
        return {
            "seed": self.seed, "backend": self.backend, "kills": len(self.kills),
            "kills_while_starting": self.kills_while_starting, "seconds": round(self.seconds, 1),
            "batches_sent": len(self.batches),
            "acknowledged": len(self.acknowledged),
            "acknowledged_after_retry": sum(b.attempts > 1 for b in self.acknowledged),
            "acknowledged_as_replay": sum(b.replayed for b in self.acknowledged),
            "abandoned": sum(b.abandoned for b in self.batches),
            "abandoned_stored": audit.abandoned_stored if audit else None,
            "attempts": sum(b.attempts for b in self.batches),
            "answers": dict(sorted(self.statuses.items())),
            "stored_events": audit.stored_events if audit else None,
            "events_per_batch": audit.events_per_batch if audit else None,
            "duplicate_ids": audit.duplicate_ids if audit else None,
            "defects": (audit.defects if audit else []) + self.unexpected[:5],
            "first_start_seconds": round(self.first_start_seconds, 2),
            "restart_seconds": _spread(restarts),
            "recovery_seconds": _spread(recoveries),
            "restarts": [(k.acknowledged_before, round(k.restart_seconds, 2), k.killed_while_starting)
                         for k in self.kills],
        }


def _spread(values: list[float]) -> dict[str, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"min": math.nan, "median": math.nan, "max": math.nan}
    return {"min": round(min(finite), 3), "median": round(statistics.median(finite), 3), "max": round(max(finite), 3)}


def batch_body(key: str, template: list[dict[str, Any]]) -> bytes:
    """The template's records as NDJSON, each session prefixed with the batch's key."""
    return b"".join(
        json.dumps({**record, "session": f"{key}/{record.get('session', '')}"}).encode() + b"\n"
        for record in template
    )


class Client(threading.Thread):
    """Posts batch after batch until told to stop; each batch until acknowledged or given up.

    An impatient client (`read_timeout` well under a loaded server's answer time) sends its
    retry while the first attempt may still be running: the server must answer 409 and
    then the stored answer, never store the batch twice."""

    def __init__(self, index: int, url: str, token: str, seed: int, template: list[dict[str, Any]],
                 give_up_probability: float, stop: threading.Event, acks: list[float],
                 unexpected: list[str], read_timeout: float) -> None:
        super().__init__(name=f"crash-client-{index}", daemon=True)
        self.index = index
        self.url = url
        self.token = token
        self.seed = seed
        self.rng = random.Random(f"{seed}-client-{index}")
        self.template = template
        self.give_up = give_up_probability
        self.stop = stop
        self.acks = acks
        self.unexpected = unexpected
        self.read_timeout = read_timeout
        self.batches: list[Batch] = []
        self.statuses: Counter[int] = Counter()

    def run(self) -> None:
        timeout = httpx.Timeout(self.read_timeout, connect=5.0)
        with httpx.Client(base_url=self.url, timeout=timeout) as http:
            while not self.stop.is_set():
                batch = Batch(key=f"s{self.seed}-c{self.index}-b{len(self.batches):05d}")
                self.batches.append(batch)
                self._deliver(http, batch)

    def _deliver(self, http: httpx.Client, batch: Batch) -> None:
        body = batch_body(batch.key, self.template)
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": batch.key,
                   "Content-Type": "application/x-ndjson"}
        backoff = 0.05
        while True:
            batch.attempts += 1
            try:
                response = http.post(INGEST_PATH, content=body, headers=headers)
            except httpx.TransportError:
                if batch.attempts == 1 and self.rng.random() < self.give_up:
                    batch.abandoned = True  # as a client that crashed; it comes back a moment later
                    time.sleep(self.rng.uniform(0.1, 0.5))
                    return
                time.sleep(backoff * self.rng.uniform(0.5, 1.0))
                backoff = min(backoff * 2, 1.0)
                continue
            self.statuses[response.status_code] += 1
            if response.status_code == 200:
                answer = response.json()
                batch.acknowledged = True
                batch.replayed = response.headers.get("Idempotent-Replayed") == "true"
                batch.events = int(answer["events"])
                if answer["rejected"]:
                    self.unexpected.append(f"{batch.key}: records rejected: {answer['rejected'][:3]}")
                self.acks.append(time.monotonic())
                return
            if response.status_code not in _RETRY_STATUSES:
                self.unexpected.append(f"{batch.key}: HTTP {response.status_code}: {response.text[:300]}")
                if response.status_code != 500:
                    return  # a refusal retrying cannot change
            retry_after = response.headers.get("Retry-After", "")
            time.sleep(float(retry_after) if retry_after.isdigit() else backoff)
            backoff = min(backoff * 2, 1.0)


class Killer:
    """SIGKILLs the server at seeded random moments and starts it again on the same port.

    A kill lands while the server answers (after it acknowledged a batch since its last
    start); after one kill in `start_kill_share` (seeded) the restarted process is killed
    again while it is still starting (opening the store, replaying the detectors' events)."""

    def __init__(self, server: ServerProcess, rng: random.Random, acks: list[float], pause: tuple[float, float],
                 history: Path, start_kill_share: float) -> None:
        self.server = server
        self.rng = rng
        self.acks = acks
        self.pause = pause
        self.history = history  # every killed process's log, appended, for a post-mortem
        self.start_kill_share = start_kill_share
        self.kills: list[Kill] = []
        self.kills_while_starting = 0

    def acknowledged_since(self, instant: float) -> float | None:
        return next((t for t in reversed(self.acks) if t > instant), None)

    def kill_once(self) -> None:
        since = self.kills[-1].serving if self.kills else 0.0
        wait_until(lambda: self.acknowledged_since(since) is not None, "a batch acknowledged by the server",
                   timeout=120)
        time.sleep(self.rng.uniform(*self.pause))
        at = time.monotonic()
        self._kill()
        twice = False
        if self.rng.random() < self.start_kill_share:
            self.server.launch()
            deadline = time.monotonic() + self.rng.uniform(0.05, 3.0)
            while time.monotonic() < deadline:
                if "serving on" in self.server.log_tail(50):  # quicker than the kill: this start stands
                    self.kills.append(Kill(at=at, serving=time.monotonic()))
                    return
                time.sleep(0.05)
            self._kill()
            self.kills_while_starting += 1
            twice = True
        self.server.launch().wait_ready(120)
        self.kills.append(Kill(at=at, serving=time.monotonic(), killed_while_starting=twice))

    def _kill(self) -> None:
        process = self.server.process
        assert process is not None
        if process.poll() is not None:
            raise AssertionError(f"the server exited by itself ({process.returncode}):\n{self.server.log_tail()}")
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        with self.history.open("a") as out:
            out.write(self.server.log_tail(10_000) + f"\n---- SIGKILL after kill {len(self.kills)} ----\n")

    def settle(self) -> None:
        """Fill in each kill's first acknowledgement after its restart, and the batches before it."""
        ordered = sorted(self.acks)
        for kill in self.kills:
            kill.first_ack = next((t for t in ordered if t > kill.serving), None)
            kill.acknowledged_before = sum(t < kill.at for t in ordered)


def _store_counts(backend: str, data_dir: Path, database_url: str | None) -> tuple[Counter[str], int, int]:
    """Events of the crash sensor per batch marker, the total, and ids stored more than once."""
    by_marker = ("SELECT split_part(session, '/', 1), count(*) FROM events WHERE sensor = {p} GROUP BY 1")
    twice = "SELECT count(*) - count(DISTINCT id) FROM events WHERE sensor = {p}"
    if backend == "duckdb":
        import duckdb

        con = duckdb.connect(str(data_dir / "events.duckdb"), read_only=True)
        try:
            rows = con.execute(by_marker.format(p="?"), [SENSOR]).fetchall()
            duplicate_ids = con.execute(twice.format(p="?"), [SENSOR]).fetchone()
        finally:
            con.close()
    else:
        import psycopg

        assert database_url is not None
        with psycopg.connect(database_url) as pg:
            rows = pg.execute(by_marker.format(p="%s"), [SENSOR]).fetchall()
            duplicate_ids = pg.execute(twice.format(p="%s"), [SENSOR]).fetchone()
    counts = Counter({str(marker): int(n) for marker, n in rows})
    return counts, sum(counts.values()), int(duplicate_ids[0]) if duplicate_ids else 0


def audit(run: CrashRun, data_dir: Path, database_url: str | None) -> Audit:
    counts, total, duplicate_ids = _store_counts(run.backend, data_dir, database_url)
    answered = sorted({b.events or 0 for b in run.acknowledged})
    whole = answered[-1] if answered else 0
    lost, partial, duplicated = [], [], []
    abandoned_stored = 0
    for batch in run.batches:
        stored = counts.get(batch.key, 0)
        if stored > whole:
            duplicated.append(batch.key)
        elif batch.acknowledged and stored != whole:
            lost.append(batch.key)
        elif 0 < stored < whole:
            partial.append(batch.key)
        elif not batch.acknowledged and stored:  # whole, by the branches above
            abandoned_stored += 1
    unknown = sorted(set(counts) - {b.key for b in run.batches})
    return Audit(stored_events=total, events_per_batch=whole, answered_counts=answered, lost_acknowledged=lost,
                 partial=partial, duplicated=duplicated, duplicate_ids=duplicate_ids, unknown_markers=unknown,
                 abandoned_stored=abandoned_stored)


def _port_for_restarts() -> int:
    """A free port below the kernel's ephemeral range (0: any free port, when there is no room
    below it). The server restarts on the same port; a port from the ephemeral range could be
    given to some other process's outgoing connection while the server is down."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    pick = random.SystemRandom()  # not the run's seed: two runs with one seed must not collide
    for _ in range(100):
        port = pick.randrange(10_000, low) if low > 10_000 else 0
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    return 0


def run_crash(workdir: Path, *, seed: int, kills: int, clients: int = 8, records_per_batch: int = 99,
              pause: tuple[float, float] = (0.2, 1.5), give_up_probability: float = 0.25,
              start_kill_share: float = 0.3, impatient_clients: int = 2,
              backend: str = "duckdb", database_url: str | None = None, settings: str = "",
              log: Any = print) -> CrashRun:
    """Run the crash test in `workdir` and audit the store; `database_url` for PostgreSQL,
    `settings` more TOML for the server's config file."""
    rng = random.Random(seed)
    log(f"crash test: seed {seed}, {kills} kills, {clients} clients, {backend}")
    template = sample_records("cowrie")[:records_per_batch]
    data_dir = workdir / "data"
    config_file = None
    if backend == "postgresql":
        assert database_url is not None, "PostgreSQL needs a database URL"
        settings = f'[storage]\nbackend = "postgresql"\nurl = "{database_url}"\n{settings}'
    if settings:
        config_file = workdir / "crash.toml"
        config_file.write_text(settings)
    token = add_sensor(data_dir, SENSOR, config_file=config_file)
    started = time.monotonic()
    server = ServerProcess(data_dir, config_file=config_file, port=_port_for_restarts()).start()
    first_start = time.monotonic() - started
    server.port = server.host_port[1]  # restarts listen where the clients already send
    acks: list[float] = []
    unexpected: list[str] = []
    stop = threading.Event()
    workers = [Client(i, server.url, token, seed, template, give_up_probability, stop, acks, unexpected,
                      read_timeout=0.3 if i < impatient_clients else 30.0)
               for i in range(clients)]
    killer = Killer(server, rng, acks, pause, workdir / "killed-servers.log", start_kill_share)
    began = time.monotonic()
    try:
        for worker in workers:
            worker.start()
        for n in range(kills):
            killer.kill_once()
            log(f"  kill {n + 1}/{kills}: restarted in {killer.kills[-1].restart_seconds:.2f} s")
        wait_until(lambda: killer.acknowledged_since(killer.kills[-1].serving if killer.kills else 0.0),
                   "a batch acknowledged after the last restart", timeout=120)
        stop.set()
        for worker in workers:
            worker.join(180)
        if any(worker.is_alive() for worker in workers):
            raise AssertionError("a client is still delivering its last batch after 180 s")
        seconds = time.monotonic() - began
    finally:
        stop.set()
        server.stop()
    killer.settle()
    run = CrashRun(seed=seed, backend=backend, kills=killer.kills, kills_while_starting=killer.kills_while_starting,
                   batches=[b for w in workers for b in w.batches],
                   statuses=sum((w.statuses for w in workers), Counter()),
                   unexpected=unexpected, seconds=seconds, first_start_seconds=first_start)
    run.audit = audit(run, data_dir, database_url)
    return run


# --------------------------------------------------------------------------- benchmark


def crash(ctx: Context) -> list[Figure]:
    """The full crash test (12 kills, 8 clients) on DuckDB, on DuckDB without the detectors'
    replay at start (what a restart costs without it), and on PostgreSQL; smoke: 1 kill, DuckDB."""
    from tests.engines.postgres import running_postgres

    seed = random.SystemRandom().randrange(1_000_000)
    kills = ctx.size(12, 1)
    pause = ctx.size((0.3, 2.5), (0.2, 0.5))
    start_kills = ctx.size(0.3, 0.0)  # smoke: its one kill must leave a single restart to time
    variants = [("duckdb", "duckdb", "")]
    if not ctx.smoke:
        variants += [("duckdb, no replay", "duckdb", "[correlation]\nreplay_max_events = 0\n"),
                     ("postgresql", "postgresql", "")]
    figures: list[Figure] = []
    ctx.extra["crash"] = {}
    for label, backend, settings in variants:
        workdir = ctx.workdir / f"crash-{label.replace(' ', '').replace(',', '-')}"
        workdir.mkdir(parents=True)
        if backend == "postgresql":
            with running_postgres(durable=True) as postgres:  # fsync on: the commits pay what production pays
                run = run_crash(workdir, seed=seed, kills=kills, pause=pause, start_kill_share=start_kills,
                                backend=backend, database_url=postgres.new_database("crash"), settings=settings,
                                log=ctx.log)
        else:
            run = run_crash(workdir, seed=seed, kills=kills, pause=pause, start_kill_share=start_kills,
                            settings=settings, log=ctx.log)
        summary = run.summary()
        ctx.extra["crash"][label] = summary
        ctx.log(f"{label}: {summary}")
        figures += _figures(label, kills, summary)
        shutil.rmtree(workdir / "data", ignore_errors=True)
    return figures


def _figures(label: str, kills: int, summary: dict[str, Any]) -> list[Figure]:
    restart, recovery = summary["restart_seconds"], summary["recovery_seconds"]
    return [
        Figure("crash", f"{label}: SIGKILLs", summary["kills"], "kills", target=f">= {kills}",
               notes=f"and {summary['kills_while_starting']} more while restarting; seed {summary['seed']}, "
                     f"{summary['seconds']} s"),
        Figure("crash", f"{label}: batches acknowledged", summary["acknowledged"], "batches",
               notes=f"{summary['batches_sent']} sent, {summary['events_per_batch']} events each"),
        Figure("crash", f"{label}: acknowledged after a retry", summary["acknowledged_after_retry"], "batches",
               notes=f"{summary['acknowledged_as_replay']} answered as a replay"),
        Figure("crash", f"{label}: never acknowledged, stored once", summary["abandoned_stored"], "batches",
               notes=f"of {summary['abandoned']} given up"),
        Figure("crash", f"{label}: defects (lost, partial, duplicated, unknown, 500)", len(summary["defects"]),
               "count", target="<= 0", higher_is_better=False, notes="; ".join(summary["defects"])[:300]),
        Figure("crash", f"{label}: duplicate event ids", summary["duplicate_ids"], "events", target="<= 0",
               higher_is_better=False),
        Figure("crash", f"{label}: restart after SIGKILL, median", restart["median"], "s",
               higher_is_better=False, notes=f"min {restart['min']}, max {restart['max']}; "
                                             f"first start on an empty store {summary['first_start_seconds']} s"),
        Figure("crash", f"{label}: first acknowledgement after SIGKILL, median", recovery["median"], "s",
               higher_is_better=False, notes=f"min {recovery['min']}, max {recovery['max']}"),
    ]
