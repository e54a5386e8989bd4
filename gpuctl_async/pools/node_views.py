"""Nodes as the caches show them: list entries, detail, and per-GPU occupancy."""

from __future__ import annotations

import weakref
from decimal import Decimal

from gpuctl_async.jobs.status import pod_is_finished, pod_status
from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import NODE_INDEX, ClusterCache, is_gpuctl
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.pools.accounting import (
    bound_pods, capacity_of, gpu_total, node_gpu_type, node_labels, node_name, node_pool,
    node_status, node_usage, pod_gpus)
from gpuctl_async.pools.labels import get_node
from gpuctl_async.pools.pool_views import sorted_nodes
from gpuctl_async.kuberules.quantity import format_bytes

UNKNOWN = "unknown"


def _cores(amount: Decimal) -> int | float:
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _created(node: Obj) -> str | None:
    return node["metadata"].get("creationTimestamp")


# Node list entries, per cache and node name: (node resourceVersion, GPUs used) → entry. A
# node list page is then 50 lookups; the entry changes only with its node or its GPU use.
_SUMMARIES: weakref.WeakKeyDictionary[ClusterCache, dict[str, tuple[tuple, dict]]] = \
    weakref.WeakKeyDictionary()
_MAX_SUMMARIES = 50_000


def node_summary(cache: ClusterCache, node: Obj) -> dict:
    """A node's list entry (shared: do not mutate)."""
    name = node_name(node)
    used = node_usage(cache, name).gpu
    version = (node["metadata"].get("resourceVersion"), used)
    memo = _SUMMARIES.setdefault(cache, {})
    known = memo.get(name)
    if known is not None and known[0] == version and version[0] is not None:
        return known[1]
    summary = _summary(node, used)
    if len(memo) >= _MAX_SUMMARIES:
        memo.clear()  # nodes come and go: start again rather than grow
    memo[name] = (version, summary)
    return summary


def _summary(node: Obj, used: int) -> dict:
    total = gpu_total(node)
    capacity = node.get("status", {}).get("capacity", {})
    return {"nodeName": node_name(node), "status": node_status(node), "gpuTotal": total,
            "gpuUsed": used, "gpuFree": max(total - used, 0), "boundPools": [node_pool(node)],
            "cpu": capacity.get("cpu", UNKNOWN),
            # In the same form as the node detail's memoryTotal (1073217536Ki → 1048064Mi).
            "memory": format_bytes(capacity_of(node, "memory")) if "memory" in capacity
            else UNKNOWN,
            "gpuType": node_gpu_type(node) or UNKNOWN, "createdAt": _created(node)}


def list_nodes(cache: ClusterCache, *, pool: str | None = None, gpu_type: str | None = None,
               status: str | None = None) -> list[Obj]:
    """Nodes by name, narrowed by pool (``default``: nodes without one), GPU type, status;
    the caller summarises (:func:`node_summary`) only the page it shows."""
    nodes = sorted_nodes(cache)
    if pool is None and gpu_type is None and status is None:
        return nodes
    return [n for n in nodes
            if (pool is None or node_pool(n) == pool)
            and (gpu_type is None or node_gpu_type(n) == gpu_type)
            and (status is None or node_status(n) == status)]


def _running_jobs(cache: ClusterCache, name: str) -> list[dict]:
    """gpuctl pods on the node that have not finished, one entry per pod."""
    pods = sorted((p for p in cache.pods.by_index(NODE_INDEX, name) if is_gpuctl(p)),
                  key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    return [{"name": (p["metadata"].get("labels") or {}).get(labels.JOB_NAME, UNKNOWN),
             "namespace": p["metadata"]["namespace"],
             "kind": (p["metadata"].get("labels") or {}).get(labels.JOB_TYPE, UNKNOWN),
             "pod": p["metadata"]["name"], "status": pod_status(p), "gpu": pod_gpus(p)}
            for p in pods if not pod_is_finished(p)]


def node_detail(cache: ClusterCache, name: str) -> dict:
    node = get_node(cache, name)
    status = node.get("status", {})
    usage = node_usage(cache, name)
    capacity = status.get("capacity", {})
    total = gpu_total(node)
    return {
        "nodeName": name,
        "status": node_status(node),
        "resources": {
            "cpuTotal": _cores(capacity_of(node, "cpu")), "cpuUsed": _cores(usage.cpu),
            "memoryTotal": format_bytes(capacity_of(node, "memory")),
            "memoryUsed": format_bytes(usage.memory),
            "gpuTotal": total, "gpuUsed": usage.gpu, "gpuFree": max(total - usage.gpu, 0),
        },
        "capacity": dict(capacity),
        "allocatable": dict(status.get("allocatable", {})),
        "labels": [{"key": k, "value": v} for k, v in node_labels(node).items()],
        "boundPools": [node_pool(node)],
        "gpuType": node_gpu_type(node) or UNKNOWN,
        "runningJobs": _running_jobs(cache, name),
        "conditions": [{key: c.get(key) for key in
                        ("type", "status", "reason", "message", "lastTransitionTime")}
                       for c in status.get("conditions") or ()],
        "createdAt": _created(node),
        # The last condition change: Kubernetes keeps no "node last updated" time.
        "lastUpdatedAt": max((c.get("lastTransitionTime") or "" for c in
                              status.get("conditions") or ()), default="") or _created(node),
    }


def _gpu_slots(cache: ClusterCache, node: Obj) -> list[dict]:
    """One entry per GPU: the first ones taken by the bound pods in order, the rest free.
    Kubernetes does not say which device a pod got, so slot numbers are nominal."""
    holders = [f"{p['metadata'].get('namespace', '')}/{p['metadata']['name']}"
               for p in bound_pods(cache, node_name(node)) for _ in range(pod_gpus(p))]
    gpu_type = node_gpu_type(node) or UNKNOWN
    return [{"gpuId": f"gpu-{i}", "type": gpu_type,
             "status": "used" if i < len(holders) else "free",
             "pod": holders[i] if i < len(holders) else None,
             "utilization": None, "memoryUsage": None}
            for i in range(gpu_total(node))]


def gpu_detail(cache: ClusterCache) -> list[dict]:
    result = []
    for node in sorted_nodes(cache):
        slots = _gpu_slots(cache, node)
        used = sum(1 for s in slots if s["status"] == "used")
        result.append({"nodeName": node_name(node), "gpuCount": len(slots), "gpuUsed": used,
                       "gpuFree": len(slots) - used, "gpus": slots})
    return result
