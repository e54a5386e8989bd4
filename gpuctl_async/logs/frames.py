"""The JSON frames of the log WebSocket, encoded once and shared by every client that gets
the same lines.

``{"type": "log", "data": ..., "pod": ..., "ts": ...}`` for one line, ``{"type": "logs",
"lines": [{data, pod, ts}, ...]}`` for several; control frames ``pod-ended``, ``dropped``,
``end`` and ``error``.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from gpuctl_async.logs.lines import Line

_ONE = b'{"type":"log",'
_MANY = b'{"type":"logs","lines":['


def _item(line: Line, timestamps: bool) -> bytes:
    return orjson.dumps({"data": line.data(timestamps), "pod": line.pod, "ts": line.ts})


def lines_frame(lines: Sequence[Line], timestamps: bool) -> bytes:
    if len(lines) == 1:
        return _ONE + _item(lines[0], timestamps)[1:]
    return _MANY + b",".join(_item(line, timestamps) for line in lines) + b"]}"


def control_frame(kind: str, **fields: object) -> bytes:
    return orjson.dumps({"type": kind, **fields})


class Batch:
    """Lines that arrived together on one upstream stream; frames built on first use."""

    __slots__ = ("lines", "_frames")

    def __init__(self, lines: list[Line]):
        self.lines = lines
        self._frames: dict[bool, bytes] = {}

    def frame(self, timestamps: bool) -> bytes:
        frame = self._frames.get(timestamps)
        if frame is None:
            frame = self._frames[timestamps] = lines_frame(self.lines, timestamps)
        return frame
