"""Where a pod could go: the scheduler's node filters, evaluated on the caches.

For one pod (or a pod spec about to be submitted) and its pool, every node of the pool is
checked in kube-scheduler's filter order — cordoned (``spec.unschedulable``), not Ready, a
NoSchedule/NoExecute taint the pod does not tolerate, the node selector and required node
affinity — and what each matching node has free: allocatable minus the requests of the pods
bound to it and not finished, kept per node by :class:`NodeLedger` as the pod cache changes,
so judging a pool costs O(its nodes), not O(its pods). Nothing here calls the API server; the
explanation of a wait (``reasons``) and the submit-time check (``feasibility``) both read it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import ClusterCache, holds_node_resources
from gpuctl_async.k8s.informer import DELETED, Obj, object_key
from gpuctl_async.pools.accounting import (
    CPU,
    GPU,
    MEMORY,
    node_gpu_type,
    node_pool,
    node_ready,
)
from gpuctl_async.kuberules.quantity import QuantityError, format_bytes, format_cpu, parse_quantity

Amounts = dict[str, Decimal]
# Resources a gpuctl pod asks for, in the order messages name them.
RESOURCES = (GPU, CPU, MEMORY)
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


def pod_requests(pod: Obj) -> Amounts:
    """The pod's effective request of each resource the scheduler weighs here: per
    container its requests, defaulting to its limits (as the API server defaults them), summed;
    the largest init container's if larger (they run one at a time, first)."""
    spec = pod.get("spec", {})

    def each(containers: Iterable[Obj] | None) -> Iterable[Amounts]:
        for container in containers or ():
            resources = container.get("resources") or {}
            yield {**_amounts(resources.get("limits")), **_amounts(resources.get("requests"))}

    total: Amounts = {}
    for amounts in each(spec.get("containers")):
        for resource in RESOURCES:
            total[resource] = total.get(resource, Decimal(0)) + amounts.get(resource, Decimal(0))
    for amounts in each(spec.get("initContainers")):
        for resource in RESOURCES:
            total[resource] = max(total.get(resource, Decimal(0)),
                                  amounts.get(resource, Decimal(0)))
    return {r: a for r, a in total.items() if a}


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


class NodeLedger:
    """What the unfinished pods bound to each node request, and who holds its GPUs, updated
    from the pod cache's change notifications (subscribe before anything that reads it)."""

    def __init__(self, cache: ClusterCache):
        self._cache = cache
        self._pods: dict[tuple[str, str], tuple[str, Amounts, str | None]] = {}
        self._used: dict[str, Amounts] = {}
        self._gpu_holders: dict[str, Counter[str]] = {}
        self._allocatable: dict[str, tuple[str, Amounts]] = {}
        self._unsubscribe: list[Callable[[], None]] = []

    def start(self) -> None:
        self._unsubscribe = [self._cache.pods.subscribe(self._on_pod),
                             self._cache.nodes.subscribe(self._on_node)]
        for pod in self._cache.pods.peek_items():
            self._on_pod("ADDED", None, pod)

    def stop(self) -> None:
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
        amounts = _amounts({r: offered[r] for r in RESOURCES if r in offered})
        if version is not None:
            self._allocatable[name] = (version, amounts)
        return amounts

    def gpu_holders(self, node: str) -> Counter[str]:
        """``job:<ns>/<job>`` or ``pod:<ns>/<pod>`` → pods holding GPUs on ``node``."""
        return self._gpu_holders.get(node, Counter())

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        key = object_key(new or old or {})
        before = self._pods.pop(key, None)
        if before is not None:
            self._account(*before, sign=-1)
        if event != DELETED and new is not None and holds_node_resources(new):
            meta = new["metadata"]
            requests = pod_requests(new)
            holder = None
            if requests.get(GPU, 0) > 0:
                job = (meta.get("labels") or {}).get(labels.JOB_NAME)
                holder = f"job:{key[0]}/{job}" if job else f"pod:{key[0]}/{key[1]}"
            entry = (new["spec"]["nodeName"], requests, holder)
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
