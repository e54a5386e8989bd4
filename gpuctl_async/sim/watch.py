"""HTTP watch streams (``?watch=true``) as the API server's watch cache serves them.

- ``resourceVersion`` unset or ``0`` (or ``sendInitialEvents=true``): synthetic ADDED events
  for the current state, then changes; ``resourceVersion=N``: every retained change after N,
  or, when N is older than the retained history, one ERROR event carrying a 410 Expired
  Status (HTTP 200, as the real server, so clients relist).
- ``labelSelector`` / ``fieldSelector`` filter with transitions: an object that stops
  matching is sent as DELETED (its previous content at the new resourceVersion), one that
  starts matching as ADDED.
- ``allowWatchBookmarks``: BOOKMARK events with the current resourceVersion as the watch
  cache sends them (``WatchTiming``): none guaranteed at any interval; periodic ones
  ``bookmark_interval`` apart, the first only after ``first_bookmark_delay``; one
  ``pre_timeout_bookmark`` seconds before the watch's deadline; with ``sendInitialEvents``
  one more, annotated ``k8s.io/initial-events-end``, after the initial state.
- ``timeoutSeconds`` ends the stream cleanly; without it the server picks a random length
  between ``min_request_timeout`` and twice that (kube-apiserver's ``--min-request-timeout``).
- A silence fault (``WatchRegistry.silence``) makes every open watch send nothing at all for
  N seconds, not even its end: a stalled connection, which only a client-side read timeout
  detects.

Each change's wire line is encoded once (``history.WatchEvent.line``) and shared by every
watcher that sends it (``PlainFramer``); a watcher writes whatever has accumulated since its
last write in one chunk. A watch asking for Tables passes ``tables.TableWatchFramer``
instead, which encodes per watcher (its rows are printed for that request).
``WatchRegistry`` tracks open watches per resource (for counters) and can close them all (a
fault the tests use to prove clients resume).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import Protocol

import orjson
from aiohttp import web

from gpuctl_async.sim import status as st
from gpuctl_async.sim.history import (
    ADDED,
    DELETED,
    Entry,
    FellBehind,
    Reader,
    TooOld,
    WatchEvent,
)
from gpuctl_async.sim.resources import ResourceType
from gpuctl_async.sim.selectors import FieldSelector, LabelSelector
from gpuctl_async.sim.store import Store



@dataclass(frozen=True)
class WatchTiming:
    """When watches send bookmarks and end, and how long history is kept.

    The defaults are kube-apiserver's: the watch cache tries to send a bookmark "roughly
    every minute" and 2 s before the watch's deadline (``cacheWatcher.nextBookmarkTime``),
    but promises none (an idle watch on a real 1.36 server got its first one after 120 s);
    a watch without ``timeoutSeconds`` lasts a random time between ``--min-request-timeout``
    (1800 s) and twice that; the API server asks etcd to compact every 5 minutes
    (``--etcd-compaction-interval``), each time up to the revision of the previous round.
    ``scaled(f)`` shortens every duration by ``f`` so a test can run the real clock fast.
    """

    bookmark_interval: float = 60.0
    """Seconds between periodic bookmarks of one watch."""
    first_bookmark_delay: float | None = 120.0
    """Seconds before an idle watch's first periodic bookmark (None: ``bookmark_interval``)."""
    pre_timeout_bookmark: float = 2.0
    """A bookmark goes out this long before a watch's deadline (none if it is shorter)."""
    min_request_timeout: float = 1800.0
    """Without ``timeoutSeconds`` a watch lasts between this and twice this."""
    compaction_interval: float | None = 300.0
    """Seconds between history compactions (None: only on demand, ``/_sim/history/compact``)."""

    @classmethod
    def quick(cls, bookmark_interval: float = 60.0) -> WatchTiming:
        """Bookmarks every ``bookmark_interval`` from the start, no timed compaction: the
        predictable clock most tests want."""
        return cls(bookmark_interval=bookmark_interval, first_bookmark_delay=None,
                   compaction_interval=None)

    def scaled(self, factor: float) -> WatchTiming:
        """Every duration multiplied by ``factor`` (e.g. 0.01: a 5-minute round in 3 s)."""
        def times(value: float | None) -> float | None:
            return None if value is None else value * factor
        return replace(self, bookmark_interval=self.bookmark_interval * factor,
                       first_bookmark_delay=times(self.first_bookmark_delay),
                       pre_timeout_bookmark=self.pre_timeout_bookmark * factor,
                       min_request_timeout=self.min_request_timeout * factor,
                       compaction_interval=times(self.compaction_interval))

    def default_timeout(self) -> float:
        return self.min_request_timeout * (1 + random.random())


