"""Where a pod could go: the scheduler's node filters, evaluated on the caches.

For one pod (or a pod spec about to be submitted) and its pool, every node of the pool is
checked in kube-scheduler's filter order — cordoned (``spec.unschedulable``), not Ready, a
NoSchedule/NoExecute taint the pod does not tolerate, the node selector and required node
affinity — and what each matching node has free: allocatable minus the requests of the pods
bound to it and not finished. Nothing here calls the API server; the explanation of a wait
(``reasons``) and the submit-time check (``feasibility``) both read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import NODE_INDEX, ClusterCache, holds_node_resources
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.pools.accounting import (
    CPU,
    GPU,
    MEMORY,
    node_gpu_type,
    node_pool,
    node_ready,
    pod_requests,
)
from gpuctl_async.quantity import QuantityError, format_bytes, format_cpu, parse_quantity

Amounts = dict[str, Decimal]
# Resources a gpuctl pod asks for, in the order messages name them.
RESOURCES = (GPU, CPU, MEMORY)
CORDONED, NOT_READY, TAINTED, NOT_SELECTED = "cordoned", "not-ready", "tainted", "not-selected"


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


def _number(value: str) -> Decimal | None:
    try:
        return Decimal(value)
    except (InvalidOperation, ValueError):
        return None


def _expression_matches(expression: Obj, value: str | None) -> bool:
    operator, values = expression.get("operator"), expression.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and len(values) == 1:
        have, bound = _number(value), _number(values[0])
        if have is None or bound is None:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def selects_node(pod_spec: Obj, node: Obj) -> bool:
    """The pod's nodeSelector and required node affinity accept ``node``."""
    node_labels = node.get("metadata", {}).get("labels") or {}
    if any(node_labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if not required:
        return True
    for term in required.get("nodeSelectorTerms") or ():
        expressions = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not expressions and not fields:
            continue  # an empty term matches nothing
        name = node.get("metadata", {}).get("name")
        if all(_expression_matches(e, node_labels.get(e.get("key"))) for e in expressions) and \
                all(_expression_matches(f, name if f.get("key") == "metadata.name" else None)
                    for f in fields):
            return True
    return False


def _tolerates(tolerations: Iterable[Obj], taint: Obj) -> bool:
    for toleration in tolerations:
        effect = toleration.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key")
        if toleration.get("operator") == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and (toleration.get("value") or "") == (
                taint.get("value") or ""):
            return True
    return False


def show_taint(taint: Obj) -> str:
    value = f"={taint['value']}" if taint.get("value") else ""
    return f"{taint.get('key')}{value}:{taint.get('effect')}"


def blocking_problem(pod_spec: Obj, node: Obj) -> tuple[str, str] | None:
    """Why the node refuses the pod whatever its resources: (kind, detail), or None."""
    tolerations = pod_spec.get("tolerations") or []
    spec = node.get("spec") or {}
    if spec.get("unschedulable") and not _tolerates(
            tolerations, {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}):
        return CORDONED, "cordoned (unschedulable)"
    if not node_ready(node) and not _tolerates(
            tolerations, {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}):
        return NOT_READY, "not Ready"
    for taint in spec.get("taints") or ():
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
                tolerations, taint):
            return TAINTED, f"taint {show_taint(taint)}"
    return None


def _amounts(values: Obj | None) -> Amounts:
    amounts: Amounts = {}
    for name, value in (values or {}).items():
        try:
            amounts[name] = parse_quantity(value)
        except QuantityError:
            continue
    return amounts


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

    def never_fits(self, requests: Amounts) -> list[str]:
        """Resources the pod asks more of than the node has at all."""
        return [r for r in RESOURCES if requests.get(r, 0) > self.allocatable.get(r, Decimal(0))]


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
    """gpuctl jobs holding GPUs on the matching nodes."""
    gpu_others: int = 0
    """Other pods holding GPUs there."""

    @property
    def usable(self) -> list[NodeFit]:
        return [n for n in self.matching if n.problem is None]

    @property
    def gpus(self) -> int:
        return int(sum(n.allocatable.get(GPU, 0) for n in self.matching))

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
        return [n for n in cache.nodes.items() if node_pool(n) == labels.DEFAULT_POOL]
    return list(cache.nodes.by_index("pool", pool))


def _node_fit(cache: ClusterCache, node: Obj, pod_spec: Obj, skip: tuple[str, str] | None,
              gpu_holders: dict[str, set]) -> NodeFit:
    name = node["metadata"]["name"]
    allocatable = _amounts(node.get("status", {}).get("allocatable")
                           or node.get("status", {}).get("capacity"))
    free = dict(allocatable)
    for pod in cache.pods.by_index(NODE_INDEX, name):
        meta = pod["metadata"]
        if not holds_node_resources(pod) or (meta.get("namespace", ""), meta["name"]) == skip:
            continue
        requests = pod_requests(pod)
        for resource in RESOURCES:
            free[resource] = free.get(resource, Decimal(0)) - requests.get(resource, Decimal(0))
        if requests.get(GPU, 0) > 0:
            job = (meta.get("labels") or {}).get(labels.JOB_NAME)
            if job:
                gpu_holders["jobs"].add(f"{meta.get('namespace', '')}/{job}")
            else:
                gpu_holders["others"].add(f"{meta.get('namespace', '')}/{meta['name']}")
    return NodeFit(name, node_gpu_type(node), blocking_problem(pod_spec, node), allocatable,
                   free)


def pool_fit(cache: ClusterCache, pod_spec: Obj, pool: str, *,
             requests: Amounts | None = None, skip: tuple[str, str] | None = None) -> PoolFit:
    """The pool's nodes for a pod with ``pod_spec`` (its requests unless given); ``skip``:
    the pod itself, when it is bound and its own requests must not count against it."""
    if requests is None:
        requests = pod_requests({"spec": pod_spec})
    gpu_type = (pod_spec.get("nodeSelector") or {}).get(labels.GPU_TYPE)
    holders: dict[str, set] = {"jobs": set(), "others": set()}
    fits: list[NodeFit] = []
    matching: list[NodeFit] = []
    for node in sorted(pool_nodes(cache, pool), key=lambda n: n["metadata"]["name"]):
        selected = selects_node(pod_spec, node)
        fit = _node_fit(cache, node, pod_spec, skip, holders if selected else
                        {"jobs": set(), "others": set()})
        fits.append(fit)
        if selected:
            matching.append(fit)
    return PoolFit(pool, gpu_type, requests, fits, matching, len(holders["jobs"]),
                   len(holders["others"]))
