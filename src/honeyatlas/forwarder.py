"""`honeyatlas forward`: follow a JSON-lines log on a sensor host and ship it to the HTTP ingest.

A client-side agent: the file following (`honeyatlas.sources.follow`, which imports nothing
else of honeyatlas) plus HTTP delivery, so it runs on a sensor with only httpx installed.
Batches go to `POST {url}/api/v1/ingest/{format}`, in order, one at a time.

Delivery: no line lost, none stored twice, across restarts of the agent and of the server.
The position moves only after the server answered 200 (= durably stored). Each batch
carries an `Idempotency-Key` derived from its file range and bytes, so the retry of a batch
that was in flight when the agent or the server died is answered from the server's
idempotency receipts instead of being stored again. While the server is away or answers
429/5xx, the agent backs off (at least Retry-After) and buffers in the log file itself up to
`--buffer-max-bytes`. A token the server refuses (401) will not mend itself: after
`--max-token-refusals` refusals in a row the agent logs one error saying what to do and
stops, and the command exits with status 2; the saved position is kept, so nothing is lost.
Rotation handling and the state file are described in `honeyatlas.sources.follow`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from honeyatlas.sources.follow import Batch, FileFollower, FollowStatus

__all__ = ["FollowStatus", "Forwarder", "main", "run_command"]

log = logging.getLogger("honeyatlas.forward")


def retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff

class Forwarder(FileFollower):
    def __init__(
        self,
        path: Path,
        url: str,
        token: str,
        fmt: str,
        state_path: Path,
        *,
        request_timeout_seconds: float = 30.0,
        max_token_refusals: int = 5,
        **follow_settings: Any,
    ) -> None:
        super().__init__(path, state_path, label="forward", **follow_settings)
        self.endpoint = f"{url.rstrip('/')}/api/v1/ingest/{fmt}"
        self._token = token
        self.request_timeout = request_timeout_seconds
        self.max_token_refusals = max(1, max_token_refusals)
        self._token_refusals = 0  # 401s in a row; any other answer resets it
        self.failure: str | None = None  # why the agent stopped by itself (the token was refused)
        self._client: httpx.AsyncClient | None = None

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/x-ndjson"}
        async with httpx.AsyncClient(timeout=self.request_timeout, headers=headers) as client:
            self._client = client
            try:
                await super().run()
            finally:
                self._client = None

    async def _deliver(self, batch: Batch) -> None:
        """Post one batch until the server takes it (or refuses it for good)."""
        assert self._client is not None
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = await self._client.post(
                    self.endpoint, content=batch.body, headers={"Idempotency-Key": batch.key}
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code != 401:
                    self._token_refusals = 0
                else:
                    self._token_refusals += 1
                    if self._token_refusals >= self.max_token_refusals:
                        await self._give_up_token_refused(response)
                if response.status_code == 200:
                    self._delivered(batch)
                    return
                if response.status_code == 400:  # the server kept it as a dead letter
                    self._refused(batch, "rejected_by_server")
                    return
                if response.status_code == 413:
                    self._split_or_drop(batch)
                    return
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                retry_after = retry_after_seconds(response.headers.get("retry-after"))
            await self._back_off(attempt, error, retry_after)
            attempt += 1

    async def _give_up_token_refused(self, response: httpx.Response) -> None:
        """Retrying cannot help: say so once, loudly, and stop; the batch stays in flight."""
        self._status.last_error = f"HTTP 401: {response.text[:200]}"
        self.failure = (
            f"the server refused the sensor token {self._token_refusals} times in a row (HTTP 401 from "
            f"{self.endpoint}): the token is wrong or the sensor was revoked. Give the sensor's current token "
            "(--token or HONEYATLAS_TOKEN; `honeyatlas sensor add` on the server issues one) and start again; "
            "the saved position is kept, nothing is lost"
        )
        log.error("%s %s: stopped: %s", self.label, self.path, self.failure)
        self.stop()
        await asyncio.Event().wait()  # run() cancels this sender now that it is stopping


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="honeyatlas forward", description="Follow a log file and ship it to honeyatlas.")
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `forward` options; cli.py adds them to its subcommand."""
    parser.add_argument("--file", required=True, help="log file to follow, one JSON record per line")
    parser.add_argument("--url", required=True, help="honeyatlas server, e.g. https://atlas.example.org/")
    parser.add_argument("--token", help="sensor ingest token (default: $HONEYATLAS_TOKEN)")
    parser.add_argument("--format", required=True, help="record format, e.g. cowrie")
    parser.add_argument("--state", help="state file (default: FILE.honeyatlas-forward.state beside the log)")
    parser.add_argument("--batch-max-records", type=int, default=500, help="lines per request (default 500)")
    parser.add_argument("--batch-max-bytes", type=int, default=1024 * 1024, help="bytes per request (default 1 MiB)")
    parser.add_argument("--flush-interval-seconds", type=float, default=1.0,
                        help="send a partial batch after this long (default 1)")
    parser.add_argument("--buffer-max-bytes", type=int, default=16 * 1024 * 1024,
                        help="read ahead at most this much while the server is away (default 16 MiB)")
    parser.add_argument("--backoff-max-seconds", type=float, default=30.0, help="longest wait between retries (default 30)")
    parser.add_argument("--max-token-refusals", type=int, default=5, metavar="N",
                        help="stop with exit status 2 after the server refused the token (401) N times in a row "
                             "(default 5); 429, 5xx and network errors are retried without limit")


def forwarder_from(args: argparse.Namespace) -> Forwarder:
    token = args.token or os.environ.get("HONEYATLAS_TOKEN")
    if not token:
        raise SystemExit("honeyatlas forward: error: give --token or set HONEYATLAS_TOKEN")
    path = Path(args.file)
    state = Path(args.state) if args.state else path.with_name(path.name + ".honeyatlas-forward.state")
    return Forwarder(
        path, args.url, token, args.format, state,
        batch_max_records=args.batch_max_records, batch_max_bytes=args.batch_max_bytes,
        flush_interval_seconds=args.flush_interval_seconds, buffer_max_bytes=args.buffer_max_bytes,
        backoff_max_seconds=args.backoff_max_seconds, max_token_refusals=args.max_token_refusals,
    )


async def run_until_signalled(forwarder: Forwarder) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, forwarder.stop)
    await forwarder.run()


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))


def run_command(args: argparse.Namespace) -> int:
    """Run the agent for parsed `forward` options until SIGTERM or Ctrl-C (cli.py calls this),
    or until the server refuses the token for good: then the exit status is 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    forwarder = forwarder_from(args)
    asyncio.run(run_until_signalled(forwarder))
    status = forwarder.status()
    print(f"forwarded {status.lines_sent} lines in {status.batches_sent} batches ({status.retries} retries)",
          file=sys.stderr)
    return 2 if forwarder.failure else 0


if __name__ == "__main__":
    raise SystemExit(main())
