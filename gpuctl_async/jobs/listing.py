"""The job list, kept sorted as the caches change, so a page costs O(page size).

Rows are at pod level (``jobId`` = pod name), as in the original gpuctl, plus one row for a
job whose controller has no pods (yet, or at all: e.g. refused by a quota), so a submitted job
never disappears from view. Rows are ordered newest first, then by namespace and name, which
keeps pages stable while the cluster changes. Each row's fields except ``age`` are computed
when its object changes; ``age`` is computed when a page is rendered.

A row's ``reason`` and ``message`` (``jobs.reasons``) also depend on other objects: a pod
waiting for a node on its pool's nodes and what is bound to them, a pod-less controller on its
namespace's quotas. So a change of a node, or of a pod bound to one, marks that node's pool,
and the rows of the pool's waiting pods are explained again at most every
``REEXPLAIN_SECONDS``, however many changes came (a pod's own change shows at once); a quota
change re-explains the pod-less controllers of its namespace.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import operator
import time
from collections import Counter
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from gpuctl_async.jobs import status as job_status
from gpuctl_async.jobs.reasons import Explainer, Explanation
from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import ClusterCache, is_gpuctl
from gpuctl_async.k8s.informer import DELETED, Obj, object_key
from gpuctl_async.k8s.timestamps import parse_time
from gpuctl_async.pools.accounting import node_pool

RowKey = tuple[float, str, str, str]  # (-created, namespace, name, kind of row)
# Longest a waiting row's message lags a change elsewhere in its pool (the job feed coalesces
# over 0.2 s anyway); bounds the cost of a busy pool to a few passes a second.
REEXPLAIN_SECONDS = 0.1
MAX_PAGES = 2048  # rendered pages kept (page, size, scope, filters)
Listener = Callable[[str, "Row"], None]


@dataclass
class Row:
    item: dict[str, Any]
    """The JobItem without ``age``."""
    created: float | None
    """Creation time, seconds since the epoch."""
    phase: str
    job_key: str  # "<namespace>/<job name>"
    pool: str

    def __post_init__(self) -> None:
        # The item as JSON up to the age, encoded once per change rather than once per read,
        # and the whole item as JSON until its age reads differently (a second for a new
        # row, up to a day for an old one): a page is then a join of 50 cached byte strings.
        self._json_head = orjson.dumps(self.item)[:-1] + b',"age":"'
        self.encoded_until = -math.inf
        """When :meth:`encode`'s answer stops being true (seconds since the epoch)."""
        self._encoded = b""

    def encode(self, now: float) -> bytes:
        if now >= self.encoded_until:
            if self.created is None:
                age, self.encoded_until = "N/A", math.inf
            else:
                age, change = job_status.duration_and_change(now - self.created)
                self.encoded_until = self.created + change
            self._encoded = self._json_head + age.encode() + b'"}'
        return self._encoded


def _created(obj: Obj) -> float | None:
    when = parse_time(obj["metadata"].get("creationTimestamp"))
    return when.timestamp() if when else None


def _sort_key(obj: Obj, row_kind: str) -> RowKey:
    meta = obj["metadata"]
    return (-(_created(obj) or 0.0), meta.get("namespace", ""), meta["name"], row_kind)


def _row(obj: Obj, *, status: str, ready: str, node: str, ip: str, phase: str,
         why: Explanation | None) -> Row:
    """A row for a pod or a pod-less controller; labels say which job it belongs to."""
    meta = obj["metadata"]
    obj_labels = meta.get("labels", {})
    name = obj_labels.get(labels.JOB_NAME, meta["name"])
    namespace = meta.get("namespace", "")
    return Row(
        item={"jobId": meta["name"], "name": name, "namespace": namespace,
              "kind": obj_labels.get(labels.JOB_TYPE, "unknown"), "status": status,
              "ready": ready, "node": node, "ip": ip,
              "reason": why.reason if why else None, "message": why.message if why else None},
        created=_created(obj),
        phase=phase,
        job_key=f"{namespace}/{name}",
        pool=obj_labels.get(labels.POOL, labels.DEFAULT_POOL),
    )


def pod_row(pod: Obj, why: Explanation | None = None) -> Row:
    spec, st = pod.get("spec", {}), pod.get("status", {})
    return _row(pod, status=job_status.pod_status(pod), ready=job_status.pod_ready(pod),
                node=spec.get("nodeName") or "N/A", ip=st.get("podIP") or "N/A",
                phase=st.get("phase") or "Unknown", why=why)


def controller_row(controller: Obj, status: str, why: Explanation | None = None) -> Row:
    return _row(controller, status=status, ready="0/0", node="N/A", ip="N/A", phase=status,
                why=why)


