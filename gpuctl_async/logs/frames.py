"""The JSON frames of the log streams; a batch's lines are encoded once and shared by every
client that gets them.

``{"type": "log", "data": ..., "pod": ..., "ts": ..., "cursor": ...}`` for one line,
``{"type": "logs", "lines": [{data, pod, ts}, ...], "cursor": ...}`` for several (``cursor``:
where the client is after this frame, ``logs.cursor``); control frames ``pod-ended``,
``dropped``, ``end`` and ``error``. On the multiplexed socket every frame also carries the
subscription's ``id``, given here already encoded as a JSON string (``sub_id``).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from gpuctl_async.logs.cursor import Position, position_after, token_segment
from gpuctl_async.logs.lines import Line

_ONE = b'"type":"log",'
_MANY = b'"type":"logs","lines":['


def compact(data: bytes) -> bytes:
    """A right-sized copy of an ``orjson.dumps`` result. orjson hands back its whole write
    buffer (~4 KiB allocated, however short the JSON), so anything kept for long (a
    subscription's encoded id, a queued control frame) is copied; what is written at once, or
    only sliced and joined into a new frame, need not be."""
    return bytes(memoryview(data))


def _item(line: Line, timestamps: bool) -> bytes:
    return orjson.dumps({"data": line.data(timestamps), "pod": line.pod, "ts": line.ts})


def lines_body(lines: Sequence[Line], timestamps: bool) -> bytes:
    """The frame's members without braces, id or cursor: the part clients share."""
    if len(lines) == 1:
        return _ONE + _item(lines[0], timestamps)[1:-1]
    return _MANY + b",".join(_item(line, timestamps) for line in lines) + b"]"


def log_frame(body: bytes, cursor: str | None = None, sub_id: bytes | None = None) -> bytes:
    """A frame from a shared :func:`lines_body`; cursor tokens need no JSON escaping."""
    head = b"{" if sub_id is None else b'{"id":' + sub_id + b","
    if cursor is None:
        return head + body + b"}"
    return head + body + b',"cursor":"' + cursor.encode() + b'"}'


def lines_frame(lines: Sequence[Line], timestamps: bool, cursor: str | None = None,
                sub_id: bytes | None = None) -> bytes:
    return log_frame(lines_body(lines, timestamps), cursor, sub_id)


def control_frame(kind: str, sub_id: bytes | None = None, **fields: object) -> bytes:
    frame = orjson.dumps({"type": kind, **fields})
    return compact(frame) if sub_id is None else b'{"id":' + sub_id + b"," + frame[1:]


class Batch:
    """Lines that arrived together on one upstream stream; bodies built on first use."""

    __slots__ = ("lines", "_bodies", "_end", "_frame")

    def __init__(self, lines: list[Line]):
        self.lines = lines
        self._bodies: dict[bool, bytes] = {}
        self._end: tuple[str, Position, str] | None = None
        self._frame: tuple[bool, str | None, bytes] | None = None

    def frame(self, timestamps: bool, cursor: str | None) -> bytes:
        """The whole frame (no subscription id): the clients that follow only this pod all
        get the same cursor, so the last frame made is kept for the next client."""
        made = self._frame
        if made is not None and made[0] == timestamps and made[1] == cursor:
            return made[2]
        frame = log_frame(self.body(timestamps), cursor)
        self._frame = (timestamps, cursor, frame)
        return frame

    def end(self, job: str) -> tuple[Position, str]:
        """The position after the batch's last line and its cursor segment, made once for
        every client of the stream (they all follow that pod as part of one job)."""
        end = self._end
        if end is None or end[0] != job:
            position = position_after(self.lines[-1])
            end = self._end = (job, position, token_segment(job, self.lines[0].pod, position))
        return end[1], end[2]

    def body(self, timestamps: bool) -> bytes:
        body = self._bodies.get(timestamps)
        if body is None:
            body = self._bodies[timestamps] = lines_body(self.lines, timestamps)
        return body
