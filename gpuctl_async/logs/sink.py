"""What one WebSocket client is sent: a bounded queue, so a slow client never holds back
the others.

A client that keeps up gets each batch's shared frame written straight to its socket, with
no task switch (that is what lets thousands of clients share a stream cheaply). Once its
socket buffer is not empty, frames queue up instead and the client's own writer task sends
them, as few frames as possible; past ``max_lines`` queued lines the oldest are dropped and
the client is told how many with ``{"type": "dropped", "count": N}``. A client that accepts
nothing for ``stall_timeout`` seconds is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque

from aiohttp import WSMsgType, web

from gpuctl_async.logs.frames import Batch, control_frame, lines_frame
from gpuctl_async.logs.lines import Line
from gpuctl_async.logs.stats import LogStats

log = logging.getLogger(__name__)

MAX_FRAME_LINES = 1000


def _text_frame_header(length: int) -> bytes:
    # RFC 6455 §5.2, server to client: FIN + text opcode, unmasked.
    if length < 126:
        return struct.pack("!BB", 0x81, length)
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


class Sink:
    """The outbound side of one log WebSocket (created with ``compress=False``)."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, *, timestamps: bool,
                 max_lines: int, stall_timeout: float, stats: LogStats):
        self._ws = ws
        self._stats = stats
        self._transport = request.transport
        self.timestamps = timestamps
        self.max_lines = max_lines
        self.stall_timeout = stall_timeout
        self._queue: deque[list[Line] | bytes] = deque()
        self._queued_lines = 0
        self._dropped = 0
        self._writer: asyncio.Task[None] | None = None
        self.closed = False

    # -- offering ---------------------------------------------------------------------------

    def batch(self, batch: Batch) -> None:
        """Lines shared with other clients: their frame is encoded once for all."""
        if not self.closed:
            if self._idle():
                self._write_now(batch.frame(self.timestamps), len(batch.lines))
            else:
                self._enqueue_lines(batch.lines)

    def lines(self, lines: list[Line]) -> None:
        if lines and not self.closed:
            if self._idle() and len(lines) <= MAX_FRAME_LINES:
                self._write_now(lines_frame(lines, self.timestamps), len(lines))
            else:
                self._enqueue_lines(lines)

    def control(self, kind: str, **fields: object) -> None:
        """A frame that is never dropped, sent after every line offered before it."""
        if self.closed:
            return
        frame = control_frame(kind, **fields)
        if self._idle():
            self._write_now(frame)
        else:
            self._queue.append(frame)
            self._start_writer()

    async def flush(self) -> None:
        """Wait until everything offered so far is sent (or the client is gone)."""
        while self._writer is not None and not self.closed:
            await asyncio.shield(self._writer)

    async def close(self) -> None:
        self.closed = True
        self._queue.clear()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    # -- internals --------------------------------------------------------------------------

    def _idle(self) -> bool:
        transport = self._transport
        return (self._writer is None and not self._queue and transport is not None
                and not transport.is_closing() and not self._ws.closed
                and transport.get_write_buffer_size() == 0)

    def _write_now(self, frame: bytes, lines: int = 0) -> None:
        # An empty socket buffer means writing cannot block or pause the protocol, so the
        # frame goes out synchronously, in the fan-out loop, without a task per client.
        assert self._transport is not None
        self._transport.write(_text_frame_header(len(frame)) + frame)
        self._stats.frames_sent += 1
        self._stats.lines_sent += lines

    def _enqueue_lines(self, lines: list[Line]) -> None:
        self._queue.append(lines)
        self._queued_lines += len(lines)
        while self._queued_lines > self.max_lines:
            self._drop_oldest(self._queued_lines - self.max_lines)
        self._start_writer()

    def _drop_oldest(self, count: int) -> None:
        for index, item in enumerate(self._queue):
            if isinstance(item, list):
                cut = min(count, len(item))
                if cut == len(item):
                    del self._queue[index]
                else:
                    self._queue[index] = item[cut:]
                self._queued_lines -= cut
                self._dropped += cut
                self._stats.lines_dropped += cut
                return

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queue(), name="log socket writer")

    def _next_frames(self) -> list[tuple[bytes, int]]:
        """The frames to send next, each with its number of lines."""
        frames: list[tuple[bytes, int]] = []
        if self._dropped:
            frames.append((control_frame("dropped", count=self._dropped), 0))
            self._dropped = 0
        lines: list[Line] = []
        while self._queue:
            item = self._queue.popleft()
            if isinstance(item, bytes):
                if lines:
                    frames.append((lines_frame(lines, self.timestamps), len(lines)))
                    lines = []
                frames.append((item, 0))
                continue
            self._queued_lines -= len(item)
            lines.extend(item)
            if len(lines) >= MAX_FRAME_LINES:
                frames.append((lines_frame(lines, self.timestamps), len(lines)))
                lines = []
        if lines:
            frames.append((lines_frame(lines, self.timestamps), len(lines)))
        return frames

    async def _write_queue(self) -> None:
        try:
            while (self._queue or self._dropped) and not self.closed:
                for frame, lines in self._next_frames():
                    async with asyncio.timeout(self.stall_timeout):
                        await self._ws.send_frame(frame, WSMsgType.TEXT)
                    self._stats.frames_sent += 1
                    self._stats.lines_sent += lines
        except TimeoutError:
            log.info("log socket stalled for %.0f s: disconnecting it", self.stall_timeout)
            self._stats.clients_stalled += 1
            self.closed = True
            if self._transport is not None:
                self._transport.abort()
        except ConnectionError:
            self.closed = True  # the client went away; the handler notices too
        finally:
            self._writer = None
