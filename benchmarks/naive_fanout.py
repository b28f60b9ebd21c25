"""The naive fan-out baseline: one WebSocket message per event per client, stdlib json.

What a first version of a live map usually looks like: for every incoming event, encode it
and await `send` on every client in turn. It uses the same `websockets` library as the
honeyatlas server. Events arrive on `/feed` as JSON arrays (the benchmark's sender); clients
connect to `/api/v1/live` and get `{"type":"events","events":[<one event>]}` per event, so
the receivers parse both servers the same way.

Run: `python -m benchmarks.naive_fanout` prints `naive fan-out listening on ws://127.0.0.1:PORT/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


async def main() -> None:
    clients: set[ServerConnection] = set()

    async def handler(socket: ServerConnection) -> None:
        path = socket.request.path if socket.request else "/"
        if path == "/feed":
            with contextlib.suppress(ConnectionClosed):  # the feeder hangs up when the run ends
                async for batch in socket:
                    for event in json.loads(batch):
                        message = json.dumps({"type": "events", "events": [event]}, separators=(",", ":"))
                        for client in list(clients):
                            with contextlib.suppress(ConnectionClosed):
                                await client.send(message)
            return
        clients.add(socket)
        try:
            await socket.wait_closed()
        finally:
            clients.discard(socket)

    stop: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None, max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"naive fan-out listening on ws://127.0.0.1:{port}/", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
