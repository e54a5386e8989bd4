"""Garbage collection through ownerReferences and namespace deletion, as the controllers do.

The store reports every commit to ``observe``, which keeps an owner→dependents index and
queues work that runs in loop callbacks right after the write that caused it (the real
garbage collector and namespace controller are asynchronous too: a client sees the owner
gone first, then its dependents):

- an owner deleted (Background): dependents whose every owner is gone are deleted; a
  dependent that still has a live owner just loses the dangling reference;
- ``orphan`` finalizer (Orphan): ownerReferences to the owner are removed from its
  dependents, then the finalizer, which completes the deletion;
- ``foregroundDeletion`` finalizer (Foreground): dependents are deleted in the foreground
  too; the owner's finalizer goes once none is left;
- a Terminating namespace: everything in it is deleted, then the namespace itself, not
  before it has been Terminating ``store.namespace_finalize_seconds``.

Everything goes through the store's own write path, so watchers see each step.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from gpuctl_async.sim.history import DELETED, WatchEvent
from gpuctl_async.sim.resources import BY_KEY, RESOURCES, ResourceType
from gpuctl_async.sim.status import StatusError

if TYPE_CHECKING:
    from gpuctl_async.sim.store import Store

Ref = tuple[str, tuple[str, str]]  # (resource key, (namespace, name))


def _owner_uids(obj: dict | None) -> set[str]:
    if obj is None:
        return set()
    return {ref.get("uid") for ref in obj["metadata"].get("ownerReferences") or []
            if isinstance(ref, dict)}


class GarbageCollector:
    def __init__(self, store: Store):
        self._store = store
        self._dependents: dict[str, set[Ref]] = {}
        self._live: dict[str, Ref] = {}
        self._queue: deque[Callable[[], None]] = deque()
        self._handle: asyncio.Handle | None = None
        self._terminating: dict[str, float] = {}  # namespace -> loop time deletion began

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._queue.clear()

    def observe(self, rt: ResourceType, event: WatchEvent) -> None:
        obj = event.entry.obj
        meta = obj["metadata"]
        uid = meta["uid"]
        ref: Ref = (rt.key, event.key)
        before = _owner_uids(event.previous)
        after = set() if event.type == DELETED else _owner_uids(obj)
        for owner in before - after:
            dependents = self._dependents.get(owner)
            if dependents is not None:
                dependents.discard(ref)
                if not dependents:
                    del self._dependents[owner]
            self._enqueue(lambda owner=owner: self._check_foreground(owner))
        for owner in after - before:
            self._dependents.setdefault(owner, set()).add(ref)
        if event.type == DELETED:
            self._live.pop(uid, None)
            if uid in self._dependents:
                self._enqueue(lambda: self._cascade(uid))
            if rt.namespaced:
                self._enqueue(lambda: self._maybe_finalize_namespace(event.key[0]))
            return
        self._live[uid] = ref
        if meta.get("deletionTimestamp") and not (event.previous or {}).get(
                "metadata", {}).get("deletionTimestamp"):
            finalizers = meta.get("finalizers") or []
            if "orphan" in finalizers:
                self._enqueue(lambda: self._orphan(uid))
            if "foregroundDeletion" in finalizers:
                self._enqueue(lambda: self._foreground(uid))
            if rt.key == "namespaces":
                self._enqueue(lambda: self._purge_namespace(meta["name"]))

    def _enqueue(self, work: Callable[[], None]) -> None:
        self._queue.append(work)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._drain)

    def _drain(self) -> None:
        self._handle = None
        while self._queue:
            self._queue.popleft()()

    def _entry(self, ref: Ref):
        return self._store.table(BY_KEY[ref[0]]).get(ref[1])

    def _rewrite(self, ref: Ref, change: Callable[[dict], None]) -> None:
        entry = self._entry(ref)
        if entry is None:
            return
        obj = orjson.loads(entry.raw)
        change(obj)
        rt = BY_KEY[ref[0]]
        try:
            self._store.update_entry(rt, obj, ref[1][0], ref[1][1])
        except StatusError:
            pass  # gone or changed meanwhile: a later event brings us back

    def _delete(self, ref: Ref, policy: str) -> None:
        try:
            self._store.delete_entry(BY_KEY[ref[0]], ref[1][0], ref[1][1],
                                     propagation_policy=policy)
        except StatusError:
            pass

    def _drop_reference(self, ref: Ref, owner: str) -> None:
        def change(obj: dict) -> None:
            refs = [r for r in obj["metadata"].get("ownerReferences") or []
                    if r.get("uid") != owner]
            if refs:
                obj["metadata"]["ownerReferences"] = refs
            else:
                obj["metadata"].pop("ownerReferences", None)

        self._rewrite(ref, change)

    def _drop_finalizer(self, uid: str, finalizer: str) -> None:
        def change(obj: dict) -> None:
            obj["metadata"]["finalizers"] = [f for f in obj["metadata"].get("finalizers") or []
                                             if f != finalizer]

        ref = self._live.get(uid)
        if ref is not None:
            self._rewrite(ref, change)

    def _cascade(self, owner: str) -> None:
        for ref in list(self._dependents.get(owner, ())):
            entry = self._entry(ref)
            if entry is None:
                continue
            if _owner_uids(entry.obj) & self._live.keys():
                self._drop_reference(ref, owner)
            else:
                self._delete(ref, "Background")

    def _orphan(self, owner: str) -> None:
        for ref in list(self._dependents.get(owner, ())):
            self._drop_reference(ref, owner)
        self._drop_finalizer(owner, "orphan")

    def _foreground(self, owner: str) -> None:
        for ref in list(self._dependents.get(owner, ())):
            self._delete(ref, "Foreground")
        self._check_foreground(owner)

    def _check_foreground(self, owner: str) -> None:
        ref = self._live.get(owner)
        if ref is None or self._dependents.get(owner):
            return
        entry = self._entry(ref)
        if entry is not None and "foregroundDeletion" in (
                entry.obj["metadata"].get("finalizers") or []):
            self._drop_finalizer(owner, "foregroundDeletion")

    def _purge_namespace(self, namespace: str) -> None:
        self._terminating.setdefault(namespace, asyncio.get_running_loop().time())
        for rt in RESOURCES:
            if not rt.namespaced:
                continue
            for key in [k for k in self._store.table(rt) if k[0] == namespace]:
                self._delete((rt.key, key), "Background")
        self._maybe_finalize_namespace(namespace)

    def _maybe_finalize_namespace(self, namespace: str) -> None:
        if self._store.namespace_population(namespace) != 0:
            return
        entry = self._store.table(BY_KEY["namespaces"]).get(("", namespace))
        if entry is None or not entry.obj["metadata"].get("deletionTimestamp"):
            return
        # Terminating for at least namespace_finalize_seconds, as the real controller takes.
        since = self._terminating.setdefault(namespace, asyncio.get_running_loop().time())
        wait = since + self._store.namespace_finalize_seconds - asyncio.get_running_loop().time()
        if wait > 0:
            self._store.call_later(wait, lambda: self._maybe_finalize_namespace(namespace))
            return
        self._terminating.pop(namespace, None)
        self._store.finalize_namespace(namespace)
