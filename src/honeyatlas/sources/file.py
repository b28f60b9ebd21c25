"""file source: follow a honeypot's log file on the server's own host.

For a honeypot on the same machine as honeyatlas: `serve --follow
'PATH?format=cowrie&sensor=NAME'` (repeatable; `file.follow` in the config). Each file is
followed with the same code as the `honeyatlas forward` agent (`sources.follow`: rotations,
persisted position, bounded read-ahead) and delivered to the local pipeline instead of
over HTTP. The position is kept in `DATA_DIR/file-offsets/`.

Delivery: nothing lost, nothing stored twice, across restarts. A batch counts as delivered
only once the store committed it, together with a receipt keyed by the batch's identity
(file, range, bytes). After a crash the batch that was in flight is offered again; its
receipt, when present, says it is already stored, and it is skipped. While the pipeline is
full or the sensor is not (yet) registered, the source backs off and retries; the file is
the buffer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import msgspec

from honeyatlas.enrichment.sensors import Sensor, SensorDirectory
from honeyatlas.errors import PipelineFull, StoreError
from honeyatlas.pipeline import Ingest, IngestResult
from honeyatlas.sources.follow import Batch, FileFollower
from honeyatlas.sources.framing import decode_line
from honeyatlas.store import Receipt, Receipts


class FollowSpec(msgspec.Struct, frozen=True):
    path: Path
    format: str
    sensor: str


def parse_follow(text: str) -> FollowSpec:
    """`PATH?format=NAME&sensor=NAME` -> FollowSpec; ValueError says what is missing."""
    path, _, query = text.rpartition("?")
    if not path:
        raise ValueError(f"{text!r}: use PATH?format=NAME&sensor=NAME")
    options = {key: values[-1] for key, values in parse_qs(query).items()}
    missing = [name for name in ("format", "sensor") if not options.get(name)]
    if missing:
        raise ValueError(f"{text!r}: add {' and '.join(f'{m}=NAME' for m in missing)} after the '?'")
    unknown = sorted(set(options) - {"format", "sensor"})
    if unknown:
        raise ValueError(f"{text!r}: unknown option {unknown[0]!r}; use format= and sensor=")
    return FollowSpec(Path(path), options["format"], options["sensor"])


def state_path_for(state_dir: Path, spec: FollowSpec) -> Path:
    digest = hashlib.sha256(str(spec.path.absolute()).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return state_dir / f"{spec.path.name[:48]}-{digest}.state"


class FileSource(FileFollower):
    def __init__(
        self,
        spec: FollowSpec,
        *,
        pipeline: Ingest,
        registry: SensorDirectory,
        receipts: Receipts,
        state_dir: Path,
        **follow_settings: Any,
    ) -> None:
        super().__init__(spec.path, state_path_for(state_dir, spec), label="file source", **follow_settings)
        self.spec = spec
        self._pipeline = pipeline
        self._registry = registry
        self._receipts = receipts

    async def _deliver(self, batch: Batch) -> None:
        attempt = 0
        kind = self._pipeline.input_kind(self.spec.format)
        while True:
            retry_after: float | None = None
            sensor = self._registry.get(self.spec.sensor)
            if sensor is None or sensor.revoked:
                error = f"sensor {self.spec.sensor!r} is not registered or revoked; add it with `honeyatlas sensor add`"
            else:
                try:
                    if await self._receipts.find_receipt(sensor.name, batch.key) is not None:
                        self._delivered(batch)  # stored before a crash, position not yet saved
                        return
                    await self._ingest(batch, sensor, kind)
                except PipelineFull as exc:
                    error, retry_after = "pipeline full", float(exc.retry_after_seconds)
                except StoreError as exc:
                    error = str(exc)
                else:
                    self._delivered(batch)
                    return
            await self._back_off(attempt, error, retry_after)
            attempt += 1

    async def _ingest(self, batch: Batch, sensor: Sensor, kind: str) -> None:
        lines = [line.strip() for line in batch.body.split(b"\n")]
        records = [decode_line(line, index, kind) for index, line in enumerate(lines) if line]
        self._pipeline.admit("file", len(records))
        digest = hashlib.sha256(batch.body).digest()

        def receipt(result: IngestResult) -> Receipt:
            return Receipt(sensor=sensor.name, key=batch.key, digest=digest, response=msgspec.json.encode(result))

        await self._pipeline.ingest(source="file", fmt=self.spec.format, sensor=sensor, records=records, receipt=receipt,
                                    identity=f"{sensor.name}|{batch.key}".encode())
