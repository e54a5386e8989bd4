"""The open WebSockets of a route, so that a shutdown closes them with 1001.

Held in a plain ``set`` (or ``dict``) that the view adds to and removes from in its
``finally``: a ``weakref.WeakSet`` costs ~640 bytes more per socket (a weak reference with
its callback), times every open log socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from aiohttp import WSCloseCode, web


async def close_sockets(sockets: Collection[web.WebSocketResponse]) -> None:
    """Close every socket of ``sockets`` (a set, or a dict keyed by socket) as going away."""
    await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
                           for ws in list(sockets)), return_exceptions=True)


def close_at_shutdown(app: web.Application, key: web.AppKey) -> None:
    """Close the sockets held at ``app[key]`` when the app shuts down."""
    async def close(app: web.Application) -> None:
        await close_sockets(app[key])

    app.on_shutdown.append(close)
