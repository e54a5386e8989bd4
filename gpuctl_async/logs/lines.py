"""Log lines as read from Kubernetes with ``timestamps=true``, and their timestamps.

Timestamps are kept as integer nanoseconds since the epoch (exact, cheap to compare) and
shown as RFC3339 with nine fractional digits in UTC, as the kubelet writes them.
"""

from __future__ import annotations

import calendar
import functools
import time

NS = 1_000_000_000


@functools.lru_cache(maxsize=4096)
def _epoch_seconds(prefix: str) -> int:
    return calendar.timegm(time.strptime(prefix, "%Y-%m-%dT%H:%M:%S"))


def parse_ts(text: str) -> int:
    """RFC3339 (any number of fractional digits, ``Z`` or an offset) → nanoseconds.

    Raises ValueError for anything else."""
    if len(text) < 20 or text[10] not in "Tt":
        raise ValueError(f"not an RFC3339 timestamp: {text!r}")
    seconds = _epoch_seconds(text[:19])
    rest, fraction = text[19:], 0
    if rest.startswith("."):
        end = 1
        while end < len(rest) and rest[end].isdigit():
            end += 1
        if end == 1:
            raise ValueError(f"not an RFC3339 timestamp: {text!r}")
        fraction = int(rest[1:end][:9].ljust(9, "0"))
        rest = rest[end:]
    if rest in ("Z", "z"):
        offset = 0
    elif len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
    else:
        raise ValueError(f"not an RFC3339 timestamp: {text!r}")
    return (seconds - offset) * NS + fraction


def format_ts(ns: int) -> str:
    seconds, fraction = divmod(ns, NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def format_seconds(ns: int) -> str:
    """Whole seconds, rounded down: what ``sinceTime`` carries to the kubelet."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // NS))


class Line:
    """One log line of one pod. ``seq`` numbers the lines of that pod sharing one timestamp
    (0 for the first): a multi-line write gets one timestamp for all its lines, and
    ``(ns, seq)`` tells them apart (see ``logs.cursor``)."""

    __slots__ = ("ns", "ts", "text", "pod", "seq")

    def __init__(self, ns: int, ts: str, text: str, pod: str, seq: int = 0):
        self.ns, self.ts, self.text, self.pod, self.seq = ns, ts, text, pod, seq

    def data(self, timestamps: bool) -> str:
        return f"{self.ts} {self.text}" if timestamps else self.text

    def __repr__(self) -> str:
        return f"Line({self.pod} {self.ts} {self.text!r})"


def parse_line(raw: bytes, pod: str) -> Line | None:
    """``<RFC3339 timestamp> <text>``; None for a line without a timestamp."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    stamp, _, rest = text.partition(" ")
    try:
        ns = parse_ts(stamp)
    except ValueError:
        return None
    return Line(ns, format_ts(ns), rest, pod)


def parse_body(body: bytes, pod: str) -> list[Line]:
    lines: list[Line] = []
    for raw in body.splitlines():
        line = parse_line(raw, pod)
        if line is not None:
            if lines and lines[-1].ns == line.ns:
                line.seq = lines[-1].seq + 1
            lines.append(line)
    return lines


class LineSplitter:
    """Cuts a byte stream into complete lines, keeping a partial last line for later."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._rest + chunk
        lines = data.split(b"\n")
        self._rest = lines.pop()
        return lines
