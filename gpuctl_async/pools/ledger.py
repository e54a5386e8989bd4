"""Per-node usage kept as pods change, so node and pool views cost O(nodes), not O(pods).

Summing every bound pod's requests on each read costs a quantity parse per pod: at the
envelope (150,000 pods) a pool list took seconds. The ledger subscribes to the pod cache and
keeps, per node, the sum of its unfinished pods' effective requests (``pod_requests``), each
pod's share remembered so an update or delete takes exactly it back out.
:func:`~gpuctl_async.pools.accounting.node_usage` reads it when one is running for the cache.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from decimal import Decimal

from gpuctl_async.k8s.cache import ClusterCache, holds_node_resources
from gpuctl_async.k8s.informer import DELETED, Key, Obj, object_key

Share = tuple[str, Decimal, Decimal, int]  # node, cpu, memory, gpus

_LEDGERS: weakref.WeakKeyDictionary[ClusterCache, UsageLedger] = weakref.WeakKeyDictionary()


def ledger_of(cache: ClusterCache) -> UsageLedger | None:
    """The running ledger of ``cache``, if any."""
    return _LEDGERS.get(cache)


class UsageLedger:
    """Start it before the caches (its subscription sees the first list); stop it after."""

    def __init__(self, cache: ClusterCache, requests: Callable[[Obj], dict[str, Decimal]],
                 resources: tuple[str, str, str]):
        self._cache = cache
        self._requests = requests
        self._cpu, self._memory, self._gpu = resources
        self._shares: dict[Key, Share] = {}
        self._used: dict[str, list] = {}  # node -> [cpu, memory, gpus]
        self.version = 0
        """Moves whenever some node's usage changes: answers made from it can be reused
        while it stays."""
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self._unsubscribe = self._cache.pods.subscribe(self._on_pod)
        for pod in self._cache.pods.peek_items():
            self._on_pod("ADDED", None, pod)
        _LEDGERS[self._cache] = self

    def stop(self) -> None:
        _LEDGERS.pop(self._cache, None)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def used(self, node: str) -> tuple[Decimal, Decimal, int]:
        cpu, memory, gpus = self._used.get(node) or (Decimal(0), Decimal(0), 0)
        return cpu, memory, gpus

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        key = object_key(new or old or {})
        share = None
        if event != DELETED and new is not None and holds_node_resources(new):
            requests = self._requests(new)
            share = (new["spec"]["nodeName"], requests.get(self._cpu, Decimal(0)),
                     requests.get(self._memory, Decimal(0)), int(requests.get(self._gpu, 0)))
        before = self._shares.get(key)
        if share == before:
            return  # e.g. a status change: the node's usage is what it was
        if before is not None:
            del self._shares[key]
            self._add(before, -1)
        if share is not None:
            self._shares[key] = share
            self._add(share, 1)

    def _add(self, share: Share, sign: int) -> None:
        self.version += 1
        node, cpu, memory, gpus = share
        used = self._used.setdefault(node, [Decimal(0), Decimal(0), 0])
        used[0] += sign * cpu
        used[1] += sign * memory
        used[2] += sign * gpus
        if sign < 0 and not any(used):
            del self._used[node]
