"""Stored objects, change events and the per-resource event history that watches read.

An ``Entry`` is one stored version of an object: its dict (never mutated once stored) and its
JSON encoding, computed once and shared by every list response and watch event that carries
it. A ``WatchEvent`` is one committed change; its wire line (``{"type":..,"object":..}\\n``)
is also encoded once, however many watchers send it.

Each resource type has an ``EventLog`` like the API server's watch cache: the last
``window`` events in resourceVersion order. Readers (HTTP watches, the in-process change
feed) keep a cursor into it instead of having events pushed into per-watcher queues, so
fan-out costs one list append per change; a reader whose cursor falls out of the log is told
to stop (as the real server drops watchers that cannot keep up). ``horizon`` is the newest
resourceVersion no longer replayable: a watch from an older one gets 410 Expired.
"""

from __future__ import annotations

import asyncio
import bisect

import orjson

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"


class Entry:
    """One stored object version; ``raw`` is its JSON, encoded on first use."""

    __slots__ = ("obj", "_raw")

    def __init__(self, obj: dict):
        self.obj = obj
        self._raw: bytes | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = orjson.dumps(self.obj)
        return self._raw


class WatchEvent:
    """A committed change: ``entry`` is the new state (the final state for DELETED),
    ``old`` the previous one (None for ADDED)."""

    __slots__ = ("type", "rv", "key", "entry", "old", "_lines")

    def __init__(self, type: str, rv: int, key: tuple[str, str], entry: Entry,
                 old: Entry | None):
        self.type = type
        self.rv = rv
        self.key = key
        self.entry = entry
        self.old = old
        self._lines: dict[str, bytes] = {}

    @property
    def new(self) -> dict | None:
        """The object after the change, or None if it was deleted."""
        return None if self.type == DELETED else self.entry.obj

    @property
    def previous(self) -> dict | None:
        return self.old.obj if self.old is not None else None

    def line(self, as_type: str | None = None) -> bytes:
        """The NDJSON watch line, as ``as_type`` (selector transitions re-type events)."""
        as_type = as_type or self.type
        line = self._lines.get(as_type)
        if line is None:
            line = b'{"type":"%s","object":%s}\n' % (as_type.encode(), self.entry.raw)
            self._lines[as_type] = line
        return line

    def stopped_matching_line(self) -> bytes:
        """DELETED carrying the previous content at this event's resourceVersion: what the
        watch cache sends when an object stops matching a watcher's selectors."""
        line = self._lines.get("DELETED-old")
        if line is None:
            assert self.old is not None
            obj = dict(self.old.obj)
            obj["metadata"] = {**obj["metadata"], "resourceVersion": str(self.rv)}
            line = orjson.dumps({"type": DELETED, "object": obj}) + b"\n"
            self._lines["DELETED-old"] = line
        return line


class Reader:
    """Something waiting for events in logs: an HTTP watch or a change-feed iterator."""

    def __init__(self) -> None:
        self._wakeup: asyncio.Future | None = None
        self.closed = False

    def notify(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def close(self) -> None:
        self.closed = True
        self.notify()

    async def wait(self, timeout: float | None) -> None:
        """Until notified, closed or ``timeout`` seconds pass. Callers check for new events
        first; nothing can slip in between because the store commits on the loop."""
        if self.closed:
            return
        self._wakeup = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self._wakeup, timeout)
        except TimeoutError:
            pass
        finally:
            self._wakeup = None


class TooOld(Exception):
    """The requested starting point is no longer in the log."""

    def __init__(self, requested: int, horizon: int):
        super().__init__(requested, horizon)
        self.requested = requested
        self.horizon = horizon


class FellBehind(Exception):
    """A reader's cursor points at events already trimmed from the log."""


class EventLog:
    """The retained events of one resource type, in resourceVersion order."""

    def __init__(self, window: int):
        if window < 1:
            raise ValueError("the history window must hold at least one event")
        self.window = window
        self.events: list[WatchEvent] = []
        self._rvs: list[int] = []
        self.base = 0  # absolute index of events[0]
        self.horizon = 0
        self.readers: set[Reader] = set()

    @property
    def end(self) -> int:
        """Absolute index after the newest event (a cursor that has read everything)."""
        return self.base + len(self.events)

    def append(self, event: WatchEvent) -> None:
        self.events.append(event)
        self._rvs.append(event.rv)
        excess = len(self.events) - self.window
        if excess > 0:
            self.horizon = self._rvs[excess - 1]
            # Trim in chunks: deleting from the front of a list is a memmove.
            if excess >= max(1, self.window // 8):
                self._drop(excess)
        for reader in tuple(self.readers):
            reader.notify()

    def compact(self, rv: int) -> None:
        """Forget everything up to ``rv`` (as etcd compaction does)."""
        self.horizon = max(self.horizon, rv)
        self._drop(bisect.bisect_right(self._rvs, rv))

    def _drop(self, count: int) -> None:
        del self.events[:count]
        del self._rvs[:count]
        self.base += count

    def cursor_after(self, rv: int) -> int:
        """The cursor of the first event newer than ``rv``; TooOld past the horizon."""
        if rv < self.horizon:
            raise TooOld(rv, self.horizon)
        return self.base + bisect.bisect_right(self._rvs, rv)

    def read(self, cursor: int) -> list[WatchEvent]:
        if cursor < self.base:
            raise FellBehind()
        return self.events[cursor - self.base:]

    def since(self, rv: int) -> list[WatchEvent]:
        """Events newer than ``rv`` (TooOld past the horizon)."""
        return self.read(self.cursor_after(rv))
