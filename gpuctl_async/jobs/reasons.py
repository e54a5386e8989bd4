"""Why a job is not running: one machine-readable word, one plain sentence with the numbers.

Every explanation is derived from the caches (pods, nodes, quotas, events, PriorityClasses);
nothing here calls the API server. Reasons:

=====================  ===============================================================
``Terminating``        the pod (or job) is being deleted
``ImagePullBackOff``   the kubelet cannot pull the image (ErrImagePull and its back-off)
``CrashLoopBackOff``   the container keeps exiting; last exit code and restart count
``ContainerCreating``  bound to a node, the image is being pulled / container created
``NoMatchingNodes``    no node of the pool matches the pod (pool empty, GPU type absent)
``Unschedulable``      matching nodes exist but refuse it (taints, cordoned, not Ready),
                       or it asks more than any of them has at all, or the scheduler
                       reports a reason the caches cannot see (e.g. ``Too many pods``)
``WaitingForGPUs``     it fits the pool, but not enough GPUs of its type are free now
``WaitingForResources``  GPUs would do, but CPU or memory on those nodes is taken
``Scheduling``         it fits somewhere now: the scheduler has yet to place it
``QuotaExceeded``      the namespace's ResourceQuota refuses its pods for now
``FailedCreate``       its controller cannot create pods for another reason
``Creating``           its controller has not created its pods yet
=====================  ===============================================================

Other waiting states of a container (``CreateContainerConfigError``, ...) are shown with
their own reason and the kubelet's message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from gpuctl_async.k8s.cache import INVOLVED_INDEX, OWNER_INDEX, ClusterCache, event_time
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.jobs.placement import (
    PoolFit,
    amount_phrase,
    pool_fit,
    resource_noun,
    show_amount,
)
from gpuctl_async.jobs.queue import WaitingQueue, pod_pool
from gpuctl_async.jobs.quota_fit import QuotaBlock, quota_blocks
from gpuctl_async.kuberules.quota import quota_usage
from gpuctl_async.pools.ledger import GPU, RESOURCES, NodeLedger

PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                           "ErrImageNeverPull", "RegistryUnavailable"})
# Parts of a FailedScheduling message the node cache explains by itself.
_MODELLED = ("Insufficient ", "didn't match Pod's node affinity/selector", "untolerated taint",
             "were unschedulable", "not ready")
FINISHED = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Explanation:
    reason: str
    message: str
    blockers: dict[str, Any] = field(default_factory=dict, compare=False)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _main_container(pod_spec: Obj, name: str | None = None) -> Obj:
    containers = pod_spec.get("containers") or [{}]
    return next((c for c in containers if c.get("name") == name), containers[0])


# -- pods bound to a node --------------------------------------------------------------

def _container_blocker(pod: Obj, status: Obj) -> dict[str, Any]:
    last = (status.get("lastState") or {}).get("terminated") or {}
    waiting = (status.get("state") or {}).get("waiting") or {}
    return {"name": status.get("name"),
            "image": _main_container(pod.get("spec", {}), status.get("name")).get("image"),
            "state": waiting.get("reason"), "detail": waiting.get("message"),
            "restartCount": status.get("restartCount", 0),
            "lastExitCode": last.get("exitCode"), "lastTerminationReason": last.get("reason"),
            "lastFinishedAt": last.get("finishedAt")}


def _explain_bound(pod: Obj) -> Explanation | None:
    spec, status = pod.get("spec", {}), pod.get("status", {})
    node = spec.get("nodeName")
    for container in status.get("containerStatuses") or ():
        waiting = (container.get("state") or {}).get("waiting")
        if waiting is None:
            continue
        why = waiting.get("reason") or "Waiting"
        blocker = {"container": _container_blocker(pod, container)}
        name = container.get("name")
        if why in PULL_FAILURES:
            image = blocker["container"]["image"]
            return Explanation("ImagePullBackOff",
                               f'node {node} cannot pull image "{image}" for container {name}; '
                               f"the kubelet keeps retrying with a growing back-off",
                               blocker)
        if why == "CrashLoopBackOff":
            last = blocker["container"]
            code = last["lastExitCode"]
            ended = f"exit code {code}" if code is not None else "no exit code"
            if last["lastTerminationReason"]:
                ended += f", {last['lastTerminationReason']}"
            return Explanation("CrashLoopBackOff",
                               f"container {name} keeps exiting (last {ended}) and has "
                               f"restarted {_plural(last['restartCount'], 'time')}; the "
                               f"kubelet waits longer before each restart", blocker)
        if why == "ContainerCreating":
            return Explanation("ContainerCreating", f"starting on node {node}: pulling the "
                                                    f"image and creating the container",
                               blocker)
        return Explanation(why, waiting.get("message") or f"container {name} is waiting "
                                                           f"({why}) on node {node}", blocker)
    if status.get("phase", "Pending") == "Pending":
        return Explanation("ContainerCreating",
                           f"starting on node {node}: pulling the image and creating the "
                           f"container")
    return None


# -- pods waiting for a node -----------------------------------------------------------

def _scheduler_message(pod: Obj) -> str | None:
    for condition in pod.get("status", {}).get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return condition.get("message")
    return None


def unexplained_parts(message: str | None) -> list[str]:
    """Parts of the scheduler's ``0/N nodes are available: ...`` the caches do not explain."""
    if not message or ": " not in message:
        return []
    listed = message.split(": ", 1)[1].split(". preemption:", 1)[0].rstrip(".")
    parts = [p.strip() for p in listed.split(", ") if p.strip()]
    return [p for p in parts if not any(m in p for m in _MODELLED)]


