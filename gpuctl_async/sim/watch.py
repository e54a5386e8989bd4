"""HTTP watch streams (``?watch=true``) as the API server's watch cache serves them.

- ``resourceVersion`` unset or ``0`` (or ``sendInitialEvents=true``): synthetic ADDED events
  for the current state, then changes; ``resourceVersion=N``: every retained change after N,
  or, when N is older than the retained history, one ERROR event carrying a 410 Expired
  Status (HTTP 200, as the real server, so clients relist).
- ``labelSelector`` / ``fieldSelector`` filter with transitions: an object that stops
  matching is sent as DELETED (its previous content at the new resourceVersion), one that
  starts matching as ADDED.
- ``allowWatchBookmarks``: BOOKMARK events with the current resourceVersion every
  ``bookmark_interval`` seconds and shortly before the watch times out; with
  ``sendInitialEvents`` one more, annotated ``k8s.io/initial-events-end``, after the
  initial state.
- ``timeoutSeconds`` ends the stream cleanly; without it, ``max_seconds``.

Each change's wire line is encoded once (``history.WatchEvent.line``) and shared by every
watcher that sends it; a watcher writes whatever has accumulated since its last write in one
chunk. ``WatchRegistry`` tracks open watches per resource (for counters) and can close them
all (a fault the tests use to prove clients resume).
"""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson
from aiohttp import web

from gpuctl_async.sim import status as st
from gpuctl_async.sim.history import ADDED, DELETED, FellBehind, Reader, TooOld, WatchEvent
from gpuctl_async.sim.resources import ResourceType
from gpuctl_async.sim.selectors import FieldSelector, LabelSelector
from gpuctl_async.sim.store import Store

# A bookmark goes out this long before a watch's deadline, as in the watch cache.
PRE_TIMEOUT_BOOKMARK = 2.0


class WatchRegistry:
    def __init__(self) -> None:
        self._open: dict[Reader, str] = {}
        self.delay = 0.0
        """Seconds every watch write is held back (a fault: a lagging watch cache)."""

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


def _filter(event: WatchEvent, namespace: str | None, label: LabelSelector,
            field: FieldSelector) -> bytes | None:
    if namespace and event.key[0] != namespace:
        return None
    if not label and not field:
        return event.line()

    def ok(obj: dict | None) -> bool:
        return obj is not None and (not label or label.matches(obj)) and (
            not field or field.matches(obj))

    if event.type in (ADDED, DELETED):
        return event.line() if ok(event.entry.obj) else None
    was, now = ok(event.previous), ok(event.entry.obj)
    if now:
        return event.line() if was else event.line(ADDED)
    return event.stopped_matching_line() if was else None


async def serve_watch(request: web.Request, store: Store, registry: WatchRegistry,
                      rt: ResourceType, namespace: str | None, *, label: LabelSelector,
                      field: FieldSelector, resource_version: str | None, bookmarks: bool,
                      timeout: float, send_initial_events: bool,
                      bookmark_interval: float) -> web.StreamResponse:
    log = store.log(rt)
    pending: list[bytes] = []
    if send_initial_events or resource_version in (None, "", "0"):
        snapshot = store.list_entries(rt, namespace, label=label, field=field)
        pending = [b'{"type":"ADDED","object":%s}\n' % e.raw for e in snapshot.entries]
        if send_initial_events and bookmarks:
            pending.append(_bookmark(rt, store.resource_version, initial_end=True))
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
    next_bookmark = min(start + bookmark_interval, max(start, deadline - PRE_TIMEOUT_BOOKMARK))
    reader = Reader()
    log.readers.add(reader)
    registry.add(reader, rt.plural)
    try:
        while not reader.closed:
            try:
                events = log.read(cursor)
            except FellBehind:
                break  # too slow to keep up: end the stream, the client resumes
            cursor += len(events)
            for event in events:
                line = _filter(event, namespace, label, field)
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
                await response.write(_bookmark(rt, store.resource_version))
                next_bookmark = now + bookmark_interval
                continue
            await reader.wait((min(deadline, next_bookmark) if bookmarks else deadline) - now)
    finally:
        log.readers.discard(reader)
        registry.discard(reader)
    return response
