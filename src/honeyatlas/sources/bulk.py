"""bulk source: a whole log file (plain or gzip) imported through the pipeline.

Used by `honeyatlas ingest`. The file is read as a stream of lines in batches, so its size
does not matter; each batch is durably stored before the next is read. Delivery: the
summary counts every line as accepted, rejected (dead-letter store) or ignored.
"""

from __future__ import annotations

import gzip
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from honeyatlas.enrichment.sensors import Sensor
from honeyatlas.pipeline import Ingest
from honeyatlas.sources.framing import decode_line

SOURCE = "bulk"


class ImportProgress(msgspec.Struct):
    bytes_read: int = 0
    bytes_total: int = 0
    records: int = 0
    accepted: int = 0
    events: int = 0
    warned: int = 0
    rejected: int = 0
    ignored: int = 0
    duplicates: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = {}


def _lines(raw: BinaryIO) -> Iterator[bytes]:
    head = raw.read(2)
    raw.seek(0)
    stream: BinaryIO = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw  # type: ignore[assignment]
    for line in stream:
        line = line.strip()
        if line:
            yield line


async def import_file(
    pipeline: Ingest,
    *,
    path: Path,
    fmt: str,
    sensor: Sensor,
    batch_size: int,
    on_progress: Callable[[ImportProgress], None] | None = None,
) -> ImportProgress:
    input_kind = pipeline.input_kind(fmt)
    progress = ImportProgress(bytes_total=path.stat().st_size)
    reasons: Counter[str] = Counter()
    started = time.monotonic()
    with path.open("rb") as raw:
        batch = []
        lines = _lines(raw)
        while True:
            for line in lines:
                batch.append(decode_line(line, progress.records + len(batch), input_kind))
                if len(batch) >= batch_size:
                    break
            if not batch:
                break
            result = await pipeline.ingest(source=SOURCE, fmt=fmt, sensor=sensor, records=batch)
            progress.records += len(batch)
            progress.accepted += result.accepted
            progress.events += result.events
            progress.warned += result.warned
            progress.rejected += len(result.rejected)
            progress.ignored += len(result.ignored)
            progress.duplicates += result.duplicates
            reasons.update(r.reason.split(":", 1)[0] for r in result.rejected)
            progress.bytes_read = raw.tell()
            progress.seconds = time.monotonic() - started
            batch = []
            if on_progress is not None:
                on_progress(progress)
    progress.reasons = dict(reasons.most_common(5))
    progress.seconds = time.monotonic() - started
    return progress