class WatchRegistry:
    def __init__(self) -> None:
        self._open: dict[Reader, str] = {}
        self.delay = 0.0
        """Seconds every watch write is held back (a fault: a lagging watch cache)."""
        self.silent_until = 0.0
        """Loop time until which open watches send nothing (a fault: a stalled connection)."""

    def silence(self, seconds: float) -> None:
        """Every open watch (and any opened meanwhile) sends nothing for ``seconds``."""
        self.silent_until = asyncio.get_running_loop().time() + seconds if seconds else 0.0
        for reader in self._open:
            reader.notify()

    def add(self, reader: Reader, resource: str) -> None:
        self._open[reader] = resource

    def discard(self, reader: Reader) -> None:
        self._open.pop(reader, None)

    def counts(self) -> dict[str, int]:
        return dict(Counter(self._open.values()))

    def close_all(self) -> int:
        readers = list(self._open)
        for reader in readers:
            reader.close()
        return len(readers)


def _bookmark(rt: ResourceType, rv: int, initial_end: bool = False) -> bytes:
    meta: dict = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return orjson.dumps({"type": "BOOKMARK", "object": {
        "kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}}) + b"\n"


class Framer(Protocol):
    """How a watch turns what it sends into wire lines."""

    def initial(self, entry: Entry) -> bytes: ...

    def change(self, event: WatchEvent, as_type: str | None = None) -> bytes: ...

    def stopped_matching(self, event: WatchEvent) -> bytes: ...

    def bookmark(self, rt: ResourceType, rv: int, initial_end: bool = False) -> bytes: ...


class PlainFramer:
    """The objects as stored: lines shared by every watcher (the fast path)."""

    @staticmethod
    def initial(entry: Entry) -> bytes:
        return b'{"type":"ADDED","object":%s}\n' % entry.raw

    # The methods themselves, not wrappers: no extra call per event and watcher.
    change = staticmethod(WatchEvent.line)
    stopped_matching = staticmethod(WatchEvent.stopped_matching_line)
    bookmark = staticmethod(_bookmark)


PLAIN = PlainFramer()


def _filter(event: WatchEvent, namespace: str | None, label: LabelSelector,
            field: FieldSelector, framer: Framer) -> bytes | None:
    if namespace and event.key[0] != namespace:
        return None
    if not label and not field:
        return framer.change(event)

    def ok(obj: dict | None) -> bool:
        return obj is not None and (not label or label.matches(obj)) and (
            not field or field.matches(obj))

    if event.type in (ADDED, DELETED):
        return framer.change(event) if ok(event.entry.obj) else None
    was, now = ok(event.previous), ok(event.entry.obj)
    if now:
        return framer.change(event) if was else framer.change(event, ADDED)
    return framer.stopped_matching(event) if was else None


async def serve_watch(request: web.Request, store: Store, registry: WatchRegistry,
                      rt: ResourceType, namespace: str | None, *, label: LabelSelector,
                      field: FieldSelector, resource_version: str | None, bookmarks: bool,
                      timeout: float, send_initial_events: bool,
                      timing: WatchTiming,
                      framer: Framer = PLAIN) -> web.StreamResponse:
    log = store.log(rt)
    pending: list[bytes] = []
    if send_initial_events or resource_version in (None, "", "0"):
        snapshot = store.list_entries(rt, namespace, label=label, field=field)
        pending = [framer.initial(e) for e in snapshot.entries]
        if send_initial_events and bookmarks:
            pending.append(framer.bookmark(rt, store.resource_version, initial_end=True))
        cursor = log.end
    else:
        try:
            cursor = log.cursor_after(int(resource_version))
        except ValueError:
            raise st.bad_request(f"invalid resource version: {resource_version}") from None
        except TooOld as exc:
            error = st.expired(f"too old resource version: {exc.requested} ({exc.horizon})")
            pending = [orjson.dumps({"type": "ERROR", "object": error.status}) + b"\n"]
            cursor = -1
    response = web.StreamResponse(headers={"Content-Type": "application/json",
                                           "Cache-Control": "no-cache, private"})
    await response.prepare(request)
    if cursor < 0:
        await response.write(pending[0])
        return response
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + timeout
    pre_timeout = max(start, deadline - timing.pre_timeout_bookmark)
    first = timing.first_bookmark_delay
    next_bookmark = min(start + (timing.bookmark_interval if first is None else first),
                        pre_timeout)
    reader = Reader()
    log.readers.add(reader)
    registry.add(reader, rt.plural)
    try:
        while not reader.closed:
            silent = registry.silent_until - loop.time()
            if silent > 0:
                await reader.wait(silent)  # woken early only to look again
                continue
            try:
                events = log.read(cursor)
            except FellBehind:
                break  # too slow to keep up: end the stream, the client resumes
            cursor += len(events)
            for event in events:
                line = _filter(event, namespace, label, field, framer)
                if line is not None:
                    pending.append(line)
            if pending:
                chunk, pending = b"".join(pending), []
                if registry.delay:
                    await asyncio.sleep(registry.delay)
                await response.write(chunk)
                continue
            now = loop.time()
            if now >= deadline:
                break
            if bookmarks and now >= next_bookmark:
                await response.write(framer.bookmark(rt, store.resource_version))
                next_bookmark = now + timing.bookmark_interval
                if now < pre_timeout:  # the pre-timeout one is still due
                    next_bookmark = min(next_bookmark, pre_timeout)
                continue
            await reader.wait((min(deadline, next_bookmark) if bookmarks else deadline) - now)
    finally:
        log.readers.discard(reader)
        registry.discard(reader)
    return response
