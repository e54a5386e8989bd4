"""Can a submitted job ever run? Checked before anything is created, from the caches.

A job that can never run, as the cluster looks now, is refused — each finding names the
document field to change:

- ``resources.pool``: the (named) pool has no nodes — the default pool, every node without
  a pool label, having none is only a warning, as before;
- ``resources.gpuType``: no node of the pool has the requested GPU type;
- ``resources.gpu`` / ``resources.cpu`` / ``resources.memory``: one pod asks for more than
  the largest matching node of the pool can offer at all (its allocatable);
- the same fields (``job.namespace`` for a pod count): a ResourceQuota of the namespace
  whose ``hard`` limit is below one pod's request.

A job that can run later is accepted with ``warnings``: GPUs (or CPU, memory) of its type
all taken now, every matching node tainted, cordoned or not Ready, the quota used up for now,
or a quota too small for all of a service's replicas. With ``refuse_infeasible_jobs`` off
(clusters whose nodes come and go) refusals become warnings too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from gpuctl_async.jobs.placement import (
    CPU,
    GPU,
    MEMORY,
    RESOURCES,
    PoolFit,
    amount_phrase,
    show_amount,
)
from gpuctl_async.jobs.quota_fit import QuotaBlock, quota_blocks
from gpuctl_async.kuberules.quota import quota_usage
from gpuctl_async.jobs.reasons import Explainer, explain_placement
from gpuctl_async.k8s import labels
from gpuctl_async.k8s.informer import Obj

FIELDS = {GPU: "resources.gpu", CPU: "resources.cpu", MEMORY: "resources.memory",
          "pods": "job.namespace"}
# What a wait looks like at submit time: the explanation of a pod that would wait.
_WAITS = ("WaitingForGPUs", "WaitingForResources", "Unschedulable")


@dataclass(frozen=True)
class Finding:
    field: str
    message: str


@dataclass
class Feasibility:
    refusals: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def details(self) -> dict[str, list[str]]:
        details: dict[str, list[str]] = {}
        for finding in self.refusals:
            details.setdefault(finding.field, []).append(finding.message)
        return details


def _node_findings(fit: PoolFit, pool: str) -> list[Finding]:
    if not fit.nodes:
        return [Finding("resources.pool", f"resource pool '{pool}' has no nodes")]
    if not fit.matching:
        types = sorted({n.gpu_type for n in fit.nodes if n.gpu_type})
        has = f"its nodes have {', '.join(types)}" if types else "its nodes have no GPU type"
        return [Finding("resources.gpuType", f"no node of pool '{pool}' has GPU type "
                                             f"'{fit.gpu_type}' ({has})")]
    findings = []
    kind = f"{fit.gpu_type} " if fit.gpu_type else ""
    for resource in RESOURCES:
        wanted = fit.requests.get(resource, Decimal(0))
        largest = fit.largest(resource)
        if wanted > largest:
            findings.append(Finding(
                FIELDS[resource],
                f"one pod asks for {amount_phrase(resource, wanted, fit.gpu_type)}; "
                f"the largest {kind}node of pool '{pool}' can offer "
                f"{show_amount(resource, largest)}"))
    return findings


def _quota_field(block: QuotaBlock) -> str:
    return FIELDS.get(block.resource, "resources")


def _quota_refusal(block: QuotaBlock, namespace: str) -> Finding:
    return Finding(_quota_field(block),
                   f"quota '{block.quota}' of namespace '{namespace}' allows "
                   f"{block.key}={block.show(block.hard)}; one pod asks for "
                   f"{block.show(block.requested)}")


def _quota_wait(block: QuotaBlock, namespace: str) -> str:
    return (f"quota '{block.quota}' of namespace '{namespace}' has {block.show(block.used)} of "
            f"{block.show(block.hard)} {block.key} in use and one pod needs "
            f"{block.show(block.requested)}: its pods wait until that much is free")


def assess(explainer: Explainer, controller: Obj, pool: str) -> Feasibility:
    """What the caches say about running ``controller``'s pods in ``pool`` (503 while one
    they read has not synced: no nodes yet is not a reason to refuse)."""
    explainer.require_synced()
    namespace = controller["metadata"].get("namespace", "")
    pod_spec = controller.get("spec", {}).get("template", {}).get("spec", {})
    replicas = int(controller.get("spec", {}).get("replicas") or 1)
    result = Feasibility()
    fit = explainer.fit(pod_spec, pool)
    if not fit.nodes and pool == labels.DEFAULT_POOL:
        result.warnings.append("the default pool (nodes without a pool label) has no nodes: "
                               "the job will wait for one (NoMatchingNodes)")
    else:
        result.refusals.extend(_node_findings(fit, pool))
    if fit.nodes and not result.refusals:
        why = explain_placement(fit)
        if why.reason in _WAITS:
            result.warnings.append(f"{why.message}: the job will wait ({why.reason})")
    usage = quota_usage(pod_spec)
    for block in quota_blocks(explainer.cache, namespace, usage):
        if block.never:
            result.refusals.append(_quota_refusal(block, namespace))
        else:
            result.warnings.append(_quota_wait(block, namespace))
    if replicas > 1:
        for block in quota_blocks(explainer.cache, namespace, usage, pods=replicas):
            per_pod = usage[block.key]
            if per_pod <= block.hard < block.requested:
                fitting = int(block.hard // per_pod)
                result.warnings.append(
                    f"quota '{block.quota}' of namespace '{namespace}' allows "
                    f"{block.key}={block.show(block.hard)}: at most {fitting} of the "
                    f"{replicas} replicas can run")
    return result