class JobListing:
    """Sorted rows for ``GET /api/v1/jobs`` and the live job feed, fed by the caches."""

    def __init__(self, cache: ClusterCache, controller_status: Callable[[Obj], str],
                 explainer: Explainer):
        self._cache = cache
        self._controller_status = controller_status
        self._explain = explainer
        self._dirty_pools: set[str] = set()
        self._flush: asyncio.Handle | None = None
        # Sorted keys and their rows, side by side: a page is one slice of ``_rows``.
        self._keys: list[RowKey] = []
        self._rows: list[Row] = []
        self._pod_keys: dict[tuple[str, str], RowKey] = {}
        self._controller_keys: dict[tuple[str, str, str], RowKey] = {}
        self._namespace_rows: Counter[str] = Counter()
        # The same, per namespace: a namespace's rows without a scan of every row (a
        # dashboard's snapshot, ``?namespace=``).
        self._ns_keys: dict[str, list[RowKey]] = {}
        self._ns_rows: dict[str, list[Row]] = {}
        # While the caches fill, rows are only collected here and sorted once when they
        # have synced (:meth:`_settle`): inserting 50,000 rows one by one into sorted lists
        # is a memmove of the list per row (~1 s of start-up at the envelope).
        self._pending: dict[RowKey, Row] = {}
        self._pages: dict[tuple, tuple[int, list[Row], float, bytes]] = {}
        """Rendered pages by page, size, scope and filters: (total, rows, valid until, body).
        The rows are held, not their ids: an id is reused once its object is freed."""
        self._listeners: list[Listener] = []
        self._namespace_listeners: dict[str, list[Listener]] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self._settler: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Subscribe to the caches (rows for objects already cached are added at once)."""
        self._unsubscribe.append(self._cache.pods.subscribe(self._on_pod))
        for informer in self._cache.controllers():
            self._unsubscribe.append(informer.subscribe(self._on_controller))
        self._unsubscribe.append(self._cache.events.subscribe(self._on_event))
        self._unsubscribe.append(self._cache.nodes.subscribe(self._on_node))
        self._unsubscribe.append(self._cache.quotas.subscribe(self._on_quota))
        for pod in self._cache.pods.peek_items():
            self._on_pod("ADDED", None, pod)
        for informer in self._cache.controllers():
            for controller in informer.peek_items():
                self._on_controller("ADDED", None, controller)
        if self._filling():
            self._settler = asyncio.get_running_loop().create_task(
                self._settle_when_synced(), name="job listing settler")

    def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._settler is not None:
            self._settler.cancel()
            self._settler = None
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    def listen(self, listener: Listener, namespace: str | None = None) -> Callable[[], None]:
        """``listener(event_type, row)`` for every row added, changed or removed; with
        ``namespace``, for that namespace's rows only (a change then costs one lookup, not a
        call per listener: 500 dashboards watching one namespace each cost 500 calls per
        change otherwise). Returns the function that stops it."""
        if namespace is None:
            listeners = self._listeners
        else:
            listeners = self._namespace_listeners.setdefault(namespace, [])
        listeners.append(listener)

        def stop() -> None:
            if listener in listeners:
                listeners.remove(listener)
            if (namespace is not None and not listeners
                    and self._namespace_listeners.get(namespace) is listeners):
                del self._namespace_listeners[namespace]
        return stop

    # -- queries --------------------------------------------------------------------------

    def require_synced(self) -> None:
        """Unavailable (503) until the caches the rows come from have synced: before that
        an empty list would be a lie."""
        self._cache.pods.require_synced()
        for informer in self._cache.controllers():
            informer.require_synced()

    def __len__(self) -> int:
        self._settle()
        return len(self._keys)

    def rows(self, *, namespace: str | None = None, kind: str | None = None,
             pool: str | None = None, status: str | None = None,
             within: Container[str] | None = None) -> Iterator[Row]:
        """Rows in order, filtered; ``status`` matches the shown status or the phase;
        ``within``: only these namespaces (those the caller may read; None: all)."""
        self._settle()
        wanted = status.lower() if status else None
        for row in (self._rows if namespace is None else self._ns_rows.get(namespace, ())):
            item = row.item
            if within is not None and item["namespace"] not in within:
                continue
            if kind is not None and item["kind"] != kind:
                continue
            if pool is not None and row.pool != pool:
                continue
            if wanted is not None and wanted not in (item["status"].lower(), row.phase.lower()):
                continue
            yield row

    def page(self, *, page: int, page_size: int, within: Container[str] | None = None,
             **filters: str | None) -> tuple[int, list[Row]]:
        self._settle()
        start = (page - 1) * page_size
        if within is not None and all(ns in within for ns in self._namespace_rows):
            within = None  # the caller may read every namespace that has jobs: no filter
        if within is None and not any(filters.values()):
            return len(self._rows), self._rows[start:start + page_size]
        matching = list(self.rows(within=within, **filters))
        return len(matching), matching[start:start + page_size]

    def page_json(self, *, page: int, page_size: int, within: frozenset[str] | None = None,
                  **filters: str | None) -> bytes:
        """The ``{"total", "items"}`` body of a page, as JSON: the same bytes again while the
        page holds the same rows (a row is a new object when it changes) and none of their
        ages reads differently. Under churn a change elsewhere leaves a page as it was, and
        pages expire one by one as their ages move on, not all at each new second (a thousand
        pages rendered at once delayed every answer behind them)."""
        self.require_synced()
        now = time.time()
        total, rows = self.page(page=page, page_size=page_size, within=within, **filters)
        key = (page, page_size, within, *filters.items())
        known = self._pages.get(key)
        if (known is not None and known[0] == total and now < known[2]
                and len(known[1]) == len(rows) and all(map(operator.is_, rows, known[1]))):
            return known[3]
        body = b'{"total":%d,"items":[%s]}' % (total, b",".join(r.encode(now) for r in rows))
        if len(self._pages) >= MAX_PAGES:
            self._pages.clear()  # e.g. pages of filters asked once: start again, not grow
        self._pages[key] = (total, rows, min((r.encoded_until for r in rows), default=math.inf),
                            body)
        return body

    def items_json(self, *, within: Container[str] | None = None,
                   **filters: str | None) -> bytes:
        """Every matching row, as a JSON array."""
        self.require_synced()
        now = time.time()
        return b"[%s]" % b",".join(row.encode(now) for row in self.rows(within=within, **filters))

    # -- maintenance ----------------------------------------------------------------------

    def _filling(self) -> bool:
        """The caches the rows come from have not all synced yet (they never unsync)."""
        return not (self._cache.pods.synced
                    and all(informer.synced for informer in self._cache.controllers()))

    async def _settle_when_synced(self) -> None:
        """Sort the rows collected while filling as soon as the caches have synced, rather
        than on the first read."""
        informers = (self._cache.pods, *self._cache.controllers())
        for informer in informers:
            while not informer.synced:
                await informer.wait_for(lambda i=informer: i.synced, 3600)
        self._settler = None
        self._settle()

    def _settle(self) -> None:
        """Once the caches have synced: the rows collected while they filled, sorted in one
        pass (the sorted lists are empty until then: nothing is put there while filling)."""
        if not self._pending or self._filling():
            return
        pending, self._pending = self._pending, {}
        self._keys = sorted(pending)
        self._rows = [pending[key] for key in self._keys]
        for key, row in zip(self._keys, self._rows):
            self._ns_keys.setdefault(key[1], []).append(key)
            self._ns_rows.setdefault(key[1], []).append(row)

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        ident = object_key(obj)
        if event == DELETED or not is_gpuctl(obj):
            self._remove(self._pod_keys.pop(ident, None))
        else:
            self._put(self._pod_keys, ident, _sort_key(obj, "pod"),
                      pod_row(obj, self._explain.pod(obj)))
        self._refresh_job(obj)
        for pod in (old, new):
            node = (pod or {}).get("spec", {}).get("nodeName")
            if node:
                cached = self._cache.nodes.peek("", node)
                self._mark_pool(node_pool(cached) if cached else None)

    def _on_node(self, event: str, old: Obj | None, new: Obj | None) -> None:
        for node in (old, new):
            if node is not None:
                self._mark_pool(node_pool(node))

    def _on_quota(self, event: str, old: Obj | None, new: Obj | None) -> None:
        namespace = (new or old or {}).get("metadata", {}).get("namespace", "")
        for kind, ns, name in list(self._controller_keys):
            controller = self._cache.controller_informer(kind).peek(ns, name)
            if ns == namespace and controller is not None:
                self._refresh_controller(controller)

    def _mark_pool(self, pool: str | None) -> None:
        if pool is None:
            return
        self._dirty_pools.add(pool)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(REEXPLAIN_SECONDS,
                                                                self._explain_waiting)

    def _explain_waiting(self) -> None:
        """The rows of the waiting pods of every pool that changed, explained again."""
        self._flush = None
        pools, self._dirty_pools = self._dirty_pools, set()
        for pool in pools:
            waiting = [p for p in self._explain.queue.waiting_in(pool)
                       if object_key(p) in self._pod_keys]
            for pod, why in zip(waiting, self._explain.waiting_pods(waiting)):
                self._put(self._pod_keys, object_key(pod), _sort_key(pod, "pod"),
                          pod_row(pod, why))

    def _on_controller(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        ident = (obj["kind"], *object_key(obj))
        if event == DELETED:
            self._remove(self._controller_keys.pop(ident, None))
            return
        self._refresh_controller(obj)

    def _on_event(self, event: str, old: Obj | None, new: Obj | None) -> None:
        """A controller's status also shows why it has no pods (FailedCreate events)."""
        involved = (new or old or {}).get("involvedObject", {})
        kind, namespace, name = involved.get("kind"), involved.get("namespace", ""), involved.get("name")
        if kind == "ReplicaSet":
            replica_set = self._cache.replica_sets.peek(namespace, name)
            owner = next((ref for ref in (replica_set or {}).get("metadata", {}).get(
                "ownerReferences", ()) if ref.get("kind") == "Deployment"), None)
            if owner is None:
                return
            kind, name = "Deployment", owner["name"]
        if kind in ("Job", "Deployment", "StatefulSet"):
            controller = self._cache.controller_informer(kind).peek(namespace, name)
            if controller is not None:
                self._refresh_controller(controller)

    def _refresh_job(self, pod: Obj) -> None:
        """A pod came or went: its job's controller row shows only while it has no pods."""
        meta = pod["metadata"]
        job_name = meta.get("labels", {}).get(labels.JOB_NAME)
        if not job_name:
            return
        for informer in self._cache.controllers():
            controller = informer.peek(meta.get("namespace", ""), job_name)
            if controller is not None:
                self._refresh_controller(controller)

    def _refresh_controller(self, controller: Obj) -> None:
        ident = (controller["kind"], *object_key(controller))
        namespace, name = object_key(controller)
        job_name = controller["metadata"].get("labels", {}).get(labels.JOB_NAME, name)
        has_pods = bool(self._cache.pods.peek_index("job", f"{namespace}/{job_name}"))
        if has_pods:
            self._remove(self._controller_keys.pop(ident, None))
            return
        status = self._controller_status(controller)
        row = controller_row(controller, status, self._explain.controller(controller, status))
        self._put(self._controller_keys, ident, _sort_key(controller, "controller"), row)

    def _put(self, index: dict, ident: Any, key: RowKey, row: Row) -> None:
        previous = index.get(ident)
        if previous is not None and previous != key:
            self._remove(previous, notify=False)
        index[ident] = key
        if self._filling():
            old_row = self._pending.get(key)
            self._pending[key] = row
            if old_row is None:
                self._namespace_rows[key[1]] += 1
            if old_row is None or old_row.item != row.item:
                self._notify("MODIFIED" if old_row is not None else "ADDED", row)
            return
        self._settle()
        position = bisect.bisect_left(self._keys, key)
        old_row = None
        ns_keys = self._ns_keys.setdefault(key[1], [])
        ns_rows = self._ns_rows.setdefault(key[1], [])
        ns_position = bisect.bisect_left(ns_keys, key)
        if position < len(self._keys) and self._keys[position] == key:
            old_row, self._rows[position] = self._rows[position], row
            ns_rows[ns_position] = row
        else:
            self._keys.insert(position, key)
            self._rows.insert(position, row)
            ns_keys.insert(ns_position, key)
            ns_rows.insert(ns_position, row)
            self._namespace_rows[key[1]] += 1
        if old_row is None or old_row.item != row.item:
            self._notify("MODIFIED" if old_row is not None else "ADDED", row)

    def _remove(self, key: RowKey | None, *, notify: bool = True) -> None:
        if key is None:
            return
        if self._filling():
            row = self._pending.pop(key, None)
            if row is not None:
                self._namespace_rows[key[1]] -= 1
                if not self._namespace_rows[key[1]]:
                    del self._namespace_rows[key[1]]
                if notify:
                    self._notify("DELETED", row)
            return
        self._settle()
        position = bisect.bisect_left(self._keys, key)
        if position < len(self._keys) and self._keys[position] == key:
            del self._keys[position]
            row = self._rows.pop(position)
            ns_keys, ns_rows = self._ns_keys[key[1]], self._ns_rows[key[1]]
            ns_position = bisect.bisect_left(ns_keys, key)
            del ns_keys[ns_position]
            del ns_rows[ns_position]
            self._namespace_rows[key[1]] -= 1
            if not self._namespace_rows[key[1]]:
                del self._namespace_rows[key[1]]
                del self._ns_keys[key[1]]
                del self._ns_rows[key[1]]
            if notify:
                self._notify("DELETED", row)

    def _notify(self, event: str, row: Row) -> None:
        for listener in list(self._listeners):
            listener(event, row)
        scoped = self._namespace_listeners.get(row.item["namespace"])
        if scoped:
            for listener in list(scoped):
                listener(event, row)
