"""What a log client is sent: bounded queues, so a slow client, or a flooding stream, never
holds back the others.

A :class:`Channel` is one connection; an :class:`Outbox` is one stream's frames on it (the
whole log WebSocket has one; the multiplexed socket one per subscription). While the
connection's send buffer is empty a frame is written straight to its transport, with no task
switch (that is what lets thousands of clients share a stream cheaply: a batch's lines are
encoded once for all). Once the buffer is not empty, frames queue in their outbox and the
channel's writer task sends them, taking one frame's worth from each outbox in turn, so a
flooding outbox gets its share of the connection and no more. Past ``max_lines`` queued lines
an outbox drops its own oldest ones and says how many with ``{"type": "dropped", "count":
N}``; control frames are never dropped. A channel may also cap the bytes queued in all its
outboxes together (``max_pending_bytes``): past it, ``on_overflow`` is told the outbox
holding the most. A client that accepts nothing for ``stall_timeout`` seconds is
disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from collections.abc import Callable, Sequence

import orjson
from aiohttp import WSMsgType, web

from gpuctl_async.logs.frames import Batch, compact, control_frame, lines_frame, log_frame
from gpuctl_async.logs.lines import Line
from gpuctl_async.logs.stats import LogStats

log = logging.getLogger(__name__)

MAX_FRAME_LINES = 1000
LINE_OVERHEAD = 64
"""Bytes a queued line is counted for beyond its text (its JSON members)."""

Cursors = str | list[str] | None
"""The cursor after a delivery: one token, or (outboxes with ``per_line_cursor``) one per
line."""


def _text_frame_header(length: int) -> bytes:
    # RFC 6455 §5.2, server to client: FIN + text opcode, unmasked.
    if length < 126:
        return struct.pack("!BB", 0x81, length)
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


def _last(cursors: Cursors) -> str | None:
    return cursors[-1] if isinstance(cursors, list) else cursors


class Channel:
    """One WebSocket connection shared by outboxes (created with ``compress=False``)."""

    __slots__ = ("_ws", "_transport", "stall_timeout", "max_pending_bytes", "on_overflow",
                 "pending_bytes", "_outboxes", "_turns", "_writer", "closed", "stats")

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, *,
                 stall_timeout: float, stats: LogStats, max_pending_bytes: int | None = None,
                 on_overflow: Callable[[Outbox], None] | None = None):
        self._ws = ws
        self.stats = stats
        """Frames, lines, drops and stalls, counted for the metrics (the hub's)."""
        self._transport = request.transport
        self.stall_timeout = stall_timeout
        self.max_pending_bytes = max_pending_bytes
        self.on_overflow = on_overflow
        self.pending_bytes = 0
        # A list: a plain log socket has one outbox, and an empty set alone is 216 bytes.
        self._outboxes: list[Outbox] = []
        self._turns: deque[Outbox] | None = None  # outboxes with frames waiting, in turn
        self._writer: asyncio.Task[None] | None = None
        self.closed = False

    def attach(self, outbox: Outbox) -> None:
        self._outboxes.append(outbox)

    def detach(self, outbox: Outbox) -> None:
        with contextlib.suppress(ValueError):
            self._outboxes.remove(outbox)
        if self._turns:
            with contextlib.suppress(ValueError):
                self._turns.remove(outbox)

    def idle(self) -> bool:
        transport = self._transport
        return (self._writer is None and not self.closed and transport is not None
                and not transport.is_closing() and not self._ws.closed
                and transport.get_write_buffer_size() == 0)

    def write_now(self, frame: bytes, lines: int = 0) -> None:
        # An empty socket buffer means writing cannot block or pause the protocol, so the
        # frame goes out synchronously, in the fan-out loop, without a task per client.
        assert self._transport is not None
        self._transport.write(_text_frame_header(len(frame)) + frame)
        self.stats.frames_sent += 1
        self.stats.lines_sent += lines

    async def send(self, frame: bytes) -> None:
        await self._ws.send_frame(frame, WSMsgType.TEXT)

    def queued(self, outbox: Outbox, added: int) -> None:
        """``outbox`` has ``added`` more bytes queued (negative: fewer)."""
        self.pending_bytes += added
        if added > 0:
            if self._turns is None:
                self._turns = deque()
            if outbox not in self._turns:
                self._turns.append(outbox)
            if self._writer is None and not self.closed:
                self._writer = asyncio.create_task(self._write_queue(), name="log writer")
            if (self.max_pending_bytes is not None and self.on_overflow is not None
                    and self.pending_bytes > self.max_pending_bytes):
                self.on_overflow(max(self._outboxes, key=lambda o: o.pending_bytes))

    async def flush(self) -> None:
        """Wait until everything offered so far is sent (or the client is gone)."""
        while self._writer is not None and not self.closed:
            await asyncio.shield(self._writer)

    def abort(self) -> None:
        """Drop the connection now, without a closing handshake."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    async def close(self) -> None:
        self.closed = True
        for outbox in list(self._outboxes):
            outbox.discard()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def _write_queue(self) -> None:
        try:
            while self._turns and not self.closed:
                outbox = self._turns.popleft()
                frames = outbox.take()
                if outbox.has_queued():
                    self._turns.append(outbox)
                elif outbox.closed:
                    self.detach(outbox)  # finished: its last frames go out now
                for frame, lines in frames:
                    async with asyncio.timeout(self.stall_timeout):
                        await self.send(frame)
                    self.stats.frames_sent += 1
                    self.stats.lines_sent += lines
        except TimeoutError:
            log.info("log client stalled for %.0f s: disconnecting it", self.stall_timeout)
            self.stats.clients_stalled += 1
            self.abort()
        except ConnectionError:
            self.closed = True  # the client went away; the handler notices too
        finally:
            self._writer = None
            if not self._turns:
                self._turns = None


class Outbox:
    """One stream's frames on a channel: lines bounded to ``max_lines``, oldest dropped."""

    __slots__ = ("channel", "timestamps", "max_lines", "sub_id", "_queue", "_queued_lines",
                 "_dropped", "pending_bytes", "closed")

    per_line_cursor = False
    """Whether this outbox wants a cursor per line (SSE: one event per line)."""

    def __init__(self, channel: Channel, *, timestamps: bool, max_lines: int,
                 sub_id: str | None = None):
        self.channel = channel
        self.timestamps = timestamps
        self.max_lines = max_lines
        self.sub_id = compact(orjson.dumps(sub_id)) if sub_id is not None else None
        # None while nothing waits: an empty deque costs ~600 bytes, times every client.
        self._queue: deque[tuple[list[Line], Cursors] | bytes] | None = None
        self._queued_lines = 0
        self._dropped = 0
        self.pending_bytes = 0
        self.closed = False
        channel.attach(self)

    # -- offering ---------------------------------------------------------------------------

    def batch(self, batch: Batch, cursors: Cursors = None) -> None:
        """Lines shared with other clients: their frame body is encoded once for all."""
        if not self.closed:
            if self._idle():
                cursor = _last(cursors)
                self.channel.write_now(
                    batch.frame(self.timestamps, cursor) if self.sub_id is None
                    else log_frame(batch.body(self.timestamps), cursor, self.sub_id),
                    len(batch.lines))
            else:
                self._enqueue_lines(batch.lines, cursors)

    def lines(self, lines: list[Line], cursors: Cursors = None) -> None:
        if lines and not self.closed:
            if self._idle() and len(lines) <= MAX_FRAME_LINES:
                self.channel.write_now(self.encode_lines(lines, cursors), len(lines))
            else:
                self._enqueue_lines(lines, cursors)

    def control(self, kind: str, **fields: object) -> None:
        """A frame that is never dropped, sent after every line offered before it."""
        self.frame(self.encode_control(kind, fields))

    def frame(self, frame: bytes) -> None:
        """An encoded frame that is never dropped (control frames, the job feed's)."""
        if self.closed:
            return
        if self._idle():
            self.channel.write_now(frame)
        else:
            self._waiting().append(frame)
            self._account(len(frame))

    def finish(self) -> None:
        """Take nothing more; leave the channel once what is queued has been sent."""
        self.closed = True
        if not self.has_queued():
            self.channel.detach(self)

    def discard(self) -> None:
        """Forget everything queued and take nothing more."""
        self.closed = True
        self._queue = None
        self._queued_lines = self._dropped = 0
        self._account(-self.pending_bytes)
        self.channel.detach(self)

    # -- encoding (SSE outboxes encode otherwise) -------------------------------------------

    def encode_lines(self, lines: Sequence[Line], cursors: Cursors) -> bytes:
        return lines_frame(lines, self.timestamps, _last(cursors), self.sub_id)

    def encode_control(self, kind: str, fields: dict[str, object]) -> bytes:
        return control_frame(kind, self.sub_id, **fields)

    # -- what the channel's writer takes ----------------------------------------------------

    @property
    def dropping(self) -> int:
        """Lines dropped that the client has not been told of yet."""
        return self._dropped

    def has_queued(self) -> bool:
        return bool(self._queue) or bool(self._dropped)

    def take(self) -> list[tuple[bytes, int]]:
        """The next frames, each with its number of lines: the control frames first in line
        and one frame of lines (at most ``MAX_FRAME_LINES``), preceded by a ``dropped``
        count if lines were dropped."""
        frames: list[tuple[bytes, int]] = []
        if self._dropped:
            frames.append((self.encode_control("dropped", {"count": self._dropped}), 0))
            self._dropped = 0
        lines: list[Line] = []
        cursors: list[str] = []
        last: str | None = None
        freed = 0
        queue = self._queue or deque()
        while queue:
            item = queue[0]
            if isinstance(item, bytes):
                if lines:
                    break
                queue.popleft()
                frames.append((item, 0))
                freed += len(item)
                continue
            chunk, chunk_cursors = item
            if lines and len(lines) + len(chunk) > MAX_FRAME_LINES:
                break
            queue.popleft()
            self._queued_lines -= len(chunk)
            freed += _size(chunk)
            lines.extend(chunk)
            if isinstance(chunk_cursors, list):
                cursors.extend(chunk_cursors)
            last = _last(chunk_cursors)
        if lines:
            frames.append((self.encode_lines(lines, cursors if self.per_line_cursor else last),
                           len(lines)))
        if not queue:
            self._queue = None
        self._account(-freed)
        return frames

    # -- internals --------------------------------------------------------------------------

    def _idle(self) -> bool:
        return not self._queue and not self._dropped and self.channel.idle()

    def _waiting(self) -> deque:
        if self._queue is None:
            self._queue = deque()
        return self._queue

    def _account(self, added: int) -> None:
        self.pending_bytes += added
        self.channel.queued(self, added)

    def _enqueue_lines(self, lines: list[Line], cursors: Cursors) -> None:
        self._waiting().append((lines, cursors))
        self._queued_lines += len(lines)
        added = _size(lines)
        while self._queued_lines > self.max_lines:
            added -= self._drop_oldest(self._queued_lines - self.max_lines)
        self._account(added)

    def _drop_oldest(self, count: int) -> int:
        """Drop up to ``count`` of the oldest queued lines; returns the bytes freed."""
        queue = self._waiting()
        for index, item in enumerate(queue):
            if isinstance(item, tuple):
                chunk, cursors = item
                cut = min(count, len(chunk))
                if cut == len(chunk):
                    del queue[index]
                else:
                    rest = cursors[cut:] if isinstance(cursors, list) else cursors
                    queue[index] = (chunk[cut:], rest)
                self._queued_lines -= cut
                self._dropped += cut
                self.channel.stats.lines_dropped += cut
                return _size(chunk[:cut])
        return 0


def _size(lines: Sequence[Line]) -> int:
    return sum(len(line.text) for line in lines) + LINE_OVERHEAD * len(lines)


class Sink(Outbox):
    """The outbound side of one log WebSocket: a channel with a single outbox."""

    __slots__ = ()

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, *, timestamps: bool,
                 max_lines: int, stall_timeout: float, stats: LogStats):
        super().__init__(Channel(ws, request, stall_timeout=stall_timeout, stats=stats),
                         timestamps=timestamps, max_lines=max_lines)

    async def flush(self) -> None:
        await self.channel.flush()

    async def close(self) -> None:
        await self.channel.close()
