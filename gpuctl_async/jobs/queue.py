"""The pods waiting to be scheduled, per pool, in the order the scheduler will take them.

kube-scheduler's active queue is sorted by PrioritySort: higher ``spec.priority`` first (the
Priority admission plugin fills it from the PriorityClass), then the earlier the pod entered
the queue — its creation time, for pods that have waited since. The queue here holds every
gpuctl pod that is not bound to a node, not finished and not being deleted, kept up to date
from the pod cache's change notifications; ordering a pool's queue costs O(w log w) for its
w waiting pods, done when a job detail asks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import ClusterCache, is_gpuctl
from gpuctl_async.k8s.informer import DELETED, Obj, object_key
from gpuctl_async.k8s.timestamps import parse_time
from gpuctl_async.pools.accounting import pod_gpus

Key = tuple[str, str]


def is_waiting(pod: Obj) -> bool:
    """A gpuctl pod the scheduler has yet to place."""
    return (is_gpuctl(pod) and not pod.get("spec", {}).get("nodeName")
            and not pod.get("metadata", {}).get("deletionTimestamp")
            and pod.get("status", {}).get("phase", "Pending") == "Pending")


def pod_pool(pod: Obj) -> str:
    return (pod.get("metadata", {}).get("labels") or {}).get(labels.POOL, labels.DEFAULT_POOL)


@dataclass(frozen=True)
class QueuePosition:
    position: int
    """1: the next pod of the pool the scheduler takes."""
    waiting: int
    """Pods waiting in the pool."""
    gpus_ahead: int
    """GPUs the pods ahead ask for."""
    priority: int

    def as_dict(self) -> dict:
        return {"position": self.position, "waiting": self.waiting,
                "gpusAhead": self.gpus_ahead, "priority": self.priority}


class WaitingQueue:
    """Waiting pods by pool, ordered on demand (priority, then creation time, then name)."""

    def __init__(self, cache: ClusterCache):
        self._cache = cache
        self._pools: dict[str, dict[Key, Obj]] = {}
        self._where: dict[Key, str] = {}
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self._unsubscribe = self._cache.pods.subscribe(self._on_pod)
        for pod in self._cache.pods.peek_items():
            self._on_pod("ADDED", None, pod)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def priority(self, pod: Obj) -> int:
        spec = pod.get("spec", {})
        if isinstance(spec.get("priority"), int):
            return spec["priority"]
        name = spec.get("priorityClassName")
        priority_class = self._cache.priority_classes.peek("", name) if name else None
        return int((priority_class or {}).get("value") or 0)

    def _order_key(self, pod: Obj) -> tuple:
        meta = pod["metadata"]
        created = parse_time(meta.get("creationTimestamp"))
        return (-self.priority(pod), created.timestamp() if created else 0.0,
                meta.get("namespace", ""), meta["name"])

    def ordered(self, pool: str) -> list[Obj]:
        return sorted(self._pools.get(pool, {}).values(), key=self._order_key)

    def waiting_in(self, pool: str) -> list[Obj]:
        """The pool's waiting pods, unordered (cheap)."""
        return list(self._pools.get(pool, {}).values())

    def position(self, pod: Obj) -> QueuePosition | None:
        """Where ``pod`` stands in its pool's queue; None when it is not waiting."""
        key = object_key(pod)
        pool = self._where.get(key)
        if pool is None:
            return None
        ordered = self.ordered(pool)
        index = next(i for i, p in enumerate(ordered) if object_key(p) == key)
        return QueuePosition(index + 1, len(ordered), sum(pod_gpus(p) for p in ordered[:index]),
                             self.priority(pod))

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        assert obj is not None
        key = object_key(obj)
        pool = self._where.pop(key, None)
        if pool is not None:
            waiting = self._pools[pool]
            waiting.pop(key, None)
            if not waiting:
                del self._pools[pool]
        if event != DELETED and new is not None and is_waiting(new):
            pool = pod_pool(new)
            self._pools.setdefault(pool, {})[key] = new
            self._where[key] = pool
