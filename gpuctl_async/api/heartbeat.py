"""One heartbeat for every log WebSocket: pings from one task, dead peers disconnected.

aiohttp's own heartbeat (``WebSocketResponse(heartbeat=...)``) keeps a timer per socket,
rescheduled after every message received: ~500 bytes a socket, times every open log socket.
Here one task pings every registered socket each ``log_heartbeat`` seconds; a socket that
has sent nothing (a pong, or any other message) by the next ping is taken for a dead peer
and its connection is dropped, which ends its handler as a lost connection does.

The sockets are opened with ``autoping=False``, so that their handlers see the pongs: each
message they read goes through :meth:`Heartbeat.consumed` first, which notes the socket
alive and answers the client's own pings. Pings and pongs are written straight to the
transport, as the log frames are (``logs.sink.Channel``): one write, no task per socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import AsyncIterator

from aiohttp import WSMsgType, web

from gpuctl_async.appkeys import SETTINGS

log = logging.getLogger(__name__)

_PING, _PONG = 0x89, 0x8A  # RFC 6455 §5.2 and §5.5: FIN + opcode, server frames unmasked


def _control_frame(opcode: int, payload: bytes = b"") -> bytes:
    return struct.pack("!BB", opcode, len(payload)) + payload  # control payloads <= 125


PING = _control_frame(_PING)
PONG_BUFFER_LIMIT = 64 * 1024
"""A client's ping is answered only while less than this waits in the socket's send buffer:
one that pings without reading must not make the server buffer pongs without bound (RFC
6455 §5.5.3 lets a pong answer only the latest ping)."""


class Heartbeat:
    """Pings the sockets :meth:`add`-ed to it every ``interval`` seconds from one task."""

    def __init__(self, interval: float):
        self.interval = interval
        self._sockets: dict[web.WebSocketResponse, asyncio.Transport] = {}
        self._owing: set[web.WebSocketResponse] = set()
        """Pinged at the last beat, nothing heard since."""
        self.dead = 0
        """Sockets disconnected for answering no ping, so far."""

    def add(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        """Ping ``ws`` (prepared, ``autoping=False``) until :meth:`discard`."""
        transport = request.transport
        if transport is not None:
            self._sockets[ws] = transport

    def discard(self, ws: web.WebSocketResponse) -> None:
        self._sockets.pop(ws, None)
        self._owing.discard(ws)

    def consumed(self, ws: web.WebSocketResponse, message: web.WSMessage) -> bool:
        """Note ``ws`` alive on ``message``; answer a ping. True for a ping or a pong: the
        handler has nothing more to do with it."""
        self._owing.discard(ws)
        if message.type is WSMsgType.PING:
            transport = self._sockets.get(ws)
            if (transport is not None and not ws.closed and not transport.is_closing()
                    and transport.get_write_buffer_size() < PONG_BUFFER_LIMIT):
                transport.write(_control_frame(_PONG, message.data[:125]))
            return True
        return message.type is WSMsgType.PONG

    def beat(self) -> None:
        """Drop the sockets that answered nothing since the last beat; ping the others."""
        dead = 0
        for ws in self._owing:
            transport = self._sockets.get(ws)
            if transport is not None and not transport.is_closing():
                transport.abort()  # the handler sees a lost connection and cleans up
                dead += 1
        if dead:
            self.dead += dead
            log.info("%d WebSocket(s) answered no ping for %.0f s: disconnected", dead,
                     self.interval)
        owing = set()
        for ws, transport in self._sockets.items():
            # After a close frame nothing more may be sent (RFC 6455 §5.5.1).
            if not ws.closed and not transport.is_closing():
                transport.write(PING)
                owing.add(ws)
        self._owing = owing

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.beat()


HEARTBEAT = web.AppKey("heartbeat", Heartbeat)
"""The log routes' heartbeat (``/logs/ws``, ``/api/v1/stream``)."""


def setup_heartbeat(app: web.Application) -> None:
    """``app[HEARTBEAT]``, beating every ``log_heartbeat`` seconds while the app runs."""
    heartbeat = app[HEARTBEAT] = Heartbeat(app[SETTINGS].log_heartbeat)

    async def beating(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(heartbeat.run(), name="websocket heartbeat")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(beating)
