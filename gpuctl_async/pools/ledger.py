"""Per-node usage kept as pods change, so node, pool and placement views cost O(nodes).

Summing every bound pod's requests on each read costs a quantity parse per pod: at the
envelope (150,000 pods) a pool list took seconds. One :class:`NodeLedger` per cache
subscribes to the pod cache and keeps, per node, the sum of its unfinished pods' effective
requests of GPUs, CPU and memory (each pod's share remembered so an update or delete takes
exactly it back out), who holds its GPUs, and its allocatable parsed once per node version.
The node and pool views read it through :func:`ledger_of` (``accounting.node_usage``); the
placement checks (``jobs.placement``) through the explainer that starts it.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import ClusterCache, holds_node_resources
from gpuctl_async.k8s.informer import DELETED, Key, Obj, object_key
from gpuctl_async.kuberules.resources import parse_amounts
from gpuctl_async.kuberules.resources import pod_requests as effective_requests

Amounts = dict[str, Decimal]
CPU, MEMORY, GPU = "cpu", "memory", labels.GPU_RESOURCE
# Resources a gpuctl pod asks for, in the order messages name them.
RESOURCES = (GPU, CPU, MEMORY)

_LEDGERS: weakref.WeakKeyDictionary[ClusterCache, NodeLedger] = weakref.WeakKeyDictionary()


def ledger_of(cache: ClusterCache) -> NodeLedger | None:
    """The running ledger of ``cache``, if any."""
    return _LEDGERS.get(cache)


def pod_requests(pod: Obj) -> Amounts:
    """The pod's effective request of the GPUs, CPU and memory it asks for (none: absent)."""
    total = effective_requests(pod.get("spec", {}))
    return {r: total[r] for r in RESOURCES if total.get(r)}


class NodeLedger:
    """What the unfinished pods bound to each node request, and who holds its GPUs, updated
    from the pod cache's change notifications. Start it before anything else subscribes to
    the pod cache (its subscription sees the first list, and is current when another
    subscriber asks about the same change); stop it after."""

    def __init__(self, cache: ClusterCache):
        self._cache = cache
        self._pods: dict[Key, tuple[str, Amounts, str | None]] = {}
        self._used: dict[str, Amounts] = {}
        self._gpu_holders: dict[str, Counter[str]] = {}
        self._allocatable: dict[str, tuple[str, Amounts]] = {}
        self._unsubscribe: list[Callable[[], None]] = []
        self.version = 0
        """Moves whenever some node's usage changes: answers made from it can be reused
        while it stays."""

    def start(self) -> None:
        self._unsubscribe = [self._cache.pods.subscribe(self._on_pod),
                             self._cache.nodes.subscribe(self._on_node)]
        for pod in self._cache.pods.peek_items():
            self._on_pod("ADDED", None, pod)
        _LEDGERS[self._cache] = self

    def stop(self) -> None:
        _LEDGERS.pop(self._cache, None)
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []

    def _on_node(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == DELETED and old is not None:
            self._allocatable.pop(old["metadata"]["name"], None)

    def used(self, node: str) -> Amounts:
        return self._used.get(node, {})

    def allocatable(self, node: Obj) -> Amounts:
        """The node's allocatable GPUs, CPU and memory, parsed once per node version."""
        name = node["metadata"]["name"]
        version = node["metadata"].get("resourceVersion")
        known = self._allocatable.get(name)
        if known is not None and version is not None and known[0] == version:
            return known[1]
        status = node.get("status", {})
        offered = status.get("allocatable") or status.get("capacity") or {}
        amounts = parse_amounts({r: offered[r] for r in RESOURCES if r in offered})
        if version is not None:
            self._allocatable[name] = (version, amounts)
        return amounts

    def gpu_holders(self, node: str) -> Counter[str]:
        """``job:<ns>/<job>`` or ``pod:<ns>/<pod>`` → pods holding GPUs on ``node``."""
        return self._gpu_holders.get(node, Counter())

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        key = object_key(new or old or {})
        entry = None
        if event != DELETED and new is not None and holds_node_resources(new):
            meta = new["metadata"]
            requests = pod_requests(new)
            holder = None
            if requests.get(GPU, 0) > 0:
                job = (meta.get("labels") or {}).get(labels.JOB_NAME)
                holder = f"job:{key[0]}/{job}" if job else f"pod:{key[0]}/{key[1]}"
            entry = (new["spec"]["nodeName"], requests, holder)
        before = self._pods.get(key)
        if entry == before:
            return  # e.g. a status change: the node's usage is what it was
        self.version += 1
        if before is not None:
            del self._pods[key]
            self._account(*before, sign=-1)
        if entry is not None:
            self._pods[key] = entry
            self._account(*entry, sign=1)

    def _account(self, node: str, requests: Amounts, holder: str | None, sign: int) -> None:
        used = self._used.setdefault(node, {})
        for resource, amount in requests.items():
            used[resource] = used.get(resource, Decimal(0)) + sign * amount
        if holder is not None:
            holders = self._gpu_holders.setdefault(node, Counter())
            holders[holder] += sign
            if holders[holder] <= 0:
                del holders[holder]
