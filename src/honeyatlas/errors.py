"""The honeyatlas exception tree. Every message is one line that says what to do.

    HoneyatlasError
     +-- ConfigError          a setting is missing or invalid; names the key
     +-- RecordRejected       one raw record could not become an event; carries the reason
     +-- RecordIgnored        one raw record is not attacker activity (a honeypot's own start-up
                              message); counted with the reason, not dead-lettered
     +-- StoreError           the store cannot be opened, migrated, written or read (a query
          |                   route answers 503 with the reason)
          +-- QueryTimeout    a read ran past storage.query_timeout_seconds and was cancelled
          |                   (503 with Retry-After; counted per query)
          +-- ReadsBusy       every read slot is taken and the queue of waiting reads is full, or
                              a read waited for a slot longer than the query timeout (503 with
                              Retry-After; counted per query and reason)
     +-- RegistryError        the sensor registry refused an operation (unknown or duplicate sensor)
     +-- PipelineFull         admission refused because the pipeline is at capacity
     +-- BusError             the bus (NATS JetStream) is unreachable, timed out or refused a
          |                   message for another reason than its limits (ingest answers 503)
          +-- BusFull         the stream is at its limits and refused a new batch (ingest
                              answers 429; nothing already in the stream is dropped)
     +-- IngestUnavailable    ingest refused for a passing reason: free disk below its floor, the
                              store failing its writes, the service shutting down (503 with
                              Retry-After and the reason; counted by its label)
"""

from __future__ import annotations


class HoneyatlasError(Exception):
    """Base of every error honeyatlas raises on purpose."""


class ConfigError(HoneyatlasError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config {key}: {problem}")
        self.key = key
        self.problem = problem


class RecordRejected(HoneyatlasError):
    """Raised by an adapter for a record with nothing usable; `reason` is short and stable."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RecordIgnored(HoneyatlasError):
    """Raised by an adapter for a record that is valid but not attacker activity."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StoreError(HoneyatlasError):
    pass


class QueryTimeout(StoreError):
    def __init__(self, query: str, timeout_seconds: float) -> None:
        super().__init__(
            f"query {query} ran longer than storage.query_timeout_seconds ({timeout_seconds:g} s) and was "
            "cancelled; narrow the request or retry later"
        )
        self.query = query
        self.retry_after_seconds = max(1, round(timeout_seconds))


class ReadsBusy(StoreError):
    def __init__(self, query: str, detail: str, retry_after_seconds: int) -> None:
        super().__init__(f"query {query} refused: {detail}; retry after {retry_after_seconds} s")
        self.query = query
        self.retry_after_seconds = retry_after_seconds


class RegistryError(HoneyatlasError):
    pass


class PipelineFull(HoneyatlasError):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"pipeline full, retry after {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class BusError(HoneyatlasError):
    """The bus could not take or give a message; the message says what to check."""


class BusFull(BusError):
    def __init__(self, stream: str, detail: str) -> None:
        super().__init__(f"bus stream {stream} is full ({detail}); retry later or raise bus.stream_max_*")
        self.stream = stream


class IngestUnavailable(HoneyatlasError):
    """`label` is the bounded metric reason (`disk_low`, `store_failing`, `shutting_down`);
    the message says why, for the 503 answer."""

    def __init__(self, label: str, reason: str, retry_after_seconds: int) -> None:
        super().__init__(reason)
        self.label = label
        self.reason = reason
        self.retry_after_seconds = retry_after_seconds
