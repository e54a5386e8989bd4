"""Resume cursors: where a client is in each pod's log, exactly.

A single timestamp cannot say where a client is in a job with several pods: a line that
arrives late from one pod (its node's clock is behind, its stream lagged) may be older than
a line of another pod that the client already has, and a resume "after the newest timestamp"
skips it. So a cursor holds a *position per pod*: the timestamp of the last line delivered
from that pod and how many lines of that pod carry that timestamp (a multi-line write stamps
all its lines alike). A position is kept as ``(ns, count)``, which is also the key of the next
line wanted: line ``(ns, seq)`` comes after position ``p`` iff ``(ns, seq) >= p``.

Pods a cursor does not name start at its *floor*: every line strictly after a timestamp (a
plain RFC3339 ``since``, which is still accepted, is a cursor with only a floor), or, with no
floor, the pod's whole log (the client has seen none of its lines).

The token is opaque to clients: ``1~<pod>_<ns hex>[_<count>]~...``, pods of the job written
relative to the job (``.<suffix>`` for ``<job>-<suffix>``), the floor as a pod-less segment.
Only URL-unreserved characters, no newline: it fits a query string, a JSON string and an SSE
``id:`` line as it is.
"""

from __future__ import annotations

import re
import sys

from gpuctl_async.logs.lines import Line, parse_ts

Position = tuple[int, int]
ALL = sys.maxsize
"""As a count: every line at that timestamp was seen (a plain timestamp means this)."""

VERSION = "1"
MAX_PODS = 10_000
_SEGMENT = re.compile(r"(\.?[a-z0-9][a-z0-9.-]{0,252})?_([0-9a-f]{1,16})(?:_([0-9]{1,9}))?")


class CursorError(ValueError):
    """Neither an RFC3339 timestamp nor a cursor this server made; the message says which."""


def after(line: Line, position: Position | None) -> bool:
    """Whether ``line`` is newer than ``position`` (None: nothing seen, every line is)."""
    return position is None or (line.ns, line.seq) >= position


def position_after(line: Line) -> Position:
    return (line.ns, line.seq + 1)


class Cursor:
    """The positions of one client in one job's pods, and its token."""

    __slots__ = ("job", "floor", "_pods", "_token")

    def __init__(self, job: str = "", positions: dict[str, Position] | None = None,
                 floor: Position | None = None):
        self.job = job
        self.floor = floor
        self._pods: dict[str, tuple[Position, str]] = {}
        """pod → (position, its segment of the token)."""
        self._token: str | None = None
        for pod, position in (positions or {}).items():
            self.set(pod, position)

    # -- positions --------------------------------------------------------------------------

    def position(self, pod: str) -> Position | None:
        """Where ``pod``'s lines are to be taken up: its own position, else the floor."""
        known = self._pods.get(pod)
        return known[0] if known is not None else self.floor

    def set(self, pod: str, position: Position, segment: str | None = None) -> None:
        """``segment``: :func:`segment` of these, when the caller has it already."""
        self._pods[pod] = (position, segment or token_segment(self.job, pod, position))
        self._token = None

    def advance(self, line: Line) -> None:
        """``line`` was delivered (the caller saw that it is newer)."""
        self.set(line.pod, position_after(line))

    @property
    def positions(self) -> dict[str, Position]:
        return {pod: position for pod, (position, _) in self._pods.items()}

    # -- the token --------------------------------------------------------------------------

    def token(self) -> str:
        token = self._token
        if token is None and self.floor is None and len(self._pods) == 1:
            for _, segment in self._pods.values():
                token = self._token = f"{VERSION}~{segment}"
        if token is None:
            parts = [VERSION]
            if self.floor is not None:
                parts.append(f"_{self.floor[0]:x}")
            parts += (segment for _, segment in self._pods.values())
            token = self._token = "~".join(parts)
        return token

    @classmethod
    def parse(cls, text: str, job: str = "") -> Cursor:
        """A token made by :meth:`token`, or an RFC3339 timestamp (lines strictly after it);
        pods are named relative to ``job``. CursorError otherwise."""
        if not text.startswith(VERSION + "~") and text != VERSION:
            try:
                return cls(job, floor=(parse_ts(text), ALL))
            except ValueError:
                raise CursorError("must be an RFC3339 timestamp (e.g. 2024-01-01T12:00:00Z) "
                                  "or the cursor of a frame") from None
        segments = text.split("~")[1:]
        if len(segments) > MAX_PODS + 1:
            raise CursorError(f"a cursor names at most {MAX_PODS} pods")
        cursor = cls(job)
        for segment in segments:
            match = _SEGMENT.fullmatch(segment)
            if match is None:
                raise CursorError("is not a cursor of this server (it was changed or cut)")
            name, ns, count = match.group(1), int(match.group(2), 16), match.group(3)
            if name is None:
                cursor.floor = (ns, ALL)
                continue
            if count is not None and int(count) < 1:
                raise CursorError("is not a cursor of this server (it was changed or cut)")
            pod = f"{job}-{name[1:]}" if job and name.startswith(".") else name
            cursor.set(pod, (ns, int(count) if count is not None else 1))
        cursor._token = None
        return cursor

    def rebind(self, job: str) -> Cursor:
        """The same positions with pod names relative to ``job`` (a cursor parsed before the
        job was known names pods ``.<suffix>`` literally)."""
        positions = {}
        for pod, position in self.positions.items():
            positions[f"{job}-{pod[1:]}" if pod.startswith(".") else pod] = position
        return Cursor(job, positions, self.floor)

    def __repr__(self) -> str:
        return f"Cursor({self.job!r}, {self.positions!r}, floor={self.floor!r})"


def token_segment(job: str, pod: str, position: Position) -> str:
    """A pod's part of a token: its name relative to the job, its position."""
    prefix = f"{job}-"
    name = "." + pod[len(prefix):] if job and pod.startswith(prefix) else pod
    ns, count = position
    return f"{name}_{ns:x}" if count == 1 else f"{name}_{ns:x}_{count}"