def _pool_blocker(fit: PoolFit) -> dict[str, Any]:
    usable = fit.usable
    return {
        "name": fit.pool, "gpuType": fit.gpu_type, "nodes": len(fit.nodes),
        "matchingNodes": len(fit.matching), "usableNodes": len(usable),
        "gpus": fit.gpus,
        "gpusFree": fit.gpus_free, "largestGpusFreeOnNode": int(fit.largest(GPU, free=True)),
        "jobsUsingGpus": fit.gpu_jobs, "otherPodsUsingGpus": fit.gpu_others,
        "requested": {r: show_amount(r, fit.requests[r]) for r in RESOURCES
                      if fit.requests.get(r)},
    }


def _node_blockers(fit: PoolFit) -> list[dict[str, Any]]:
    matching = {n.name for n in fit.matching}
    blockers = []
    for node in fit.nodes:
        if node.name not in matching:
            blockers.append({"node": node.name, "problem": "node selector",
                             "detail": f"GPU type {node.gpu_type or 'none'}"})
        elif node.problem is not None:
            blockers.append({"node": node.name, "problem": node.problem[0],
                             "detail": node.problem[1]})
        else:
            short = node.short_of(fit.requests)
            if short:
                free = {r: max(Decimal(0), node.free.get(r, Decimal(0))) for r in short}
                blockers.append({"node": node.name, "problem": "insufficient",
                                 "detail": ", ".join(f"{resource_noun(r)}: "
                                                     f"{show_amount(r, free[r])} free"
                                                     for r in short)})
    return blockers


def _gpu_usage_phrase(fit: PoolFit) -> str:
    total, free = fit.gpus, fit.gpus_free
    holders = _plural(fit.gpu_jobs, "job")
    if fit.gpu_others:
        holders += f" and {_plural(fit.gpu_others, 'other pod')}"
    if free == 0:
        return f"{fit.pool_phrase()} has {total}, all {total} in use by {holders}"
    return (f"{fit.pool_phrase()} has {total}, {total - free} in use by {holders}, at "
            f"most {int(fit.largest(GPU, free=True))} free on one node")


