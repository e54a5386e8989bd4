"""Where a pod could go: the scheduler's node filters, evaluated on the caches.

For one pod (or a pod spec about to be submitted) and its pool, every node of the pool is
checked in kube-scheduler's filter order — cordoned (``spec.unschedulable``), not Ready, a
NoSchedule/NoExecute taint the pod does not tolerate, the node selector and required node
affinity — and what each matching node has free: allocatable minus the requests of the pods
bound to it and not finished, kept per node by ``pools.ledger.NodeLedger`` as pods change,
so judging a pool costs O(its nodes), not O(its pods). Nothing here calls the API server; the
explanation of a wait (``reasons``) and the submit-time check (``feasibility``) both read it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.kuberules.quantity import format_bytes, format_cpu
from gpuctl_async.kuberules.scheduling import (
    NOT_READY_TAINT,
    UNSCHEDULABLE_TAINT,
    node_ready,
    selects_node,
    tolerates,
    untolerated_taint,
)
from gpuctl_async.pools.accounting import node_gpu_type, node_pool
from gpuctl_async.pools.ledger import (
    CPU,
    GPU,
    MEMORY,
    RESOURCES,
    Amounts,
    NodeLedger,
    pod_requests,
)

CORDONED, NOT_READY, TAINTED = "cordoned", "not-ready", "tainted"


def show_amount(resource: str, amount: Decimal) -> str:
    """``4``, ``1.5``, ``256Gi``: how a message shows an amount of ``resource``."""
    if resource == MEMORY:
        return format_bytes(amount)
    if resource == CPU:
        return format_cpu(amount)
    return f"{amount.normalize():f}"


def resource_noun(resource: str) -> str:
    return {GPU: "GPUs", CPU: "CPU", MEMORY: "memory"}.get(resource, resource)


def amount_phrase(resource: str, amount: Decimal, gpu_type: str | None = None) -> str:
    """``1 GPU``, ``4 × a100 GPUs``, ``2 CPU``, ``4Gi memory``, ``1 pod``."""
    shown = show_amount(resource, amount)
    if resource in (GPU, "pods"):
        noun = ("GPU" if resource == GPU else "pod") + ("" if amount == 1 else "s")
        return f"{shown} × {gpu_type} {noun}" if gpu_type and resource == GPU else \
            f"{shown} {noun}"
    return f"{shown} {resource_noun(resource)}"


def show_taint(taint: Obj) -> str:
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint.get('key')}{value}:{taint.get('effect')}"


def blocking_problem(pod_spec: Obj, node: Obj) -> tuple[str, str] | None:
    """Why the node refuses the pod whatever its resources: (kind, detail), or None."""
    tolerations = pod_spec.get("tolerations") or []
    spec = node.get("spec") or {}
    if spec.get("unschedulable") and not tolerates(tolerations, UNSCHEDULABLE_TAINT):
        return CORDONED, "cordoned (unschedulable)"
    if not node_ready(node) and not tolerates(tolerations, NOT_READY_TAINT):
        return NOT_READY, "not Ready"
    taint = untolerated_taint(tolerations, spec.get("taints") or ())
    if taint is not None:
        return TAINTED, f"taint {show_taint(taint)}"
    return None


@dataclass
class NodeFit:
    name: str
    gpu_type: str | None
    problem: tuple[str, str] | None
    """(kind, detail) when the node cannot take the pod whatever it has free."""
    allocatable: Amounts
    free: Amounts

    def short_of(self, requests: Amounts) -> list[str]:
        """Resources the node has too little of free right now."""
        return [r for r in RESOURCES if requests.get(r, 0) > self.free.get(r, Decimal(0))]


@dataclass
class PoolFit:
    """The pool's nodes as one pod sees them."""

    pool: str
    gpu_type: str | None
    requests: Amounts
    nodes: list[NodeFit]
    """Every node of the pool."""
    matching: list[NodeFit] = field(default_factory=list)
    """Nodes the pod's selector accepts (the right GPU type)."""
    gpu_jobs: int = 0
    """gpuctl jobs holding GPUs on the usable nodes."""
    gpu_others: int = 0
    """Other pods holding GPUs there."""

    @property
    def usable(self) -> list[NodeFit]:
        return [n for n in self.matching if n.problem is None]

    @property
    def gpus(self) -> int:
        """GPUs of the nodes that take the pod."""
        return int(sum(n.allocatable.get(GPU, 0) for n in self.usable))

    @property
    def gpus_free(self) -> int:
        return int(sum(max(Decimal(0), n.free.get(GPU, Decimal(0))) for n in self.usable))

    def largest(self, resource: str, *, free: bool = False) -> Decimal:
        nodes = self.usable if free else self.matching
        return max((max(Decimal(0), (n.free if free else n.allocatable).get(resource, Decimal(0)))
                    for n in nodes), default=Decimal(0))

    def fits_now(self) -> list[NodeFit]:
        return [n for n in self.usable if not n.short_of(self.requests)]

    def pool_phrase(self) -> str:
        return "the default pool" if self.pool == labels.DEFAULT_POOL else self.pool

    def gpu_phrase(self, count: Decimal | int) -> str:
        return amount_phrase(GPU, Decimal(count), self.gpu_type)


def pool_nodes(cache: ClusterCache, pool: str) -> list[Obj]:
    if pool == labels.DEFAULT_POOL:
        return [n for n in cache.nodes.peek_items() if node_pool(n) == labels.DEFAULT_POOL]
    return list(cache.nodes.peek_index("pool", pool))


def _node_fit(ledger: NodeLedger, node: Obj, pod_spec: Obj) -> NodeFit:
    name = node["metadata"]["name"]
    allocatable = ledger.allocatable(node)
    used = ledger.used(name)
    free = {r: allocatable.get(r, Decimal(0)) - used.get(r, Decimal(0)) for r in RESOURCES}
    return NodeFit(name, node_gpu_type(node), blocking_problem(pod_spec, node), allocatable,
                   free)


def pool_fit(cache: ClusterCache, ledger: NodeLedger, pod_spec: Obj, pool: str, *,
             requests: Amounts | None = None) -> PoolFit:
    """The pool's nodes for an unbound pod with ``pod_spec`` (its requests unless given)."""
    if requests is None:
        requests = pod_requests({"spec": pod_spec})
    gpu_type = (pod_spec.get("nodeSelector") or {}).get(labels.GPU_TYPE)
    holders: Counter[str] = Counter()
    fits: list[NodeFit] = []
    matching: list[NodeFit] = []
    for node in sorted(pool_nodes(cache, pool), key=lambda n: n["metadata"]["name"]):
        fit = _node_fit(ledger, node, pod_spec)
        fits.append(fit)
        if selects_node(pod_spec, node):
            matching.append(fit)
            if fit.problem is None:
                holders.update(ledger.gpu_holders(fit.name))
    jobs = sum(1 for holder in holders if holder.startswith("job:"))
    return PoolFit(pool, gpu_type, requests, fits, matching, jobs, len(holders) - jobs)
