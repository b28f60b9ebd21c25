"""`GET /api/v1/live`: the WebSocket stream of the live hub.

On connect the client gets a snapshot of recent events, then the hub's batched frames,
a `dropped` notice whenever its bounded queue overflowed, and heartbeats while idle.
Anything the client sends is read and ignored, so a disconnect is noticed at once.
"""

from __future__ import annotations

import asyncio
import contextlib

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.handlers import WebsocketRouteHandler

from honeyatlas.sinks import LiveClient, LiveClients
from honeyatlas.web.access import PUBLIC


def live_route(hub: LiveClients) -> WebsocketRouteHandler:
    @websocket("/api/v1/live", opt=PUBLIC)
    async def live(socket: WebSocket) -> None:  # type: ignore[type-arg]
        # Anonymous clients (only let in when the public view is on) get the redacted view.
        registered = hub.connect("full" if socket.state.principal is not None else "public")
        if registered is None:
            await socket.close(code=1013, reason="too many live clients; try again later")
            return
        client, snapshot = registered
        await socket.accept()
        reader = asyncio.create_task(_drain(socket, client))
        try:
            await socket.send_text(snapshot)
            while not client.closed:
                for message in await client.next_messages():
                    await socket.send_text(message)
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass
        finally:
            hub.disconnect(client)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
            with contextlib.suppress(Exception):
                await socket.close()

    return live


async def _drain(socket: WebSocket, client: LiveClient) -> None:  # type: ignore[type-arg]
    with contextlib.suppress(WebSocketDisconnect, Exception):
        while True:
            await socket.receive_data(mode="text")
    client.close()