def explain_placement(fit: PoolFit, scheduler_said: str | None = None) -> Explanation:
    """Why a pod with these requests is not (yet) on a node of its pool."""
    blockers: dict[str, Any] = {"pool": _pool_blocker(fit), "nodes": _node_blockers(fit)}
    if scheduler_said:
        blockers["scheduler"] = scheduler_said
    pool = fit.pool_phrase()
    if not fit.nodes:
        return Explanation("NoMatchingNodes", f"{pool} has no nodes", blockers)
    if not fit.matching:
        if fit.gpu_type:
            types = sorted({n.gpu_type for n in fit.nodes if n.gpu_type})
            has = f"its nodes have {', '.join(types)}" if types else "its nodes have no GPU type"
            return Explanation("NoMatchingNodes", f"needs {fit.gpu_type} GPUs; no node of "
                                                  f"{pool} has that type ({has})", blockers)
        return Explanation("NoMatchingNodes", f"no node of {pool} matches the pod's node "
                                              f"selector", blockers)
    kind = f"{fit.gpu_type} " if fit.gpu_type else ""
    if not fit.usable:
        problems = "; ".join(f"{n.name} {n.problem[1]}" for n in fit.matching if n.problem)
        return Explanation("Unschedulable",
                           f"all {_plural(len(fit.matching), kind + 'node')} of {pool} refuse "
                           f"new pods: {problems}", blockers)
    for resource in RESOURCES:
        wanted = fit.requests.get(resource, Decimal(0))
        largest = fit.largest(resource)
        if wanted > 0 and all(wanted > n.allocatable.get(resource, Decimal(0))
                              for n in fit.usable):
            what = amount_phrase(resource, wanted, fit.gpu_type)
            return Explanation("Unschedulable",
                               f"needs {what} in one pod; the largest {kind}node of {pool} "
                               f"has {show_amount(resource, largest)}", blockers)
    unexplained = unexplained_parts(scheduler_said)
    if fit.fits_now():
        if unexplained:
            return Explanation("Unschedulable", f"the scheduler reports: "
                                                f"{', '.join(unexplained)}", blockers)
        return Explanation("Scheduling", f"fits on {_plural(len(fit.fits_now()), 'node')} of "
                                         f"{pool} now; waiting for the scheduler to place it",
                           blockers)
    gpus = fit.requests.get(GPU, Decimal(0))
    if gpus > 0 and all(gpus > n.free.get(GPU, Decimal(0)) for n in fit.usable):
        return Explanation("WaitingForGPUs",
                           f"needs {fit.gpu_phrase(gpus)}; {_gpu_usage_phrase(fit)}", blockers)
    short = [r for r in RESOURCES if r != GPU and fit.requests.get(r, 0) > 0
             and fit.requests[r] > fit.largest(r, free=True)]
    parts = [f"{amount_phrase(r, fit.requests[r])} (at most "
             f"{show_amount(r, fit.largest(r, free=True))} free on one node)"
             for r in short] or ["its GPUs, CPU and memory together on one node"]
    return Explanation("WaitingForResources",
                       f"needs {' and '.join(parts)} on a {kind}node of {pool}; they are "
                       f"in use by other pods", blockers)


# -- controllers without pods ----------------------------------------------------------

def _quota_message(block: QuotaBlock, namespace: str) -> str:
    return (f"needs {amount_phrase(block.resource, block.requested)} per pod; quota "
            f"{block.quota} of namespace {namespace} allows {block.show(block.hard)}, "
            f"{block.show(block.used)} in use")


def _latest_create_event(cache: ClusterCache, objects: Iterable[Obj]) -> Obj | None:
    events = []
    for obj in objects:
        uid = obj.get("metadata", {}).get("uid")
        if uid:
            events.extend(e for e in cache.events.peek_index(INVOLVED_INDEX, uid)
                          if e.get("reason") in ("FailedCreate", "SuccessfulCreate"))
    # Newest first; within one second (event times are to the second) a failure wins.
    return max(events, key=lambda e: (event_time(e) is not None, event_time(e) or 0,
                                      e.get("reason") == "FailedCreate"), default=None)


