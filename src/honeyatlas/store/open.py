"""The one place that picks a storage backend from the Config (`storage.backend`): the event
store, the sensor registry and the accounts (users, sessions, read tokens).

PostgreSQL's driver is imported only when the configuration names it, so the embedded
default never needs it.
"""

from __future__ import annotations

from honeyatlas.access import Accounts
from honeyatlas.config import Config
from honeyatlas.enrichment.sensors import CachedDirectory, SensorDirectory
from honeyatlas.metrics import Metrics
from honeyatlas.store import Store


def open_store(config: Config, metrics: Metrics, *, shard: int = 0) -> Store:
    """The configured event store, not started. `shard` tells PostgreSQL's rollups which
    writer this is (each worker its own), so two workers never wait for the same row."""
    storage = config.storage
    if storage.backend == "postgresql":
        from honeyatlas.store.postgres import PostgresStore

        assert storage.url is not None  # config.check
        return PostgresStore(
            storage.url, metrics=metrics, max_pending_events=storage.max_pending_events,
            write_batch_max_events=storage.write_batch_max_events,
            receipt_ttl_seconds=config.ingest.idempotency_ttl_seconds, retention_days=storage.retention_days,
            shard=shard, query_timeout_seconds=storage.query_timeout_seconds,
            max_concurrent_reads=storage.max_concurrent_reads, max_queued_reads=storage.max_queued_reads,
        )
    from honeyatlas.store.duckdb import DuckDBStore

    return DuckDBStore(
        config.data_dir / "events.duckdb",
        max_pending_events=storage.max_pending_events,
        write_batch_max_events=storage.write_batch_max_events,
        metrics=metrics,
        receipt_ttl_seconds=config.ingest.idempotency_ttl_seconds,
        stats_fold_interval_seconds=storage.stats_fold_interval_seconds,
        checkpoint_threshold_mib=storage.checkpoint_threshold_mib,
        query_timeout_seconds=storage.query_timeout_seconds,
        max_concurrent_reads=storage.max_concurrent_reads,
        max_queued_reads=storage.max_queued_reads,
        memory_limit_mib=storage.duckdb_memory_limit_mib,
        threads=storage.duckdb_threads,
        read_niceness=storage.duckdb_read_niceness,
        retention_days=storage.retention_days,
    )


def open_registry(config: Config) -> SensorDirectory:
    """The sensor registry of this configuration, not opened: SQLite in the data directory
    beside DuckDB (a local file: read directly), or the PostgreSQL database every process of
    a cluster shares (answers cached for `storage.registry_cache_seconds`, so the event loop
    does not wait for the database on every request)."""
    if config.storage.backend == "postgresql":
        from honeyatlas.store.postgres_registry import PostgresSensorRegistry

        assert config.storage.url is not None
        return CachedDirectory(PostgresSensorRegistry(config.storage.url),
                               ttl_seconds=config.storage.registry_cache_seconds)
    from honeyatlas.store.registry import SensorRegistry

    return SensorRegistry(config.data_dir / "registry.sqlite3")


def open_accounts(config: Config) -> Accounts:
    """Users, sessions and read tokens of this configuration, not opened: `accounts.sqlite3`
    in the data directory beside the sensor registry, or the PostgreSQL database a cluster
    shares. Not cached: a revoked token or a removed user stops at once."""
    if config.storage.backend == "postgresql":
        from honeyatlas.store.postgres_accounts import PostgresAccounts

        assert config.storage.url is not None
        return PostgresAccounts(config.storage.url)
    from honeyatlas.store.accounts import SQLiteAccounts

    return SQLiteAccounts(config.data_dir / "accounts.sqlite3")
