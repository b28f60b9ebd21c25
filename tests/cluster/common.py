"""What the cluster tests share: a cluster configuration on the test engines, sensors in
its registry, role processes, and reading the shared PostgreSQL store directly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg

from honeyatlas.cluster import RoleProcess, cluster_config
from honeyatlas.store.postgres_accounts import PostgresAccounts
from honeyatlas.store.postgres_registry import PostgresSensorRegistry
from tests.auth import grant, register
from tests.engines.nats import NatsServer
from tests.engines.postgres import PostgresServer


@dataclass(frozen=True)
class ClusterUnderTest:
    database: str
    config: Path
    logs: Path

    def role(self, name: str, role: str, *args: str) -> RoleProcess:
        """`honeyatlas serve --role ROLE` on this cluster's configuration (not started)."""
        command = ["serve", "--config", str(self.config), "--host", "127.0.0.1", "--role", role, *args]
        return RoleProcess(name, command, self.logs / f"{name}.log")

    def add_sensors(self, *sensors: tuple[str, str, float, float]) -> dict[str, str]:
        """(name, honeypot, lat, lon) registered once for every process; name -> token."""
        registry = PostgresSensorRegistry(self.database)
        registry.open()
        try:
            return {name: registry.add(name, honeypot=honeypot, lat=lat, lon=lon)[1]
                    for name, honeypot, lat, lon in sensors}
        finally:
            registry.close()


    def readers(self, *ports: int) -> str:
        """An admin read token in the cluster's shared accounts, sent by the tests' HTTP
        clients to each of these ports on 127.0.0.1 (tests/auth.py)."""
        accounts = PostgresAccounts(self.database)
        accounts.open()
        try:
            token = grant(f"http://127.0.0.1:{ports[0]}/", accounts)
        finally:
            accounts.close()
        for port in ports[1:]:
            register(f"http://127.0.0.1:{port}/", token)
        return token


def new_cluster(postgres: PostgresServer, nats: NatsServer, directory: Path, *, partitions: int,
                bus: str = "", extra: str = "") -> ClusterUnderTest:
    """A fresh database and a configuration for it; `bus` adds lines to `[bus]`, `extra`
    whole sections."""
    database = postgres.new_database()
    config = directory / "cluster.toml"
    text = cluster_config(storage_url=database, bus_url=nats.url, data_dir=directory / "data", partitions=partitions)
    config.write_text(text.replace(f"partitions = {partitions}\n", f"partitions = {partitions}\n{bus}")
                      + extra + "\n[geoip]\nsearch_city_db = false\n")
    return ClusterUnderTest(database, config, directory)


def stored(database: str, distinct: str = "id") -> tuple[int, int]:
    """(events, distinct values of `distinct`) in the store; (0, 0) before the first process
    has created the tables."""
    with psycopg.connect(database) as con:
        try:
            row = con.execute(f"SELECT count(*), count(DISTINCT {distinct}) FROM events").fetchone()
        except psycopg.errors.UndefinedTable:
            return 0, 0
    assert row is not None
    return int(row[0]), int(row[1])
