"""Counters and gauges for the whole service, rendered as Prometheus text.

One `Metrics` instance is created by the composition root and passed to every component
that counts something; there is no module-level registry. Counter names follow the
Prometheus conventions (`_total` suffix); labels say which source, sensor and reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

Labels = tuple[tuple[str, str], ...]

HELP: dict[str, str] = {
    "honeyatlas_records_received_total": "Raw records received, per source and format.",
    "honeyatlas_events_accepted_total": "Events durably stored, per source and sensor.",
    "honeyatlas_records_rejected_total": "Raw records rejected into the dead-letter store, per source and reason.",
    "honeyatlas_records_ignored_total": "Valid records that are not attacker activity (a honeypot's own messages), per source and reason.",
    "honeyatlas_records_dropped_total": "Raw records lost before the pipeline adapted them (best-effort sources: queue or pipeline full, store error, shutdown, unknown ident), per source and reason.",
    "honeyatlas_events_dropped_total": "Adapted events not passed on, per component and reason: duplicates already stored (dedupe, store), live-feed events a slow client or bus could not take (live, live_feed).",
    "honeyatlas_hpfeeds_subscriber_connects_total": "Connections to the external hpfeeds broker.",
    "honeyatlas_hpfeeds_subscriber_disconnects_total": "Disconnects from the external hpfeeds broker, per reason.",
    "honeyatlas_connections_refused_total": "Connections refused or closed for breaking a limit, per listener (http, websocket, hpfeeds, syslog) and reason (per_address_limit, frame_too_large, protocol_error).",
    "honeyatlas_connections_timed_out_total": "Connections closed at a deadline, per listener and what was awaited (header, body, keep_alive, ping, idle).",
    "honeyatlas_access_refused_total": "Requests to the web app refused by the access rules, per reason (unauthenticated, forbidden, bad_credentials, origin, host, no_audience).",
    "honeyatlas_logins_total": "Login attempts, per outcome (ok, failed, rate_limited).",
    "honeyatlas_sensor_rate_limited_total": "Ingest requests refused because their sensor was over its events-a-second rate, per sensor.",
    "honeyatlas_requests_refused_total": "Ingest requests refused before reading records, per source and reason.",
    "honeyatlas_ingest_requests_in_flight": "HTTP ingest requests being read or stored now, per source.",
    "honeyatlas_idempotency_replays_total": "Retried ingest batches answered from their Idempotency-Key receipt instead of being stored again.",
    "honeyatlas_idempotency_keys_pruned_total": "Idempotency keys pruned, per reason (age or the per-sensor bound).",
    "honeyatlas_event_warnings_total": "Events stored with at least one adapter warning, per source.",
    "honeyatlas_live_frames_sent_total": "Batched frames queued for live WebSocket clients (one per client per tick).",
    "honeyatlas_live_clients": "WebSocket clients connected to the live stream.",
    "honeyatlas_store_pending_events": "Events waiting for the store writer.",
    "honeyatlas_store_commits_total": "Transactions committed by the store writer.",
    "honeyatlas_store_stats_fold_failures_total": "Failed folds of new events into the dashboard rollups (logged and retried).",
    "honeyatlas_queries_running": "API reads holding a read slot now (at most storage.max_concurrent_reads).",
    "honeyatlas_queries_waiting": "API reads waiting for a read slot now (at most storage.max_queued_reads).",
    "honeyatlas_queries_refused_total": "API reads refused with 503 before running, per query and reason (queue_full, wait_timeout).",
    "honeyatlas_queries_timed_out_total": "API reads cancelled at storage.query_timeout_seconds (answered 503), per query.",
    "honeyatlas_queries_failed_total": "API reads the store could not finish for another reason (answered 503), per query and reason (out_of_memory).",
    "honeyatlas_dedupe_sessions": "Sessions remembered to match a session's log events with its summary.",
    "honeyatlas_dedupe_evictions": "Sessions forgotten by the deduplicator, by reason (size bound or age), since start.",
    "honeyatlas_geoip_cache_hits_total": "GeoIP lookups answered from the cache.",
    "honeyatlas_geoip_cache_misses_total": "GeoIP lookups that read the databases.",
    "honeyatlas_geoip_cache_evictions_total": "GeoIP cache entries evicted at the size bound.",
    "honeyatlas_file_source_lines_delivered_total": "Lines of a followed log file durably stored, per sensor and file.",
    "honeyatlas_file_source_retries_total": "Deliveries of a followed file retried (pipeline full, sensor missing), per sensor and file.",
    "honeyatlas_file_source_buffered_bytes": "Bytes of a followed file read but not yet stored, per sensor and file.",
    "honeyatlas_file_source_rotations_total": "Rotations (rename-and-create) seen on a followed file, per sensor and file.",
    "honeyatlas_correlation_tracked": "Keys (sources, sessions, fingerprints, samples) each detector holds state for.",
    "honeyatlas_correlation_evictions_total": "Detector state evicted at its size bounds, per detector, since start.",
    "honeyatlas_incidents_open": "Incidents open in the correlator (inside their window).",
    "honeyatlas_incidents_opened_total": "Incidents opened since start, per kind.",
    "honeyatlas_incidents_forced_closures_total": "Incidents closed early because max_open_incidents was reached.",
    "honeyatlas_bus_messages_published_total": "Event batches the bus stored durably (duplicates not counted).",
    "honeyatlas_bus_events_published_total": "Events in the batches the bus stored durably.",
    "honeyatlas_bus_publish_duplicates_total": "Published batches the bus recognised as repeats of a stored one (same message id).",
    "honeyatlas_bus_publish_refused_total": "Batches the bus refused because its stream was full (ingest answers 429), per reason.",
    "honeyatlas_bus_publish_errors_total": "Batches that could not be published (disconnected, timeout, api), per reason.",
    "honeyatlas_bus_messages_delivered_total": "Event batches handed to a worker, per partition (redeliveries included).",
    "honeyatlas_bus_messages_redelivered_total": "Event batches handed to a worker again after no acknowledgement, per partition.",
    "honeyatlas_bus_messages_acked_total": "Event batches acknowledged by a worker once stored, per partition.",
    "honeyatlas_bus_batches_retried_total": "Event batches a worker could not store and handed back for redelivery, per partition.",
    "honeyatlas_bus_messages_dropped_total": "Event batches removed from the stream unprocessed (undecodable), per reason.",
    "honeyatlas_bus_stream_messages": "Event batches waiting in the bus stream (the unconsumed backlog).",
    "honeyatlas_bus_live_messages_dropped_total": "Live-feed messages lost on the best-effort bus feed, per reason.",
    "honeyatlas_faults": "Components running degraded now (1 each), per component (disk, store, geoip); /api/v1/health says why.",
    "honeyatlas_disk_free_bytes": "Free bytes in the data directory's file system (ingest answers 503 below storage.min_free_disk_mib).",
    "honeyatlas_store_write_failures_total": "Store transactions that failed (disk full, read-only, I/O error); their senders got 503.",
    "honeyatlas_store_retention_deleted_total": "Rows deleted by storage.retention_days, per table (events, dead_letters).",
    "honeyatlas_store_retention_failures_total": "Retention passes that failed (logged and retried at the next pass).",
    "honeyatlas_geoip_database_faults": "GeoIP databases configured but missing or unreadable now.",
    "honeyatlas_geoip_reloads_total": "GeoIP databases opened again after their file changed or reappeared.",
    "honeyatlas_geoip_load_failures_total": "GeoIP database opens that failed (file missing, truncated or not an MMDB).",
}


class Metrics:
    def __init__(self) -> None:
        self._counters: dict[tuple[str, Labels], float] = {}
        self._gauges: dict[str, Callable[[], Iterable[tuple[Labels, float]]]] = {}

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        self._counters[key] = self._counters.get(key, 0) + amount

    def gauge(self, name: str, read: Callable[[], Iterable[tuple[Labels, float]]]) -> None:
        """Register a gauge read at render time (e.g. queue depth)."""
        self._gauges[name] = read

    def total(self, name: str, **labels: str) -> float:
        """Sum of a counter over every label set that includes `labels`."""
        wanted = set(labels.items())
        return sum(v for (n, lbl), v in self._counters.items() if n == name and wanted <= set(lbl))

    def render(self) -> str:
        lines: list[str] = []
        by_name: dict[str, list[tuple[Labels, float]]] = {}
        for (name, labels), value in sorted(self._counters.items()):
            by_name.setdefault(name, []).append((labels, value))
        for name, read in self._gauges.items():
            by_name.setdefault(name, []).extend(read())
        for name in sorted(set(by_name) | {n for n in HELP if n.endswith("_total")}):
            kind = "counter" if name.endswith("_total") else "gauge"
            lines.append(f"# HELP {name} {HELP.get(name, name)}")
            lines.append(f"# TYPE {name} {kind}")
            for labels, value in by_name.get(name, []):
                lines.append(f"{name}{_labels(labels)} {_number(value)}")
        return "\n".join(lines) + "\n"


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
