"""What the workload controllers share: an index of owned objects and refusal handling.

A ``Controller`` watches its own kind and the kind it creates (through store listeners,
which only queue work) and syncs one owner at a time from its ``WorkQueue``. Children are
found through their controller ``ownerReference``, as the real controllers do. A creation
the API server refuses (quota, admission) is recorded as a Warning ``FailedCreate`` event on
the owner and retried with back-off, and at once when quota usage drops in the namespace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

import orjson

from gpuctl_async.sim.events import EventRecorder
from gpuctl_async.sim.history import DELETED, WatchEvent
from gpuctl_async.sim.quota import QuotaController
from gpuctl_async.sim.resources import ResourceType, resource
from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import Store
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.workqueue import WorkQueue

Key = tuple[str, str]


def copy(obj: dict) -> dict:
    return orjson.loads(orjson.dumps(obj))


def owner_reference(owner: dict) -> dict:
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


def controller_uid(obj: dict | None, kind: str) -> str | None:
    if obj is None:
        return None
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return ref.get("uid")
    return None


def pod_from_template(owner: dict, template: dict, *, labels: dict | None = None,
                      name: str | None = None) -> dict:
    """A pod as a controller creates it from its template (generateName ``<owner>-``)."""
    template = copy(template or {})
    template_meta = template.get("metadata") or {}
    meta: dict = {"labels": {**(template_meta.get("labels") or {}), **(labels or {})},
                  "ownerReferences": [owner_reference(owner)]}
    if template_meta.get("annotations"):
        meta["annotations"] = template_meta["annotations"]
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = owner["metadata"]["name"] + "-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": template.get("spec") or {}}


def condition_true(obj: dict, type: str) -> bool:
    return any(c.get("type") == type and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


class Controller:
    owner_kind: str
    owner_resource: str
    child_resource: str
    component: str

    def __init__(self, store: Store, events: EventRecorder, timing: Timing,
                 quota: QuotaController | None = None):
        self.store = store
        self.events = events
        self.timing = timing
        self._quota = quota
        self.owner_rt: ResourceType = resource(self.owner_resource)
        self.child_rt: ResourceType = resource(self.child_resource)
        self.queue = WorkQueue(self.component, self._sync_key)
        self._owners: dict[str, Key] = {}
        self._children: dict[str, set[Key]] = {}
        self._refused: dict[str, dict[Key, int]] = {}  # namespace → owner key → attempts

    def install(self) -> None:
        self.store.add_listener(self.owner_rt, self._on_owner)
        self.store.add_listener(self.child_rt, self._on_child)
        if self._quota is not None:
            self._quota.on_freed(self._on_quota_freed)

    def start(self) -> None:
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()

    # -- notifications --------------------------------------------------------------------

    def _on_owner(self, event: WatchEvent) -> None:
        uid = event.entry.obj["metadata"]["uid"]
        if event.type == DELETED:
            self._owners.pop(uid, None)
            self._children.pop(uid, None)
            self._refused.get(event.key[0], {}).pop(event.key, None)
            self.owner_deleted(uid)
            return
        self._owners[uid] = event.key
        self.queue.add(event.key)

    def _on_child(self, event: WatchEvent) -> None:
        before = controller_uid(event.previous, self.owner_kind)
        after = None if event.type == DELETED else controller_uid(event.entry.obj,
                                                                  self.owner_kind)
        if before and before != after:
            self._children.get(before, set()).discard(event.key)
        if after:
            self._children.setdefault(after, set()).add(event.key)
        for uid in {before, after} - {None}:
            self.child_changed(uid, event)
            key = self._owners.get(uid)
            if key is not None:
                self.queue.add(key)

    def _on_quota_freed(self, namespace: str) -> None:
        for key in self._refused.get(namespace, {}):
            self.queue.add(key)

    # -- hooks ----------------------------------------------------------------------------

    def child_changed(self, owner_uid: str, event: WatchEvent) -> None:
        """Called for every change of a child (before the owner's sync is queued)."""

    def owner_deleted(self, owner_uid: str) -> None:
        """Forget per-owner state."""

    def sync(self, owner: dict) -> float | None:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------------

    def _sync_key(self, key: Hashable) -> float | None:
        entry = self.store.table(self.owner_rt).get(key)  # type: ignore[arg-type]
        if entry is None or entry.obj["metadata"].get("deletionTimestamp"):
            return None
        return self.sync(entry.obj)

    def children(self, owner: dict) -> list[dict]:
        table = self.store.table(self.child_rt)
        keys = sorted(self._children.get(owner["metadata"]["uid"], ()))
        return [table[key].obj for key in keys if key in table]

    def create_child(self, owner: dict, child: dict, *, created: str,
                     refused: str) -> dict | None:
        """Create ``child``; record ``created`` (unless empty) or ``refused`` as events, with
        ``{name}`` and ``{error}`` filled in."""
        namespace = owner["metadata"]["namespace"]
        key = (namespace, owner["metadata"]["name"])
        try:
            obj = self.store.create(self.child_rt, child, namespace=namespace)
        except StatusError as exc:
            if exc.code == 409:
                return None  # a namesake is still terminating: its deletion requeues us
            attempts = self._refused.setdefault(namespace, {})
            attempts[key] = attempts.get(key, 0) + 1
            self.events.record(owner, "Warning", "FailedCreate",
                               refused.format(name=child["metadata"].get("name", ""),
                                              error=exc.message),
                               component=self.component)
            return None
        self._refused.get(namespace, {}).pop(key, None)
        if created:
            self.events.record(owner, "Normal", "SuccessfulCreate",
                               created.format(name=obj["metadata"]["name"]),
                               component=self.component)
        return obj

    def refusal_delay(self, owner: dict) -> float | None:
        """Back-off before retrying refused creations for ``owner`` (None: none refused)."""
        meta = owner["metadata"]
        attempts = self._refused.get(meta["namespace"], {}).get((meta["namespace"],
                                                                 meta["name"]))
        if not attempts:
            return None
        return self.timing.backoff(attempts, cap=self.timing.create_retry_max)

    def delete_child(self, owner: dict, child: dict, *, deleted: str) -> None:
        meta = child["metadata"]
        try:
            self.store.delete(self.child_rt, meta["name"], meta["namespace"],
                              preconditions={"uid": meta["uid"]})
        except StatusError:
            return
        self.events.record(owner, "Normal", "SuccessfulDelete",
                           deleted.format(name=meta["name"]), component=self.component)

    def write_status(self, owner: dict, status: dict) -> None:
        if (owner.get("status") or {}) == status:
            return
        updated = copy(owner)
        updated["status"] = status
        try:
            self.store.update(self.owner_rt, updated, subresource="status")
        except StatusError:
            pass  # changed meanwhile: that change queued another sync


def now_monotonic() -> float:
    return asyncio.get_running_loop().time()
