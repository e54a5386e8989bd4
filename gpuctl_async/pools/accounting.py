"""Per-node facts: pool, GPU type, readiness, capacity, and what bound pods request.

Usage counts every pod bound to the node that has not finished, gpuctl's or not (the pod cache
keeps other pods slimmed to what this reads), with Kubernetes' effective request per pod: the
larger of the sum over its containers and the largest init container (they run one at a time,
before the others).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from decimal import Decimal

from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import NODE_INDEX, ClusterCache, holds_node_resources
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.pools.ledger import UsageLedger, ledger_of
from gpuctl_async.kuberules.quantity import QuantityError, parse_quantity

ACTIVE = "active"
NOT_READY = "not_ready"
CPU, MEMORY, GPU = "cpu", "memory", labels.GPU_RESOURCE


def node_name(node: Obj) -> str:
    return node["metadata"]["name"]


def node_labels(node: Obj) -> dict[str, str]:
    return node.get("metadata", {}).get("labels") or {}


def node_pool(node: Obj) -> str:
    """The pool a node belongs to: its pool label, else the default pool."""
    return node_labels(node).get(labels.POOL) or labels.DEFAULT_POOL


def node_gpu_type(node: Obj) -> str | None:
    node_label = node_labels(node)
    return next((node_label[key] for key in labels.NODE_GPU_TYPE_LABELS if node_label.get(key)),
                None)


def node_ready(node: Obj) -> bool:
    conditions = node.get("status", {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def node_status(node: Obj) -> str:
    return ACTIVE if node_ready(node) else NOT_READY


def _quantity(value: object) -> Decimal:
    if isinstance(value, str):
        return _parsed(value)
    try:
        return parse_quantity(value)  # type: ignore[arg-type]
    except QuantityError:
        return Decimal(0)  # a malformed quantity cannot be scheduled against either


@lru_cache(maxsize=4096)
def _parsed(text: str) -> Decimal:
    """Quantities repeat (``8``, ``2Gi``, ``100m``): each distinct one is parsed once."""
    try:
        return parse_quantity(text)
    except QuantityError:
        return Decimal(0)


def capacity_of(node: Obj, resource: str) -> Decimal:
    return _quantity(node.get("status", {}).get("capacity", {}).get(resource, 0))


def gpu_total(node: Obj) -> int:
    return int(capacity_of(node, GPU))


def pod_requests(pod: Obj) -> dict[str, Decimal]:
    """The pod's effective request per resource, as the scheduler counts it."""
    spec = pod.get("spec", {})

    def each(containers: Iterable[Obj] | None) -> Iterable[Mapping[str, object]]:
        return ((c.get("resources") or {}).get("requests") or {} for c in containers or ())

    total: dict[str, Decimal] = {}
    for requests in each(spec.get("containers")):
        for resource, amount in requests.items():
            total[resource] = total.get(resource, Decimal(0)) + _quantity(amount)
    for requests in each(spec.get("initContainers")):
        for resource, amount in requests.items():
            total[resource] = max(total.get(resource, Decimal(0)), _quantity(amount))
    return total


def pod_gpus(pod: Obj) -> int:
    return int(pod_requests(pod).get(GPU, 0))


@dataclass(frozen=True)
class NodeUsage:
    cpu: Decimal
    memory: Decimal
    gpu: int


def bound_pods(cache: ClusterCache, name: str) -> list[Obj]:
    """Unfinished pods bound to the node, sorted by namespace and name."""
    pods = [p for p in cache.pods.by_index(NODE_INDEX, name) if holds_node_resources(p)]
    return sorted(pods, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"]))


def start_usage_ledger(cache: ClusterCache) -> UsageLedger:
    """Keep per-node usage as pods change (``pools.ledger``); returns the ledger to stop."""
    ledger = UsageLedger(cache, pod_requests, (CPU, MEMORY, GPU))
    ledger.start()
    return ledger


def node_usage(cache: ClusterCache, name: str) -> NodeUsage:
    ledger = ledger_of(cache)
    if ledger is not None:
        cache.pods.require_synced()  # as the by_index read below would
        return NodeUsage(*ledger.used(name))
    cpu = memory = Decimal(0)
    gpu = 0
    for pod in bound_pods(cache, name):
        requests = pod_requests(pod)
        cpu += requests.get(CPU, Decimal(0))
        memory += requests.get(MEMORY, Decimal(0))
        gpu += int(requests.get(GPU, 0))
    return NodeUsage(cpu, memory, gpu)
