"""Server-Sent Events for job logs: ``curl -N`` and browsers' ``EventSource`` follow a job.

One event per line, ``id:`` its cursor (``logs.cursor``) so that a reconnect with
``Last-Event-ID`` (what ``EventSource`` sends by itself) resumes with no gap and no repeat,
``data:`` the line as JSON ``{"data", "pod", "ts"}``. Other events are named:
``event: pod-ended`` / ``dropped`` / ``end`` / ``error``, their ``data:`` the JSON fields of
the WebSocket frame of that name. A comment line goes out when nothing else was sent for
``keepalive`` seconds, so proxies do not cut an idle stream.

The session and its queue are the log WebSocket's (``logs.session``, ``logs.sink``): the same
shared upstream streams, the same bound on queued lines. An HTTP response has no
synchronous write path, so every event goes through the outbox's writer task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import orjson
from aiohttp import web

from gpuctl_async.errors import GpuctlError
from gpuctl_async.logs.lines import Line
from gpuctl_async.logs.session import JobLogSession, SessionFailed
from gpuctl_async.logs.sink import Channel, Cursors, Outbox
from gpuctl_async.logs.stats import LogStats

log = logging.getLogger(__name__)

HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
           "X-Accel-Buffering": "no"}  # nginx: pass events on as they come
KEEPALIVE_COMMENT = b": keep-alive\n\n"
# How often the stream looks whether its client went away (an idle HTTP response is told
# nothing when its connection closes).
LIVENESS_CHECK = 1.0


class SseChannel(Channel):
    """An event-stream response as a channel: writes always go through the writer task."""

    def __init__(self, response: web.StreamResponse, request: web.Request, *,
                 stall_timeout: float, stats: LogStats):
        super().__init__(None, request, stall_timeout=stall_timeout,  # type: ignore[arg-type]
                         stats=stats)
        self._response = response
        self._request = request
        self.last_write = time.monotonic()

    def idle(self) -> bool:
        return False

    def gone(self) -> bool:
        transport = self._request.transport
        return self.closed or transport is None or transport.is_closing()

    async def send(self, frame: bytes) -> None:
        self.last_write = time.monotonic()
        await self._response.write(frame)


class SseOutbox(Outbox):
    __slots__ = ()
    per_line_cursor = True

    def encode_lines(self, lines: Sequence[Line], cursors: Cursors) -> bytes:
        assert isinstance(cursors, list) and len(cursors) == len(lines)
        return b"".join(
            b"id: " + cursor.encode() + b"\ndata: " + orjson.dumps(
                {"data": line.data(self.timestamps), "pod": line.pod, "ts": line.ts}) + b"\n\n"
            for line, cursor in zip(lines, cursors))

    def encode_control(self, kind: str, fields: dict[str, object]) -> bytes:
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(fields) + b"\n\n"


async def follow_as_events(session: JobLogSession, outbox: SseOutbox, *, keepalive: float,
                           stopping: asyncio.Event) -> None:
    """Run ``session`` (whose sink is ``outbox``) until the job ends, the session fails, the
    client goes away or ``stopping`` is set (shutdown)."""
    channel = outbox.channel
    assert isinstance(channel, SseChannel)
    runner = asyncio.create_task(session.run(), name="log events")
    try:
        while not runner.done():
            if stopping.is_set() or channel.gone():
                return
            quiet = time.monotonic() - channel.last_write
            if quiet >= keepalive:
                outbox.frame(KEEPALIVE_COMMENT)
                channel.last_write = time.monotonic()
                quiet = 0.0
            await asyncio.wait({runner}, timeout=min(LIVENESS_CHECK, keepalive - quiet))
        try:
            runner.result()
        except (SessionFailed, GpuctlError) as exc:
            outbox.control("error", data=str(exc))
        except Exception:
            log.exception("log events of %s failed", session.job.name)
            outbox.control("error", data="internal error while streaming logs")
        await channel.flush()
    finally:
        if not runner.done():
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        await channel.close()
