"""List-then-watch caches of raw Kubernetes objects.

An :class:`Informer` keeps an in-memory copy of one resource type (optionally narrowed by a
label selector) in step with the API server:

- a paginated list (``limit``/``continue``) of raw JSON dicts, then a watch from the list's
  ``resourceVersion`` with bookmarks, resumed from the last version seen whenever the stream
  ends;
- ``410 Gone`` (history compacted) → relist, and emit the difference from what it had (adds,
  updates, deletes), so a subscriber misses nothing and sees nothing twice;
- each watch asks the server to end it after ``timeoutSeconds`` (a random value between 80 %
  and 100 % of ``watch_timeout``); that end is routine (DEBUG), and the watch resumes. The
  server promises no bookmark before that end (kube-apiserver sends one 2 s before it and
  otherwise "roughly every minute", an idle watch sometimes only after 2 minutes), so the
  longest silence it may leave is ``watch_timeout``: the client-side ``inactivity_timeout``
  must be longer (settings enforce it), and a stream silent for that long is dead: reopened;
- connection failures → reconnect with capped exponential backoff and full jitter; a stream
  that breaks is logged at INFO, a watch or list that cannot be (re)opened at WARNING;
- readiness means "can serve": a cache that has synced keeps serving what it has while its
  watch reconnects (stale-but-synced, as every informer), and reports itself not ready only
  when it has been without a working watch for ``outage_grace`` seconds;
- reads (``get``, ``items``, ``in_namespace``, ``by_index``, ``len``) from a cache that has
  never synced raise :class:`Unavailable` with the reason ``/ready`` gives, so no answer is
  an empty success or a check against nothing; code that reacts to changes while caches
  fill (subscribers) uses the ``peek*`` readers, which answer from whatever is there;
- indexes by namespace/name and by any function of the object (owner uid, a label value);
- subscribers get ``(event_type, old, new)`` for ADDED / MODIFIED / DELETED;
- an optional ``keep`` filter drops objects not worth caching (e.g. events of other kinds),
  and an optional ``transform`` slims objects down to the fields a cache needs (it must keep
  ``metadata.name``, ``namespace`` and ``resourceVersion``).
- list pages may be decoded by the cache's own ``split_page`` (the body → its list metadata
  and its items, in any form) and ``take_item`` (one item → what is cached, keep and transform
  included, or None), so a page is never built whole only to be slimmed (``k8s.podpages``).

Objects are never turned into kubernetes_asyncio models (dependencies.md: ~2 ms per pod).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import aiohttp
import orjson

from gpuctl_async.errors import GpuctlError, Unavailable
from gpuctl_async.k8s.client import KubeApiError, KubeClient
from gpuctl_async.k8s.resources import Resource
from gpuctl_async.k8s.watchstats import WatchStats

log = logging.getLogger(__name__)

Key = tuple[str, str]
Obj = dict[str, Any]
Subscriber = Callable[[str, Obj | None, Obj | None], None]
IndexFunc = Callable[[Obj], Iterable[str]]

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
LIST_CHUNK = 100  # list items taken in between two yields to the loop


def object_key(obj: Obj) -> Key:
    meta = obj.get("metadata", {})
    return meta.get("namespace", ""), meta.get("name", "")


def label_indexer(label: str) -> IndexFunc:
    """Index objects by the value of one label."""
    def values(obj: Obj) -> Iterable[str]:
        value = obj.get("metadata", {}).get("labels", {}).get(label)
        return (value,) if value is not None else ()
    return values


def owner_uid_indexer(obj: Obj) -> Iterable[str]:
    """Index objects by the uid of each of their owners."""
    return [ref["uid"] for ref in obj.get("metadata", {}).get("ownerReferences", ()) if "uid" in ref]


class Informer:
    """A watch-fed cache of one resource type. Start it in a ``cleanup_ctx``; stop it there too."""

    def __init__(
        self,
        kube: KubeClient,
        resource: Resource,
        *,
        label_selector: str | None = None,
        indexers: dict[str, IndexFunc] | None = None,
        keep: Callable[[Obj], bool] | None = None,
        transform: Callable[[Obj], Obj] | None = None,
        split_page: Callable[[bytes], tuple[Obj, list[Any]]] | None = None,
        take_item: Callable[[Any], Obj | None] | None = None,
        page_size: int = 500,
        watch_timeout: int = 90,
        inactivity_timeout: float = 120.0,
        outage_grace: float = 60.0,
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
    ):
        self.kube = kube
        self.resource = resource
        self.label_selector = label_selector
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.inactivity_timeout = inactivity_timeout
        self.outage_grace = outage_grace
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._objects: dict[Key, Obj] = {}
        self._keep = keep
        self._transform = transform
        if (split_page is None) != (take_item is None):
            raise ValueError("split_page and take_item go together")
        self._split_page = split_page
        self._take_item = take_item
        self._indexers = dict(indexers or {})
        self._indexes: dict[str, dict[str, set[Key]]] = {name: {} for name in self._indexers}
        self._subscribers: list[Subscriber] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.resource_version: str | None = None
        self.synced = False
        """The first list has completed: reads may be served."""
        self.connected = False
        """The watch stream is open (False while reconnecting or in an outage: data may be
        stale)."""
        self._down_since: float | None = None  # loop time the synced cache lost its watch
        self.last_error: str | None = None
        self.stats = WatchStats()
        """Counters the metrics collector reads at scrape time."""

    @property
    def name(self) -> str:
        return self.resource.plural + (f"[{self.label_selector}]" if self.label_selector else "")

    # -- reading -------------------------------------------------------------------------

    def require_synced(self) -> None:
        """Raise :class:`Unavailable` (503, the text ``/ready`` gives) until the first list."""
        if not self.synced:
            raise Unavailable(self._unsynced_reason())

    def get(self, namespace: str, name: str) -> Obj | None:
        self.require_synced()
        return self._objects.get((namespace, name))

    def items(self) -> Iterator[Obj]:
        self.require_synced()
        return self.peek_items()

    def in_namespace(self, namespace: str) -> list[Obj]:
        self.require_synced()
        return [obj for (ns, _), obj in self._objects.items() if ns == namespace]

    def by_index(self, index: str, value: str) -> list[Obj]:
        self.require_synced()
        return self.peek_index(index, value)

    def __len__(self) -> int:
        self.require_synced()
        return len(self._objects)

    # Whatever is cached, synced or not: for subscribers reacting while the caches fill.

    def peek(self, namespace: str, name: str) -> Obj | None:
        return self._objects.get((namespace, name))

    def peek_items(self) -> Iterator[Obj]:
        return iter(list(self._objects.values()))

    def peek_index(self, index: str, value: str) -> list[Obj]:
        keys = self._indexes[index].get(value, ())
        return [self._objects[key] for key in keys if key in self._objects]

    def reached(self, version: int) -> bool:
        """Whether this cache has seen every change up to ``version`` (an etcd revision, see
        :mod:`gpuctl_async.k8s.consistency`)."""
        current = self.resource_version
        return self.synced and current is not None and current.isdigit() \
            and int(current) >= version

    def _unsynced_reason(self) -> str:
        why = f": {self.last_error}" if self.last_error else ""
        return f"cache of {self.name} has not synced yet{why}"

    def not_ready_reason(self) -> str | None:
        """Why this cache cannot serve: never synced, or without a watch for longer than
        ``outage_grace`` (a short reconnect of a synced cache is routine, not unready)."""
        if not self.synced:
            return self._unsynced_reason()
        if self._down_since is not None:
            down = asyncio.get_running_loop().time() - self._down_since
            if down >= self.outage_grace:
                why = f": {self.last_error}" if self.last_error else ""
                return f"watch of {self.name} has been down for {down:.0f}s{why}"
        return None

    # -- subscribing and waiting ---------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(type, old, new)`` on every change; returns an unsubscribe function."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber) if subscriber in self._subscribers else None

    async def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition()`` holds on the cache (checked after every change)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                return condition()
        return True

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer {self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._disconnected()

    def prune(self, drop: Callable[[Obj], bool]) -> int:
        """Forget cached objects for which ``drop(obj)`` holds (bounded memory, e.g. old
        events); subscribers are not told, since nothing changed in the cluster."""
        keys = [key for key, obj in self._objects.items() if drop(obj)]
        for key in keys:
            self._unindex(key, self._objects.pop(key))
        return len(keys)

    # -- the loop ------------------------------------------------------------------------

    def _disconnected(self) -> None:
        self.connected = False
        if self.synced and self._down_since is None:
            self._down_since = asyncio.get_running_loop().time()

    async def _run(self) -> None:
        delay = self.backoff_initial
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                await self._watch()
                delay = self.backoff_initial
                # The server ended it at timeoutSeconds (or went away cleanly): routine.
                log.debug("%s: watch ended; resuming from resourceVersion %s", self.name,
                          self.resource_version)
            except KubeApiError as exc:
                self._disconnected()
                if exc.is_gone:
                    log.info("%s: resourceVersion %s expired, relisting", self.name,
                             self.resource_version)
                    need_list = True
                    continue
                self.last_error = exc.message
                log.warning("%s: %s", self.name, exc.message)
                await self._sleep(delay)
                delay = min(delay * 2, self.backoff_max)
            except (GpuctlError, aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                streamed = self.connected  # it broke after it had opened
                self._disconnected()
                self.last_error = getattr(exc, "message", None) or repr(exc)
                if streamed:
                    log.info("%s: watch interrupted (%s); resuming", self.name, self.last_error)
                    delay = self.backoff_initial
                else:
                    log.warning("%s: watch failed (%s); retrying", self.name, self.last_error)
                await self._sleep(delay)
                delay = min(delay * 2, self.backoff_max)

    async def _sleep(self, delay: float) -> None:
        await asyncio.sleep(random.uniform(0, delay))  # full jitter: spread reconnect storms

    async def _list_page(self, token: str | None) -> tuple[Obj, list[Any]]:
        """One page: its list metadata and its items (raw, for ``take_item``, when the cache
        decodes its own pages)."""
        query = {"limit": self.page_size, "continue": token, "labelSelector": self.label_selector}
        if self._split_page is not None:
            return await self.kube.request("GET", self.resource.path(), query=query,
                                           decode=self._split_page)
        page = await self.kube.request("GET", self.resource.path(), query=query)
        return page.get("metadata", {}), page.get("items") or []

    def _take(self, obj: Any) -> Obj | None:
        """What is cached of one listed item (None: nothing)."""
        if self._take_item is not None:
            return self._take_item(obj)
        if self._keep is not None and not self._keep(obj):
            return None
        # List items omit kind/apiVersion; watch events carry them.
        obj.setdefault("kind", self.resource.kind)
        obj.setdefault("apiVersion", self.resource.api_version)
        return self._transform(obj) if self._transform else obj

    async def _relist(self) -> None:
        """List every page. The next page is asked for as soon as a page's continue token
        is known, so the API server prepares it while this one is taken in (at 150,000 pods
        the two took turns for seconds); items are taken in in chunks, yielding to the loop
        between them."""
        listed: dict[Key, Obj] = {}
        token: str | None = None  # of the page being fetched
        version = None
        fetch: asyncio.Task[tuple[Obj, list[Any]]] | None = asyncio.create_task(
            self._list_page(None))
        try:
            while fetch is not None:
                try:
                    meta, items = await fetch
                except KubeApiError as exc:
                    if exc.is_gone and token:  # continue token expired: start the list again
                        listed.clear()
                        token = version = None
                        fetch = asyncio.create_task(self._list_page(None))
                        continue
                    raise
                version = version or meta.get("resourceVersion")
                token = meta.get("continue") or None
                fetch = asyncio.create_task(self._list_page(token)) if token else None
                for start in range(0, len(items), LIST_CHUNK):
                    if start:
                        await asyncio.sleep(0)
                    for item in items[start:start + LIST_CHUNK]:
                        obj = self._take(item)
                        if obj is not None:
                            listed[object_key(obj)] = obj
        finally:
            if fetch is not None:
                fetch.cancel()
                await asyncio.gather(fetch, return_exceptions=True)
        self._replace(listed)
        self.stats.listed()
        self.resource_version = version
        self.synced = True
        self.last_error = None
        self._changed.set()

    def _watch_seconds(self) -> int:
        """The ``timeoutSeconds`` of one watch: spread so watches do not all end together,
        never above ``watch_timeout``."""
        return max(1, random.randint(self.watch_timeout * 4 // 5, self.watch_timeout))

    def _replace(self, listed: dict[Key, Obj]) -> None:
        """Swap in a fresh list, telling subscribers exactly what differs."""
        for key in [k for k in self._objects if k not in listed]:
            self._apply(DELETED, self._objects[key])
        for key, obj in listed.items():
            old = self._objects.get(key)
            if old is None:
                self._apply(ADDED, obj)
            elif old.get("metadata", {}).get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._apply(MODIFIED, obj)

    async def _watch(self) -> None:
        self.stats.watches += 1
        query = {
            "watch": "true",
            "resourceVersion": self.resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": self._watch_seconds(),
            "labelSelector": self.label_selector,
        }
        response = await self.kube.open(
            "GET", self.resource.path(), query=query,
            timeout=aiohttp.ClientTimeout(sock_connect=10, sock_read=self.inactivity_timeout),
        )
        self.connected = True
        self._down_since = None
        self.last_error = None
        try:
            async for line in response.content:
                if line.strip():
                    self._handle(orjson.loads(line))
        except asyncio.TimeoutError:  # aiohttp's sock_read: silent for inactivity_timeout
            self.stats.inactivity_restarts += 1
            raise
        finally:
            response.close()
        self._disconnected()

    def _handle(self, event: Obj) -> None:
        self.stats.event()
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code", 500)
            raise KubeApiError(code, obj.get("reason", ""), obj.get("message", "watch error"), obj)
        version = obj.get("metadata", {}).get("resourceVersion")
        if kind in (ADDED, MODIFIED, DELETED):
            if kind != DELETED and self._keep is not None and not self._keep(obj):
                # Not worth caching: forget any older copy, as if it had been deleted.
                if object_key(obj) in self._objects:
                    self._apply(DELETED, obj)
            else:
                self._apply(kind, self._transform(obj) if self._transform else obj)
        if version:
            self.resource_version = version
        self._changed.set()

    # -- store and indexes ---------------------------------------------------------------

    def _apply(self, kind: str, obj: Obj) -> None:
        key = object_key(obj)
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
        if kind == DELETED:
            self._objects.pop(key, None)
            event, new = DELETED, None
            old = old or obj  # deleted before we saw it: subscribers still hear of it
        else:
            self._objects[key] = obj
            self._index(key, obj)
            # A replayed ADDED for a known object is an update; a MODIFIED for an unknown one
            # (seen after a prune) is an addition, as far as this cache is concerned.
            event, new = (MODIFIED if old is not None else ADDED), obj
        for subscriber in list(self._subscribers):
            try:
                subscriber(event, old, new)
            except Exception:
                log.exception("%s: subscriber failed on %s", self.name, event)

    def _index(self, key: Key, obj: Obj) -> None:
        for name, func in self._indexers.items():
            for value in func(obj):
                self._indexes[name].setdefault(value, set()).add(key)

    def _unindex(self, key: Key, obj: Obj) -> None:
        for name, func in self._indexers.items():
            for value in func(obj):
                keys = self._indexes[name].get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._indexes[name][value]
