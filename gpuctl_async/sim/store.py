"""The simulated cluster's storage and object semantics, shared by HTTP and in-process callers.

``Store`` plays etcd plus the API server's registry: one global, monotonically increasing
resourceVersion; uid, creationTimestamp, generation, generateName; defaulting, validation and
admission; optimistic concurrency; graceful pod deletion, finalizers, ``propagationPolicy``
(with ``gc.GarbageCollector`` cascading through ownerReferences and finishing namespace
deletion); dry runs; consistent paginated lists; and a per-resource event history that
watches replay (``history.EventLog``). It must be used from inside a running event loop
(deferred work such as garbage collection runs in loop callbacks; ``close()`` cancels it).

Python API for the controllers, scheduler, kubelet and tests of part 2 (every write goes
through exactly the same path as an HTTP request, so watchers see it; results are private
copies; errors are ``status.StatusError`` with the real Status)::

    store.create("pods", obj, namespace="ns", dry_run=False) -> dict
    store.get("pods", "name", namespace="ns") -> dict            # StatusError 404
    store.list("pods", namespace=None, label_selector="a=b", field_selector="spec.nodeName=n")
    store.update("pods", obj, subresource=None | "status") -> dict  # 409 on stale RV
    store.patch("pods", "name", patch, namespace="ns", patch_type=STRATEGIC_MERGE_PATCH,
                subresource=None | "status") -> dict
    store.delete("pods", "name", namespace="ns", propagation_policy=None,
                 grace_period_seconds=None, preconditions=None) -> dict (object or Status)
    store.bind_pod("ns", "name", "node")                          # the binding subresource
    store.seed("pods", 10_000, namespace="ns", template={...})    # bulk create
    store.resource_version -> int

Change feed (no polling): ``async for event in store.changes("pods", resource_version=rv)``
yields ``history.WatchEvent``s (``.type`` ADDED/MODIFIED/DELETED, ``.new``, ``.previous``,
``.rv``) committed after ``rv`` (default: from now); list first, then follow from the list's
resourceVersion. Wrap it in ``contextlib.aclosing`` so it unregisters promptly.
``store.add_listener("pods", callback)`` calls ``callback(event)`` synchronously after each
commit (for indexes). Objects handed out by the feed and listeners are the stored ones:
read-only.

Admission: ``store.add_admission("pods", hook)``; ``hook(request: AdmissionRequest)`` runs
for CREATE and UPDATE (also dry runs and subresource writes) after defaulting and validation,
may mutate ``request.obj``, and rejects by raising ``StatusError`` (e.g.
``status.forbidden(rt, name, "exceeded quota: ...")``).

Pods: deleting a pod bound to a node is graceful (``deletionTimestamp``, then gone after its
grace period, capped at ``max_grace_seconds`` to stand in for a kubelet); set
``max_grace_seconds=None`` when a simulated kubelet finishes deletions itself by deleting
with ``grace_period_seconds=0``.

Namespaces: deleting one makes it Terminating; the namespace controller (``sim.gc``) deletes
what is in it and, once it is empty and has been Terminating for at least
``namespace_finalize_seconds`` (the real controller's discovery, content deletion and
finalize round trips take seconds even for an empty namespace), removes the ``kubernetes``
finalizer, which deletes it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import orjson

from gpuctl_async.sim import status as st
from gpuctl_async.sim.allocators import ServiceAllocator
from gpuctl_async.sim.defaults import apply_defaults, reset_status_on_create
from gpuctl_async.sim.gc import GarbageCollector
from gpuctl_async.sim.history import (
    ADDED,
    DELETED,
    MODIFIED,
    Entry,
    EventLog,
    Reader,
    TooOld,
    WatchEvent,
)
from gpuctl_async.sim.patch import (
    STRATEGIC_MERGE_PATCH,
    PatchDecodeError,
    PatchError,
    apply_patch,
)
from gpuctl_async.sim.resources import BY_KEY, RESOURCES, ResourceType, resource
from gpuctl_async.sim.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)
from gpuctl_async.sim.status import FieldError, StatusError
from gpuctl_async.sim.validation import validate

Key = tuple[str, str]
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
GENERATE_NAME_ATTEMPTS = 8
_POLICIES = ("Orphan", "Foreground", "Background")
_EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted "
    "between the time the first chunk was returned and now may show up in the list.")


def timestamp(at: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if at is None else at))


def _copy(obj: dict) -> dict:
    return orjson.loads(orjson.dumps(obj))


@dataclass
class AdmissionRequest:
    operation: str  # "CREATE" or "UPDATE"
    resource: ResourceType
    subresource: str | None
    obj: dict
    old: dict | None
    dry_run: bool
    store: Store


@dataclass
class ListResult:
    entries: list[Entry]
    resource_version: int
    continue_token: str | None
    remaining: int | None


class Store:
    def __init__(self, *, history_window: int = 20_000,
                 max_grace_seconds: float | None = 1.0, namespace_finalize_seconds: float = 0.0):
        self._rv = 0
        self._tables: dict[str, dict[Key, Entry]] = {rt.key: {} for rt in RESOURCES}
        self._sorted: dict[str, list[Key] | None] = {rt.key: None for rt in RESOURCES}
        self._logs = {rt.key: EventLog(history_window) for rt in RESOURCES}
        self._admission: dict[str, list[Callable[[AdmissionRequest], None]]] = {}
        self._listeners: dict[str, list[Callable[[WatchEvent], None]]] = {}
        self._namespace_counts: Counter[str] = Counter()
        self._timers: set[asyncio.TimerHandle] = set()
        self.max_grace_seconds = max_grace_seconds
        self.namespace_finalize_seconds = namespace_finalize_seconds
        self.services = ServiceAllocator()
        self.gc = GarbageCollector(self)
        for name in ("default", "kube-system"):
            self.create_entry(BY_KEY["namespaces"], {"metadata": {"name": name}})

    # -- registration -------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def log(self, rt: ResourceType | str) -> EventLog:
        return self._logs[resource(rt).key]

    def add_admission(self, rt: ResourceType | str,
                      hook: Callable[[AdmissionRequest], None]) -> None:
        self._admission.setdefault(resource(rt).key, []).append(hook)

    def add_listener(self, rt: ResourceType | str, callback: Callable[[WatchEvent], None]) -> None:
        self._listeners.setdefault(resource(rt).key, []).append(callback)

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the loop after ``delay`` seconds unless the store closes."""
        handle: asyncio.TimerHandle

        def run() -> None:
            self._timers.discard(handle)
            callback()

        handle = asyncio.get_running_loop().call_later(delay, run)
        self._timers.add(handle)

    def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self.gc.close()
        for log in self._logs.values():
            for reader in tuple(log.readers):
                reader.close()

    # -- internals ----------------------------------------------------------------------

    def table(self, rt: ResourceType) -> dict[Key, Entry]:
        return self._tables[rt.key]

    def sorted_keys(self, rt: ResourceType) -> list[Key]:
        keys = self._sorted[rt.key]
        if keys is None:
            keys = self._sorted[rt.key] = sorted(self._tables[rt.key])
        return keys

    def namespace_population(self, namespace: str) -> int:
        return self._namespace_counts[namespace]

    def _commit(self, rt: ResourceType, type: str, key: Key, obj: dict,
                old: Entry | None) -> Entry:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        entry = Entry(obj)
        table = self._tables[rt.key]
        if type == DELETED:
            del table[key]
            self._sorted[rt.key] = None
            if rt.namespaced:
                self._namespace_counts[key[0]] -= 1
        else:
            if key not in table:
                self._sorted[rt.key] = None
                if rt.namespaced:
                    self._namespace_counts[key[0]] += 1
            table[key] = entry
        if rt.key == "services":
            if type == DELETED:
                self.services.release(key)
            else:
                self.services.commit(key, obj)
        event = WatchEvent(type, self._rv, key, entry, old)
        self._logs[rt.key].append(event)
        self.gc.observe(rt, event)
        for callback in self._listeners.get(rt.key, ()):
            callback(event)
        return entry

    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> Key:
        if rt.namespaced:
            if not namespace:
                raise st.bad_request("the server could not find the requested resource")
            return (namespace, name)
        return ("", name)

    def get_entry(self, rt: ResourceType, namespace: str | None, name: str) -> Entry:
        entry = self._tables[rt.key].get(self._key(rt, namespace, name))
        if entry is None:
            raise st.not_found(rt, name)
        return entry

    def _admit(self, operation: str, rt: ResourceType, subresource: str | None, obj: dict,
               old: dict | None, dry_run: bool) -> None:
        hooks = self._admission.get(rt.key)
        if hooks:
            request = AdmissionRequest(operation, rt, subresource, obj, old, dry_run, self)
            for hook in hooks:
                hook(request)

    @staticmethod
    def _canonical(rt: ResourceType, obj: dict) -> dict:
        """Key order as the API server writes it: kind, apiVersion, metadata, the rest."""
        rest = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion", "metadata")}
        return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": obj["metadata"],
                **rest}

    @staticmethod
    def _check_type(rt: ResourceType, obj: object) -> dict:
        if not isinstance(obj, dict):
            raise st.bad_request(f"the body of the request is not a {rt.kind} object")
        version, kind = obj.get("apiVersion"), obj.get("kind")
        if version and version != rt.api_version:
            raise st.bad_request(f"the API version in the data ({version}) does not match the "
                                 f"expected API version ({rt.api_version})")
        if kind and kind != rt.kind:
            raise st.bad_request(f"the kind in the data ({kind}) does not match the expected "
                                 f"kind ({rt.kind})")
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise st.bad_request("metadata must be an object")
        return meta

    def _check_namespace(self, rt: ResourceType, name: str, namespace: str) -> None:
        ns = self._tables["namespaces"].get(("", namespace))
        if ns is None:
            raise st.not_found(BY_KEY["namespaces"], namespace)
        if ns.obj["metadata"].get("deletionTimestamp"):
            error = st.forbidden(rt, name, f"unable to create new content in namespace "
                                           f"{namespace} because it is being terminated")
            error.details["causes"] = [{"reason": "NamespaceTerminating",
                                        "message": f"namespace {namespace} is being terminated",
                                        "field": "metadata.namespace"}]
            raise error

    # -- writes (entry level, used by the HTTP layer) -----------------------------------

    def create_entry(self, rt: ResourceType, obj: dict, namespace: str | None = None, *,
                     dry_run: bool = False, managed_fields: list[dict] | None = None) -> Entry:
        """Create ``obj`` (a private dict the store may keep); ``managed_fields`` is what
        server-side apply records (clients cannot set it)."""
        meta = self._check_type(rt, obj)
        if rt.namespaced:
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise st.bad_request("the namespace of the provided object does not match the "
                                     "namespace sent on the request")
            namespace = namespace or meta.get("namespace") or "default"
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
            namespace = ""
        if meta.get("resourceVersion"):
            raise st.bad_request("resourceVersion should not be set on objects to be created")
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "selfLink",
                      "deletionGracePeriodSeconds", "generation", "managedFields"):
            meta.pop(field, None)
        if not meta.get("name"):
            prefix = meta.get("generateName")
            if not prefix:
                raise st.invalid(rt, "", [FieldError.required(
                    "metadata.name", "name or generateName is required")])
            # A taken name is generated again, up to 7 more times, as kube-apiserver does
            # (KEP-4420 RetryGenerateName, GA in 1.32): 5 random characters collide within
            # one owner's pods often enough at 50,000 pods. The last try's 409 stands.
            for _ in range(GENERATE_NAME_ATTEMPTS):
                meta["name"] = prefix[:58] + "".join(random.choices(_NAME_CHARS, k=5))
                if (namespace, meta["name"]) not in self._tables[rt.key]:
                    break
        name = meta["name"]
        if managed_fields:
            meta["managedFields"] = managed_fields
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = timestamp()
        if rt.has_generation:
            meta["generation"] = 1
        obj = self._canonical(rt, obj)
        apply_defaults(rt, obj)
        reset_status_on_create(rt, obj)
        key = (namespace, name)
        errors = validate(rt, obj)
        if rt.key == "services":
            errors += self.services.assign(key, obj, None)
        if errors:
            raise st.invalid(rt, name, errors)
        if rt.namespaced:
            self._check_namespace(rt, name, namespace)
        self._admit("CREATE", rt, None, obj, None, dry_run)
        if key in self._tables[rt.key]:
            raise st.already_exists(rt, name)
        if dry_run:
            return Entry(obj)
        return self._commit(rt, ADDED, key, obj, None)

    def _check_identity(self, rt: ResourceType, meta: dict, namespace: str, name: str) -> None:
        if meta.get("name") and meta["name"] != name:
            raise st.bad_request(f"the name of the object ({meta['name']}) does not match the "
                                 f"name on the URL ({name})")
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise st.bad_request("the namespace of the provided object does not match the "
                                 "namespace sent on the request")

    def update_entry(self, rt: ResourceType, obj: dict, namespace: str | None, name: str, *,
                     subresource: str | None = None, dry_run: bool = False,
                     managed_fields: list[dict] | None = None) -> Entry:
        """Replace (PUT): 409 Conflict when ``metadata.resourceVersion`` is stale."""
        old = self.get_entry(rt, namespace, name)
        meta = self._check_type(rt, obj)
        self._check_identity(rt, meta, namespace or "", name)
        wanted = meta.get("resourceVersion")
        if wanted and wanted != old.obj["metadata"]["resourceVersion"]:
            raise st.conflict(rt, name)
        return self._replace(rt, old, obj, subresource, dry_run, managed_fields)

    def patch_entry(self, rt: ResourceType, namespace: str | None, name: str,
                    content_type: str, patch: object, *, subresource: str | None = None,
                    dry_run: bool = False) -> Entry:
        old = self.get_entry(rt, namespace, name)
        try:
            patched = apply_patch(content_type, orjson.loads(old.raw), patch)
        except PatchDecodeError as exc:
            raise st.bad_request(str(exc)) from None
        except PatchError as exc:
            raise StatusError(422, "Invalid", str(exc)) from None
        meta = self._check_type(rt, patched)
        self._check_identity(rt, meta, namespace or "", name)
        if meta.get("resourceVersion") != old.obj["metadata"]["resourceVersion"] and \
                meta.get("resourceVersion"):
            raise st.conflict(rt, name)
        return self._replace(rt, old, patched, subresource, dry_run)

    def _replace(self, rt: ResourceType, old: Entry, new: dict, subresource: str | None,
                 dry_run: bool, managed_fields: list[dict] | None = None) -> Entry:
        before = old.obj
        name = before["metadata"]["name"]
        if subresource == "status":
            status = new.get("status")
            new = orjson.loads(old.raw)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            errors = []
        else:
            meta, old_meta = new["metadata"], before["metadata"]
            for field in ("name", "namespace", "uid", "creationTimestamp", "generateName",
                          "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            meta.pop("selfLink", None)
            # Clients cannot write managedFields; server-side apply's entries stay.
            managed = managed_fields if managed_fields is not None else old_meta.get(
                "managedFields")
            if managed:
                meta["managedFields"] = managed
            else:
                meta.pop("managedFields", None)
            if rt.has_status:
                if "status" in before:
                    new["status"] = before["status"]
                else:
                    new.pop("status", None)
            new = self._canonical(rt, new)
            apply_defaults(rt, new)
            errors = validate(rt, new, before)
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
                if added:
                    errors.append(FieldError.forbidden(
                        "metadata.finalizers", "no new finalizers can be added if the object "
                        f"is being deleted, found new finalizers {sorted(added)}"))
            if rt.key == "services":
                errors += self.services.assign(_key_of(before), new, before)
            if rt.has_generation and new.get("spec") != before.get("spec"):
                meta["generation"] = int(old_meta.get("generation") or 0) + 1
        if errors:
            raise st.invalid(rt, name, errors)
        self._admit("UPDATE", rt, subresource, new, before, dry_run)
        new["metadata"]["resourceVersion"] = before["metadata"]["resourceVersion"]
        if new == before:
            return old  # a no-op write: no new resourceVersion, no event (as etcd)
        if dry_run:
            return Entry(new)
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and \
                not meta.get("deletionGracePeriodSeconds"):
            return self._commit(rt, DELETED, _key_of(new), new, old)
        return self._commit(rt, MODIFIED, _key_of(new), new, old)

    def bind_entry(self, namespace: str, name: str, node: str, *,
                   dry_run: bool = False) -> Entry:
        """The ``pods/binding`` subresource: what the scheduler calls to place a pod."""
        rt = BY_KEY["pods"]
        old = self.get_entry(rt, namespace, name)
        current = (old.obj.get("spec") or {}).get("nodeName")
        if old.obj["metadata"].get("deletionTimestamp"):
            raise st.conflict(rt, name, "pod is being deleted, cannot be assigned to a host")
        if current:
            raise st.conflict(rt, name, f'pod {name} is already assigned to node "{current}"')
        new = orjson.loads(old.raw)
        new["spec"]["nodeName"] = node
        conditions = [c for c in new.setdefault("status", {}).get("conditions") or []
                      if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True",
                           "lastTransitionTime": timestamp(), "lastProbeTime": None})
        new["status"]["conditions"] = conditions
        if dry_run:
            return Entry(new)
        return self._commit(rt, MODIFIED, (namespace, name), new, old)

    def delete_entry(self, rt: ResourceType, namespace: str | None, name: str, *,
                     propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: dict | None = None,
                     dry_run: bool = False) -> tuple[Entry, bool]:
        """Delete; returns the object's entry and whether it is gone already (False while
        finalizers or a grace period keep it, with ``deletionTimestamp`` set)."""
        old = self.get_entry(rt, namespace, name)
        meta = old.obj["metadata"]
        for field, have in (("uid", meta["uid"]), ("resourceVersion", meta["resourceVersion"])):
            wanted = (preconditions or {}).get(field)
            if wanted and wanted != have:
                label = "UID" if field == "uid" else "ResourceVersion"
                raise st.conflict(rt, name, f"Precondition failed: {label} in precondition: "
                                            f"{wanted}, {label} in object meta: {have}")
        policy = propagation_policy or rt.default_propagation
        if policy not in _POLICIES:
            raise StatusError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: '
                                              f'propagationPolicy: Unsupported value: "{policy}"'
                                              f': supported values: "Foreground", '
                                              f'"Background", "Orphan"')
        if rt.key == "namespaces":
            return self._delete_namespace(old, dry_run)
        new = orjson.loads(old.raw)
        new_meta = new["metadata"]
        graceful = False
        if rt.key == "pods":
            spec, phase = new.get("spec") or {}, (new.get("status") or {}).get("phase")
            grace = grace_period_seconds
            if grace is None:
                grace = spec.get("terminationGracePeriodSeconds", 30)
            if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
                grace = 0
            if grace > 0:
                current = meta.get("deletionGracePeriodSeconds")
                if meta.get("deletionTimestamp") and current is not None and current <= grace:
                    return old, False
                new_meta["deletionTimestamp"] = timestamp(time.time() + grace)
                new_meta["deletionGracePeriodSeconds"] = grace
                graceful = True
            elif meta.get("deletionTimestamp"):
                new_meta["deletionGracePeriodSeconds"] = 0
        finalizers = list(new_meta.get("finalizers") or [])
        wanted = {"Orphan": "orphan", "Foreground": "foregroundDeletion"}.get(policy)
        if wanted and wanted not in finalizers:
            finalizers.append(wanted)
        if finalizers:
            new_meta["finalizers"] = finalizers
        if finalizers or graceful:
            new_meta.setdefault("deletionTimestamp", timestamp())
            new_meta.setdefault("deletionGracePeriodSeconds", 0)
            if new == old.obj:
                return old, False
            if dry_run:
                return Entry(new), False
            entry = self._commit(rt, MODIFIED, _key_of(new), new, old)
            if graceful and self.max_grace_seconds is not None:
                uid = meta["uid"]
                self.call_later(min(grace, self.max_grace_seconds),
                                lambda: self._finish_graceful(rt, _key_of(new), uid))
            return entry, False
        if dry_run:
            return Entry(new), True
        return self._commit(rt, DELETED, _key_of(new), new, old), True

    def _finish_graceful(self, rt: ResourceType, key: Key, uid: str) -> None:
        """Stand-in for the kubelet confirming a pod's termination."""
        entry = self._tables[rt.key].get(key)
        if entry is not None and entry.obj["metadata"]["uid"] == uid:
            try:
                self.delete_entry(rt, key[0], key[1], grace_period_seconds=0,
                                  preconditions={"uid": uid})
            except StatusError:
                pass  # it changed meanwhile; whoever changed it decides

    def _delete_namespace(self, old: Entry, dry_run: bool) -> tuple[Entry, bool]:
        rt = BY_KEY["namespaces"]
        name = old.obj["metadata"]["name"]
        if name in PROTECTED_NAMESPACES:
            raise st.forbidden(rt, name, "this namespace may not be deleted")
        if old.obj["metadata"].get("deletionTimestamp"):
            return old, False
        new = orjson.loads(old.raw)
        new["metadata"]["deletionTimestamp"] = timestamp()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new.setdefault("status", {})["phase"] = "Terminating"
        if dry_run:
            return Entry(new), False
        return self._commit(rt, MODIFIED, ("", name), new, old), False

    def finalize_namespace(self, name: str) -> None:
        """Remove a Terminating namespace once it is empty (the namespace controller)."""
        rt = BY_KEY["namespaces"]
        old = self._tables[rt.key].get(("", name))
        if old is None or not old.obj["metadata"].get("deletionTimestamp"):
            return
        new = orjson.loads(old.raw)
        new["spec"]["finalizers"] = []
        self._commit(rt, DELETED, ("", name), new, old)

    # -- reads ----------------------------------------------------------------------------

    def list_entries(self, rt: ResourceType, namespace: str | None = None, *,
                     label: LabelSelector | None = None, field: FieldSelector | None = None,
                     limit: int = 0, continue_token: str | None = None,
                     resource_version: str | None = None,
                     resource_version_match: str | None = None) -> ListResult:
        """A list as the API server pages it: sorted by namespace/name, ``limit`` items per
        page, ``continue`` tokens that read the same snapshot (410 once it is compacted)."""
        start: Key | None = None
        if continue_token:
            if resource_version not in (None, "", "0"):
                raise st.bad_request("specifying resource version is not allowed when using "
                                     "continue")
            rv, start = _decode_continue(continue_token)
            exact = True
        elif resource_version and resource_version != "0":
            try:
                rv = int(resource_version)
            except ValueError:
                raise st.bad_request(f"invalid resource version: {resource_version}") from None
            if rv > self._rv:
                raise StatusError(504, "Timeout", f"Too large resource version: {rv}, current: "
                                                  f"{self._rv}",
                                  {"causes": [{"reason": "ResourceVersionTooLarge",
                                               "message": "Too large resource version"}],
                                   "retryAfterSeconds": 1})
            exact = resource_version_match == "Exact"
            if not exact:
                rv = self._rv
        else:
            rv, exact = self._rv, False
        table, keys = self._tables[rt.key], self.sorted_keys(rt)
        if exact and rv != self._rv:
            try:
                events = self._logs[rt.key].since(rv)
            except TooOld as exc:
                if continue_token:
                    raise st.expired(_EXPIRED_CONTINUE) from None
                raise st.expired(f"too old resource version: {exc.requested} "
                                 f"({exc.horizon})") from None
            if events:
                table = dict(table)
                for event in reversed(events):
                    if event.old is None:
                        table.pop(event.key, None)
                    else:
                        table[event.key] = event.old
                keys = sorted(table)
        lo = 0
        if start is not None:
            lo = bisect.bisect_right(keys, start)
        if namespace and rt.namespaced:
            lo = max(lo, bisect.bisect_left(keys, (namespace, "")))
            hi = bisect.bisect_left(keys, (namespace + "\x00", ""))
        else:
            hi = len(keys)
        entries: list[Entry] = []
        filtered = bool(label) or bool(field)
        position = lo
        while position < hi:
            entry = table[keys[position]]
            position += 1
            obj = entry.obj
            if filtered and not ((not label or label.matches(obj))
                                 and (not field or field.matches(obj))):
                continue
            entries.append(entry)
            if limit and len(entries) >= limit:
                break
        token = remaining = None
        if limit and len(entries) >= limit and position < hi:
            # Like etcd paging: more keys means a token, even if none of them match.
            token = _encode_continue(rv, keys[position - 1])
            remaining = None if filtered else hi - position
        return ListResult(entries, rv, token, remaining)

    # -- python API ---------------------------------------------------------------------

    def create(self, rt: ResourceType | str, obj: dict, *, namespace: str | None = None,
               dry_run: bool = False) -> dict:
        return _copy(self.create_entry(resource(rt), _copy(obj), namespace,
                                       dry_run=dry_run).obj)

    def get(self, rt: ResourceType | str, name: str, namespace: str | None = None) -> dict:
        return orjson.loads(self.get_entry(resource(rt), namespace, name).raw)

    def list(self, rt: ResourceType | str, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None) -> list[dict]:
        rt = resource(rt)
        result = self.list_entries(rt, namespace, label=parse_label_selector(label_selector),
                                   field=parse_field_selector(field_selector, rt))
        return [orjson.loads(e.raw) for e in result.entries]

    def update(self, rt: ResourceType | str, obj: dict, *, subresource: str | None = None,
               dry_run: bool = False) -> dict:
        rt = resource(rt)
        meta = obj.get("metadata") or {}
        return _copy(self.update_entry(rt, _copy(obj), meta.get("namespace"), meta.get("name"),
                                       subresource=subresource, dry_run=dry_run).obj)

    def patch(self, rt: ResourceType | str, name: str, patch: object, *,
              namespace: str | None = None, patch_type: str = STRATEGIC_MERGE_PATCH,
              subresource: str | None = None, dry_run: bool = False) -> dict:
        entry = self.patch_entry(resource(rt), namespace, name, patch_type, _copy(patch),
                                 subresource=subresource, dry_run=dry_run)
        return _copy(entry.obj)

    def delete(self, rt: ResourceType | str, name: str, namespace: str | None = None, *,
               propagation_policy: str | None = None, grace_period_seconds: int | None = None,
               preconditions: dict | None = None, dry_run: bool = False) -> dict:
        rt = resource(rt)
        entry, gone = self.delete_entry(rt, namespace, name,
                                        propagation_policy=propagation_policy,
                                        grace_period_seconds=grace_period_seconds,
                                        preconditions=preconditions, dry_run=dry_run)
        if gone and not rt.delete_returns_object:
            return st.success(rt, name, entry.obj["metadata"]["uid"])
        return _copy(entry.obj)

    def bind_pod(self, namespace: str, name: str, node: str) -> dict:
        return _copy(self.bind_entry(namespace, name, node).obj)

    def seed(self, rt: ResourceType | str, count: int, *, namespace: str = "default",
             template: dict | None = None, name_prefix: str | None = None) -> int:
        """Create ``count`` objects from ``template`` quickly (names ``<prefix><n>``); the
        namespace is created if missing. Returns how many were created."""
        rt = resource(rt)
        if rt.namespaced and ("", namespace) not in self._tables["namespaces"]:
            self.create_entry(BY_KEY["namespaces"], {"metadata": {"name": namespace}})
        if template is None:
            template = {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}
        raw = orjson.dumps(template)
        prefix = name_prefix or f"seed-{rt.singular}-"
        table = self._tables[rt.key]
        created, n = 0, 0
        while created < count:
            name = f"{prefix}{n:05d}"
            n += 1
            if (namespace if rt.namespaced else "", name) in table:
                continue
            obj = orjson.loads(raw)
            obj.setdefault("metadata", {})["name"] = name
            self.create_entry(rt, obj, namespace if rt.namespaced else None)
            created += 1
        return created

    def compact(self, rv: int | None = None) -> int:
        """Drop retained history up to ``rv`` (default: all of it), as etcd compaction does:
        watches and continue tokens from an older resourceVersion get 410 Expired. Returns
        the compacted revision."""
        rv = self._rv if rv is None else min(rv, self._rv)
        for log in self._logs.values():
            log.compact(rv)
        return rv

    async def changes(self, rt: ResourceType | str,
                      resource_version: int | str | None = None) -> AsyncIterator[WatchEvent]:
        """Committed changes of ``rt`` after ``resource_version`` (default: from now)."""
        log = self._logs[resource(rt).key]
        try:
            cursor = log.end if resource_version in (None, "") else log.cursor_after(
                int(resource_version))
        except TooOld as exc:
            raise st.expired(f"too old resource version: {exc.requested} ({exc.horizon})") \
                from None
        reader = Reader()
        log.readers.add(reader)
        try:
            while not reader.closed:
                events = log.read(cursor)
                cursor += len(events)
                for event in events:
                    yield event
                if not events:
                    await reader.wait(None)
        finally:
            log.readers.discard(reader)


def _key_of(obj: dict) -> Key:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


def _encode_continue(rv: int, last: Key) -> str:
    token = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": f"{last[0]}/{last[1]}\x00"})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, Key]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        namespace, _, name = data["start"].rstrip("\x00").partition("/")
        return int(data["rv"]), (namespace, name)
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise st.bad_request(f"continue key is not valid: {token}") from None
