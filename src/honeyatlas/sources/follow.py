"""Following a JSON-lines log file across rotations, with a persisted position.

Shared by the `honeyatlas forward` agent (delivers over HTTP) and the server-side `file`
source (delivers to the local pipeline). It imports nothing else of honeyatlas, so the agent
can run on a sensor with only httpx installed.

One reader task follows the file and cuts batches of complete lines; one sender task hands
them to `_deliver`, in order, one at a time. No line is lost and, with a receiver that
honours the batch key, none is stored twice, across restarts:
- The state file (written atomically: temp file, fsync, rename, fsync of the directory)
  holds the delivered position (file identity + offset) and the batch in flight. The
  position moves only after the receiver said the batch is durably stored.
- Before a batch is first delivered its range is written to the state as "in flight";
  after a restart exactly that range is delivered again first, with the same `key` (the
  SHA-256 of the file identity, the range and the bytes), so the receiver can recognise it.
- While the receiver is away or busy, the sender backs off exponentially with jitter and
  the reader keeps cutting batches until `buffer_max_bytes` are waiting; then it stops
  reading. The log file is the buffer: every file the reader has opened stays open until it
  has been delivered, so a rotated (renamed or deleted) file can still be read to its end.

Rotation: rename-and-create is seen as a new inode at the path; the old file is read to EOF
first (the writer may still append to it briefly). copytruncate is seen as the size dropping
below the read position, or the file's first line changing; reading restarts at 0 (after
the copy's unread tail, when logrotate's copy is found beside the file). Lines written
between the last read and a copytruncate are lost; that is inherent to copytruncate.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

log = logging.getLogger("honeyatlas.follow")

_HEAD_BYTES = 256  # a file is recognised by its inode plus the hash of its first line (capped)
_MAX_OPEN_FILES = 16  # rotated files kept open while the server is away


@dataclass(frozen=True)
class FileId:
    dev: int
    ino: int
    head: str = ""  # sha256 of the first line (at most _HEAD_BYTES); "" until there is one
    head_len: int = 0


@dataclass(frozen=True)
class Batch:
    file: FileId
    start: int
    end: int
    body: bytes
    lines: int

    @property
    def key(self) -> str:
        """Deterministic: the same range of the same bytes always gets the same key."""
        prefix = f"{self.file.dev}:{self.file.ino}:{self.start}:{self.end}:".encode()
        return hashlib.sha256(prefix + self.body).hexdigest()


@dataclass
class FollowStatus:
    state: str = "starting"  # the sender: starting, shipping, retrying, stopped
    reader: str = "starting"  # the reader: following, waiting_for_file, buffer_full
    file: str = ""
    lines_read: int = 0
    lines_sent: int = 0
    batches_sent: int = 0
    retries: int = 0
    rotations: int = 0
    truncations: int = 0
    acked_offset: int = 0
    buffered_bytes: int = 0
    dropped_lines: dict[str, int] = field(default_factory=dict)  # reason -> lines
    last_error: str | None = None


class _Source:
    """One open log file being read; `pos` is the end of the last complete line taken."""

    def __init__(self, handle, file: FileId, pos: int) -> None:  # type: ignore[no-untyped-def]
        self.handle = handle
        self.file = file
        self.pos = pos
        self.skipping = False  # inside a line longer than a batch: dropped up to its newline
        self.idle_since: float | None = None  # at EOF while a newer file exists, since when

    def size(self) -> int:
        return os.fstat(self.handle.fileno()).st_size

    def pread(self, offset: int, length: int) -> bytes:
        return os.pread(self.handle.fileno(), length, offset)

    def learn_head(self) -> None:
        if self.file.head:
            return
        first = self.pread(0, _HEAD_BYTES)
        cut = first.find(b"\n")
        if cut < 0 and len(first) < _HEAD_BYTES:
            return  # no complete first line yet
        head = first if cut < 0 else first[:cut]
        self.file = replace(self.file, head=hashlib.sha256(head).hexdigest(), head_len=len(head))

    def head_matches(self, file: FileId) -> bool:
        if not file.head:
            return True
        return hashlib.sha256(self.pread(0, file.head_len)).hexdigest() == file.head

    def close(self) -> None:
        self.handle.close()


def _open(path: Path) -> _Source | None:
    try:
        handle = open(path, "rb")  # noqa: SIM115 (kept open across rotations, closed by _Source.close)
    except FileNotFoundError:
        return None
    st = os.fstat(handle.fileno())
    source = _Source(handle, FileId(st.st_dev, st.st_ino), 0)
    source.learn_head()
    return source


def write_state(path: Path, state: dict[str, object]) -> None:
    """Atomically replace the state file: temp file, fsync, rename, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as out:
        out.write(json.dumps(state, sort_keys=True).encode())
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_json(file: FileId) -> dict[str, object]:
    return {"dev": file.dev, "ino": file.ino, "head": file.head, "head_len": file.head_len}


