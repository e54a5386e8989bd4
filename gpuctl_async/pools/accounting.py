"""Per-node facts: pool, GPU type, readiness, capacity, and what bound pods request.

Usage counts every pod bound to the node that has not finished, gpuctl's or not (the pod cache
keeps other pods slimmed to what this reads), with Kubernetes' effective request per pod
(``kuberules.resources``); it is kept as pods change by ``pools.ledger``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import NODE_INDEX, ClusterCache, holds_node_resources
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.kuberules.resources import parse_amount
from gpuctl_async.kuberules.scheduling import node_ready
from gpuctl_async.pools.ledger import CPU, GPU, MEMORY, ledger_of, pod_requests

ACTIVE = "active"
NOT_READY = "not_ready"


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


def node_status(node: Obj) -> str:
    return ACTIVE if node_ready(node) else NOT_READY


def _quantity(value: object) -> Decimal:
    # A malformed quantity cannot be scheduled against either.
    amount = parse_amount(value)
    return Decimal(0) if amount is None else amount


def capacity_of(node: Obj, resource: str) -> Decimal:
    return _quantity(node.get("status", {}).get("capacity", {}).get(resource, 0))


def gpu_total(node: Obj) -> int:
    return int(capacity_of(node, GPU))


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


def node_usage(cache: ClusterCache, name: str) -> NodeUsage:
    ledger = ledger_of(cache)
    if ledger is not None:
        cache.pods.require_synced()  # as the by_index read below would
        used = ledger.used(name)
        return NodeUsage(used.get(CPU, Decimal(0)), used.get(MEMORY, Decimal(0)),
                         int(used.get(GPU, 0)))
    cpu = memory = Decimal(0)
    gpu = 0
    for pod in bound_pods(cache, name):
        requests = pod_requests(pod)
        cpu += requests.get(CPU, Decimal(0))
        memory += requests.get(MEMORY, Decimal(0))
        gpu += int(requests.get(GPU, 0))
    return NodeUsage(cpu, memory, gpu)