def _explain_controller(cache: ClusterCache, controller: Obj, status: str,
                        related: Iterable[Obj]) -> Explanation | None:
    meta = controller.get("metadata", {})
    if status in FINISHED:
        return None
    if meta.get("deletionTimestamp"):
        return Explanation("Terminating", "being deleted")
    namespace = meta.get("namespace", "")
    template_spec = controller.get("spec", {}).get("template", {}).get("spec", {})
    blocks = quota_blocks(cache, namespace, quota_usage(template_spec))
    event = _latest_create_event(cache, [controller, *related])
    refused = event is not None and event.get("reason") == "FailedCreate"
    blockers: dict[str, Any] = {"quota": [b.as_dict() for b in blocks]}
    if refused and event.get("message"):
        blockers["event"] = event["message"]
    if blocks:
        return Explanation("QuotaExceeded", _quota_message(blocks[0], namespace), blockers)
    if refused:
        message = event.get("message") or "its controller cannot create pods"
        if "exceeded quota" in message:
            return Explanation("QuotaExceeded", message, blockers)
        return Explanation("FailedCreate", message, blockers)
    return Explanation("Creating", f"waiting for the {controller.get('kind', 'controller')} "
                                   f"controller to create its pods", blockers)


class Explainer:
    """Explanations from the caches, with what they keep up to date: per-node usage
    (:class:`NodeLedger`, which the node and pool views read too) and the pools' waiting
    queues (:class:`WaitingQueue`). One per app;
    ``start()`` it before anything else subscribes to the pod cache, so both are current
    when another subscriber asks about the same change."""

    def __init__(self, cache: ClusterCache):
        self.cache = cache
        self.ledger = NodeLedger(cache)
        self.queue = WaitingQueue(cache)

    def start(self) -> None:
        self.ledger.start()
        self.queue.start()

    def require_synced(self) -> None:
        """Explanations read whatever the caches hold (the job list re-explains rows as they
        fill); an answer to a request first needs every cache they read to have synced, or
        it is a 503 saying which has not (a pool with no nodes yet is not a refusal)."""
        for informer in (self.cache.pods, self.cache.nodes, self.cache.quotas,
                         self.cache.events, self.cache.priority_classes,
                         self.cache.replica_sets):
            informer.require_synced()

    def stop(self) -> None:
        self.queue.stop()
        self.ledger.stop()

    def fit(self, pod_spec: Obj, pool: str) -> PoolFit:
        return pool_fit(self.cache, self.ledger, pod_spec, pool)

    def pod(self, pod: Obj) -> Explanation | None:
        """Why ``pod`` is not running; None when it runs or has finished."""
        meta, status = pod.get("metadata", {}), pod.get("status", {})
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            within = f" (grace period {grace}s)" if grace else ""
            return Explanation("Terminating", f"being deleted; waiting for its containers to "
                                              f"stop{within}")
        if status.get("phase") in FINISHED:
            return None
        if pod.get("spec", {}).get("nodeName"):
            return _explain_bound(pod)
        return explain_placement(self.fit(pod.get("spec", {}), pod_pool(pod)),
                                 _scheduler_message(pod))

    def waiting_pods(self, pods: list[Obj]) -> list[Explanation | None]:
        """``pod(p)`` for each of many pods, judging the pool once per distinct shape (the
        replicas of one job ask the same of the same nodes)."""
        memo: dict[bytes, Explanation | None] = {}
        explained = []
        for pod in pods:
            spec = pod.get("spec", {})
            if pod.get("metadata", {}).get("deletionTimestamp") or spec.get("nodeName"):
                explained.append(self.pod(pod))
                continue
            shape = orjson.dumps([pod_pool(pod), spec.get("nodeSelector"), spec.get("affinity"),
                                  spec.get("tolerations"), spec.get("containers"),
                                  spec.get("initContainers"), _scheduler_message(pod),
                                  pod.get("status", {}).get("phase")],
                                 option=orjson.OPT_SORT_KEYS)
            if shape not in memo:
                memo[shape] = self.pod(pod)
            explained.append(memo[shape])
        return explained

    def controller(self, controller: Obj, status: str, *,
                   replicas_missing: bool = False) -> Explanation | None:
        """Why a job whose controller has no pods (or, ``replicas_missing``, fewer than it
        wants) is not running (``status`` as shown); its ReplicaSets' events count too (a
        Deployment's pods are theirs to create)."""
        if status == "Running" and not replicas_missing:
            return None
        related = []
        if controller.get("kind") == "Deployment":
            related = self.cache.replica_sets.peek_index(
                OWNER_INDEX, controller.get("metadata", {}).get("uid", ""))
        return _explain_controller(self.cache, controller, status, related)