def _file_from(data: dict[str, object]) -> FileId:
    return FileId(int(data["dev"]), int(data["ino"]), str(data.get("head", "")), int(data.get("head_len", 0)))  # type: ignore[call-overload]



class FileFollower(abc.ABC):
    """Follows one log file and hands complete-line batches to `_deliver`, in order, one at
    a time; a subclass says what delivering means (an HTTP POST, the local pipeline)."""

    def __init__(
        self,
        path: Path,
        state_path: Path,
        *,
        label: str = "follow",
        batch_max_records: int = 500,
        batch_max_bytes: int = 1024 * 1024,
        flush_interval_seconds: float = 1.0,
        buffer_max_bytes: int = 16 * 1024 * 1024,
        poll_interval_seconds: float = 0.2,
        backoff_initial_seconds: float = 0.5,
        backoff_max_seconds: float = 30.0,
        rotate_grace_seconds: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.state_path = Path(state_path)
        self.label = label
        self.batch_max_records = batch_max_records
        self.batch_max_bytes = batch_max_bytes
        self.flush_interval = flush_interval_seconds
        self.buffer_max_bytes = buffer_max_bytes
        self.poll_interval = poll_interval_seconds
        self.backoff_initial = backoff_initial_seconds
        self.backoff_max = backoff_max_seconds
        self.rotate_grace = rotate_grace_seconds
        self._random = random.Random(seed)
        self._status = FollowStatus(file=str(path))
        self._sources: list[_Source] = []  # oldest first; [0] is being read
        self._pending: deque[Batch] = deque()  # cut, not yet delivered; [0] is in flight
        self._acked = (FileId(0, 0), 0)  # end of the last batch delivered
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()

    # -- public surface ---------------------------------------------------------------

    def status(self) -> FollowStatus:
        return replace(self._status, dropped_lines=dict(self._status.dropped_lines))

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()

    async def run(self) -> None:
        """Follow and deliver until `stop()`; the state file makes a later run resume exactly."""
        self._resume()
        try:
            reader = asyncio.create_task(self._read_loop())
            sender = asyncio.create_task(self._send_loop())
            await self._stopping.wait()
            for task in (reader, sender):
                task.cancel()
            for task in (reader, sender):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            for source in self._sources:
                source.close()
            self._sources.clear()
            self._set_state("stopped")

    def _set_state(self, state: str, detail: str = "", *, reader: bool = False) -> None:
        """Record the sender's (or the reader's) state; one log line per change."""
        attribute = "reader" if reader else "state"
        if getattr(self._status, attribute) != state:
            setattr(self._status, attribute, state)
            log.info("%s %s: %s%s", self.label, self.path, state, f" ({detail})" if detail else "")

    def _drop(self, reason: str, lines: int) -> None:
        self._status.dropped_lines[reason] = self._status.dropped_lines.get(reason, 0) + lines
        log.warning("%s %s: dropped %d line(s): %s", self.label, self.path, lines, reason)

    # -- resume -----------------------------------------------------------------------

    def _resume(self) -> None:
        """Open the file(s) to read from, at the position the state file records."""
        try:
            state = json.loads(self.state_path.read_bytes())
        except FileNotFoundError:
            return  # first run: the current file from its beginning, once it exists
        except ValueError as exc:
            raise ValueError(f"state file {self.state_path} is not valid JSON ({exc}); move it away to start over") from exc
        self._acked = (_file_from(state["file"]), int(state["offset"]))
        inflight = state.get("inflight")
        if inflight:
            file, pos, end = _file_from(inflight["file"]), int(inflight["start"]), int(inflight["end"])
        else:
            file, pos, end = _file_from(state["file"]), int(state["offset"]), None
        self._status.acked_offset = int(state["offset"])
        old = self._find(file)
        current = _open(self.path)
        if old is None:
            log.warning("%s %s: the file of the saved position is gone; starting the current file at 0", self.label, self.path)
            if current is not None:
                self._sources.append(current)
            return
        if current is not None and (current.file.dev, current.file.ino) == (old.file.dev, old.file.ino):
            current.close()
            current = None
        if old.size() < pos:
            self._status.truncations += 1
            log.info("%s %s: truncated while stopped; reading from 0", self.label, self.path)
            pos, end = 0, None
        old.pos = pos
        self._sources.append(old)
        if current is not None:
            self._sources.append(current)
        if end is not None:  # send exactly the batch that was in flight, under the same key
            batch = self._cut(old, end - pos, 1 << 30, exact=True)
            if batch is not None and batch.end == end:
                self._pending.append(batch)
                self._status.buffered_bytes += len(batch.body)
            else:
                old.pos = pos

    def _find(self, file: FileId) -> _Source | None:
        """The file with this identity: the path itself, or a rotated sibling (name.1, name-date...)."""
        candidates = [self.path]
        with contextlib.suppress(OSError):
            candidates += sorted(
                p for p in self.path.parent.iterdir() if p.name.startswith(self.path.name) and p != self.path
            )
        for candidate in candidates:
            with contextlib.suppress(OSError):
                st = candidate.stat()
                if (st.st_dev, st.st_ino) != (file.dev, file.ino):
                    continue
                source = _open(candidate)
                if source is None:
                    continue
                if not source.head_matches(file):  # same inode number, other content
                    source.close()
                    continue
                return source
        return None

    # -- reading ----------------------------------------------------------------------

    def _cut(self, source: _Source, max_bytes: int, max_records: int, *, exact: bool = False) -> Batch | None:
        """Take complete lines from `source` at its position, within the limits."""
        data = source.pread(source.pos, max_bytes)
        if not source.head_matches(source.file):
            return None  # truncated (and maybe regrown) before this read: the data is not ours
        if exact:
            if len(data) < max_bytes or not data.endswith(b"\n"):
                return None
            cut = len(data)
        else:
            if source.skipping:
                newline = data.find(b"\n")
                if newline < 0:
                    source.pos += len(data)
                    return None
                source.pos += newline + 1
                source.skipping = False
                self._drop("line_longer_than_batch_max_bytes", 1)
                return self._cut(source, max_bytes, max_records)
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if len(data) >= self.batch_max_bytes:  # one line longer than a whole batch
                    source.skipping = True
                    source.pos += len(data)
                return None
            data = data[:cut]
            lines = data.count(b"\n")
            if lines > max_records:
                cut = 0
                for _ in range(max_records):
                    cut = data.index(b"\n", cut) + 1
                data = data[:cut]
        source.learn_head()
        batch = Batch(source.file, source.pos, source.pos + cut, data, data.count(b"\n"))
        source.pos = batch.end
        source.idle_since = None
        self._status.lines_read += batch.lines
        return batch

    def _discover(self) -> None:
        """Open the file now at the path if it is a new one (rename-and-create rotation)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        if any((s.file.dev, s.file.ino) == (st.st_dev, st.st_ino) for s in self._sources):
            return
        if len(self._sources) >= _MAX_OPEN_FILES:
            return  # caught up with later; a file rotated away meanwhile would be missed
        source = _open(self.path)
        if source is not None:
            if self._sources:
                self._status.rotations += 1
                log.info("%s %s: rotated (new file, inode %d)", self.label, self.path, source.file.ino)
            self._sources.append(source)

    def _check_truncated(self, source: _Source) -> bool:
        if source.size() >= source.pos and source.head_matches(source.file):
            return False
        self._status.truncations += 1
        copy = self._find_copy(source)
        if copy is not None:  # the unread tail of the old content is in the copy
            log.info("%s %s: truncated (copytruncate); finishing the copy %s first", self.label, self.path, copy.handle.name)
            self._sources.insert(0, copy)
        else:
            log.info("%s %s: truncated (copytruncate); reading from 0", self.label, self.path)
        source.pos = 0
        source.skipping = False
        source.file = replace(source.file, head="", head_len=0)
        source.learn_head()
        return True

    def _find_copy(self, source: _Source) -> _Source | None:
        """The copy logrotate made before truncating: a sibling starting with the same first line."""
        if not source.file.head:
            return None
        with contextlib.suppress(OSError):
            for candidate in sorted(self.path.parent.iterdir()):
                if not candidate.name.startswith(self.path.name) or candidate == self.path:
                    continue
                copy = _open(candidate)
                if copy is None:
                    continue
                if copy.file.ino != source.file.ino and copy.head_matches(source.file) and copy.size() >= source.pos:
                    copy.pos = source.pos
                    return copy
                copy.close()
        return None

    def _enqueue(self, batch: Batch) -> None:
        self._pending.append(batch)
        self._status.buffered_bytes += len(batch.body)
        self._changed.set()

    async def _read_loop(self) -> None:
        parts: list[Batch] = []  # the batch being filled, from one file
        opened = 0.0

        def flush() -> None:
            nonlocal parts
            if parts:
                first, last = parts[0], parts[-1]
                body = b"".join(p.body for p in parts)
                self._enqueue(Batch(last.file, first.start, last.end, body, sum(p.lines for p in parts)))
                parts = []

        while not self._stopping.is_set():
            self._discover()
            if not self._sources:
                self._set_state("waiting_for_file", str(self.path), reader=True)
                await self._sleep(self.poll_interval)
                continue
            if self._status.buffered_bytes >= self.buffer_max_bytes:
                flush()
                self._set_state("buffer_full", f"{self._status.buffered_bytes} bytes wait; reading paused", reader=True)
                await self._sleep(self.poll_interval)
                continue
            self._set_state("following", reader=True)
            source = self._sources[0]
            size = sum(len(p.body) for p in parts)
            records = sum(p.lines for p in parts)
            if parts and parts[-1].end != source.pos:
                flush()  # never join two ranges that are not contiguous (skipped line)
                continue
            batch = self._cut(source, self.batch_max_bytes - size, self.batch_max_records - records)
            if batch is not None:
                if not parts:
                    opened = time.monotonic()
                parts.append(batch)
                if size + len(batch.body) >= self.batch_max_bytes or records + batch.lines >= self.batch_max_records:
                    flush()
                continue
            if parts and (
                size >= self.batch_max_bytes
                or records >= self.batch_max_records
                or b"\n" in source.pread(source.pos, self.batch_max_bytes)  # a line that does not fit
            ):
                flush()
                continue
            # at the end of the file for now
            if parts and time.monotonic() - opened >= self.flush_interval:
                flush()
            if self._check_truncated(source):
                flush()  # lines read before the truncation are still shipped
                continue
            if len(self._sources) > 1:
                # a newer file exists: switch once this one has stayed at its end for a grace
                # period, as the writer may append a last line before it reopens
                now = time.monotonic()
                source.idle_since = source.idle_since or now
                if now - source.idle_since >= self.rotate_grace:
                    flush()
                    if source.size() > source.pos:
                        self._drop("incomplete_last_line_of_rotated_file", 1)
                    source.close()
                    self._sources.pop(0)
                    continue
            await self._sleep(self.poll_interval if not parts else min(self.poll_interval, self.flush_interval))

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by stop()."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    # -- sending ----------------------------------------------------------------------

    def _persist(self, acked: tuple[FileId, int] | None, inflight: Batch | None) -> None:
        if acked is not None:
            self._acked = acked
        file, offset = self._acked
        state: dict[str, object] = {"version": 1, "file": _file_json(file), "offset": offset, "inflight": None}
        if inflight is not None:
            state["inflight"] = {
                "file": _file_json(inflight.file), "start": inflight.start, "end": inflight.end, "key": inflight.key,
            }
        write_state(self.state_path, state)

    async def _send_loop(self) -> None:
        while True:
            while not self._pending:
                self._changed.clear()
                await self._changed.wait()
            batch = self._pending[0]
            if not batch.body.strip():  # only blank lines: nothing to send
                self._ack(batch)
                continue
            self._persist(None, batch)
            await self._deliver(batch)

    @abc.abstractmethod
    async def _deliver(self, batch: Batch) -> None:
        """Deliver one batch until it is durably stored (then `_delivered`), refused for good
        (`_refused`), or too large (`_split_or_drop`); wait with `_back_off` between tries."""

    def _ack(self, batch: Batch) -> None:
        self._persist((batch.file, batch.end), None)
        self._pending.popleft()
        self._status.buffered_bytes -= len(batch.body)
        self._status.acked_offset = batch.end
        self._changed.set()

    def _delivered(self, batch: Batch) -> None:
        self._ack(batch)
        self._status.batches_sent += 1
        self._status.lines_sent += batch.lines
        self._set_state("shipping")

    def _refused(self, batch: Batch, reason: str) -> None:
        """The receiver kept the batch as a dead letter or cannot ever take it: move on."""
        self._drop(reason, batch.lines)
        self._ack(batch)

    async def _back_off(self, attempt: int, error: str, retry_after: float | None = None) -> None:
        """Exponential backoff with jitter, at least `retry_after` (with up to 20 % more)."""
        self._status.last_error = error
        self._status.retries += 1
        self._set_state("retrying", error)
        ceiling = min(self.backoff_max, self.backoff_initial * 2**attempt)
        delay = ceiling / 2 + self._random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, retry_after * (1 + self._random.uniform(0, 0.2)))
        await asyncio.sleep(delay)

    def _split_or_drop(self, batch: Batch) -> None:
        """413: send the batch as two halves; a single line the server will not take is dropped."""
        if batch.lines <= 1:
            self._drop("too_large_for_server", batch.lines)
            self._ack(batch)
            return
        cut = 0
        for _ in range(batch.lines // 2):
            cut = batch.body.index(b"\n", cut) + 1
        self._pending.popleft()
        halves = [
            Batch(batch.file, batch.start, batch.start + cut, batch.body[:cut], batch.lines // 2),
            Batch(batch.file, batch.start + cut, batch.end, batch.body[cut:], batch.lines - batch.lines // 2),
        ]
        self._pending.extendleft(reversed(halves))
