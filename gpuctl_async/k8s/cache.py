"""The process-wide set of watch-fed caches every read is served from.

One :class:`Informer` per resource type. Workload types are narrowed to gpuctl's objects with
the ``runwhere.ai/job-type`` label selector, so memory grows with gpuctl's jobs rather than the
cluster's. Pods are the exception: node and pool GPU accounting must count every pod holding a
node's resources, gpuctl's or not, so the one pod cache watches all pods; gpuctl's are kept
with the fields their readers use, any other pod only with its node, phase and requests while
it holds them (``k8s.slim``, which also trims every other cached type on arrival). Events cannot be label-selected, so every namespace's events are watched and only
those about the kinds a job is made of are kept, for ``event_retention`` seconds (Kubernetes
itself keeps events one hour by default): all namespaces, because a job's events must be there
the moment a job is created in a namespace gpuctl has never seen before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Hashable, Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

from gpuctl_async.k8s import labels, resources
from gpuctl_async.k8s.client import KubeClient
from gpuctl_async.k8s.informer import Informer, Obj, label_indexer, owner_uid_indexer
from gpuctl_async.k8s.podpages import split_page, take_pod
from gpuctl_async.k8s.slim import drop_server_fields, slim_gpuctl_pod, slim_other_pod
from gpuctl_async.k8s.timestamps import parse_time

GPUCTL_SELECTOR = labels.JOB_TYPE  # "has the label": every object gpuctl made
JOB_INDEX = "job"
OWNER_INDEX = "owner"
NODE_INDEX = "node"
INVOLVED_INDEX = "involved"
NAME_INDEX = "name"
EVENT_KINDS = frozenset({"Pod", "Job", "Deployment", "ReplicaSet", "StatefulSet", "Service"})


def job_key_indexer(obj: Obj) -> Iterable[str]:
    """``<namespace>/<job name>`` for objects labelled with a gpuctl job name."""
    meta = obj.get("metadata", {})
    name = meta.get("labels", {}).get(labels.JOB_NAME)
    return (f"{meta.get('namespace', '')}/{name}",) if name else ()


def name_indexer(obj: Obj) -> Iterable[str]:
    """Objects by name alone, to find a job whose namespace the caller did not give."""
    return (obj.get("metadata", {}).get("name", ""),)


def is_gpuctl(obj: Obj) -> bool:
    """Made by gpuctl (carries the job-type label)."""
    return labels.JOB_TYPE in (obj.get("metadata", {}).get("labels") or {})


def gpuctl_name_indexer(obj: Obj) -> Iterable[str]:
    return name_indexer(obj) if is_gpuctl(obj) else ()


def keep_pod(pod: Obj) -> bool:
    return is_gpuctl(pod) or holds_node_resources(pod)


def shape_pod(pod: Obj) -> Obj:
    """gpuctl's pods as their readers need them, any other as accounting needs it."""
    return slim_gpuctl_pod(pod) if is_gpuctl(pod) else slim_other_pod(pod)


def take_listed_pod(item: Any) -> Obj | None:
    """A listed pod as the cache keeps it (``k8s.podpages``: other pods never built whole)."""
    return take_pod(item, keep_pod, shape_pod)


def node_indexer(obj: Obj) -> Iterable[str]:
    node = obj.get("spec", {}).get("nodeName")
    return (node,) if node else ()


def holds_node_resources(pod: Obj) -> bool:
    """Bound to a node and not finished: its requests count against that node."""
    return (bool(pod.get("spec", {}).get("nodeName"))
            and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"))


def involved_uid_indexer(obj: Obj) -> Iterable[str]:
    uid = obj.get("involvedObject", {}).get("uid")
    return (uid,) if uid else ()


def event_last_seen(event: Obj) -> str | None:
    """When the event last happened. Events of the events.k8s.io/v1 recorders (the
    scheduler's) carry ``series.lastObservedTime`` and ``eventTime`` instead of the core/v1
    ``lastTimestamp``/``firstTimestamp`` (null there)."""
    return ((event.get("series") or {}).get("lastObservedTime") or event.get("lastTimestamp")
            or event.get("eventTime") or event.get("firstTimestamp")
            or event.get("metadata", {}).get("creationTimestamp"))


def event_count(event: Obj) -> int:
    """How often it happened: ``series.count`` (events.k8s.io/v1 style) or ``count``."""
    return int((event.get("series") or {}).get("count") or event.get("count") or 1)


def event_time(event: Obj) -> datetime | None:
    return parse_time(event_last_seen(event))


class ClusterCache:
    """All informers, started together, stopped together, ready when all have synced."""

    def __init__(self, kube: KubeClient, *, event_retention: float = 3600.0,
                 inactivity_timeout: float = 120.0, watch_timeout: int = 90,
                 outage_grace: float = 60.0, backoff_max: float = 30.0):
        self.event_retention = event_retention

        def informer(resource, **kwargs) -> Informer:
            kwargs.setdefault("transform", drop_server_fields)
            return Informer(kube, resource, inactivity_timeout=inactivity_timeout,
                            watch_timeout=watch_timeout, outage_grace=outage_grace,
                            backoff_max=backoff_max, **kwargs)

        workload = {"label_selector": GPUCTL_SELECTOR}
        controller_indexes = {JOB_INDEX: job_key_indexer, NAME_INDEX: name_indexer}
        self.pods = informer(resources.PODS, keep=keep_pod, transform=shape_pod,
                             split_page=split_page, take_item=take_listed_pod, indexers={
            JOB_INDEX: job_key_indexer, OWNER_INDEX: owner_uid_indexer, NODE_INDEX: node_indexer,
            NAME_INDEX: gpuctl_name_indexer})
        self.jobs = informer(resources.JOBS, **workload, indexers=controller_indexes)
        self.deployments = informer(resources.DEPLOYMENTS, **workload, indexers=controller_indexes)
        self.replica_sets = informer(resources.REPLICA_SETS, **workload,
                                     indexers={OWNER_INDEX: owner_uid_indexer})
        self.stateful_sets = informer(resources.STATEFUL_SETS, **workload,
                                      indexers=controller_indexes)
        self.services = informer(resources.SERVICES, **workload,
                                 indexers={JOB_INDEX: job_key_indexer})
        self.events = informer(resources.EVENTS, keep=self._keep_event,
                               indexers={INVOLVED_INDEX: involved_uid_indexer})
        self.nodes = informer(resources.NODES,
                              indexers={"pool": label_indexer(labels.POOL)})
        self.namespaces = informer(resources.NAMESPACES)
        self.quotas = informer(resources.RESOURCE_QUOTAS)
        self.priority_classes = informer(resources.PRIORITY_CLASSES)
        self.all = (self.pods, self.jobs, self.deployments, self.replica_sets,
                    self.stateful_sets, self.services, self.events, self.nodes, self.namespaces,
                    self.quotas, self.priority_classes)
        self._pruner: asyncio.Task[None] | None = None
        self.memos: dict[Hashable, dict[Hashable, tuple[tuple, Any]]] = {}
        """Answers computed from these caches, by kind of answer (``k8s.memo``): kept with
        the caches they come from, and gone with them."""

    def controllers(self) -> tuple[Informer, Informer, Informer]:
        return self.jobs, self.deployments, self.stateful_sets

    def controller_informer(self, kind: str) -> Informer:
        """The cache of a job controller kind: Job, Deployment or StatefulSet."""
        return {"Job": self.jobs, "Deployment": self.deployments,
                "StatefulSet": self.stateful_sets}[kind]

    def not_ready_reasons(self) -> list[str]:
        """Each cache that cannot serve, and why (empty: all can)."""
        return [reason for informer in self.all if (reason := informer.not_ready_reason())]

    def start(self) -> None:
        for informer in self.all:
            informer.start()
        self._pruner = asyncio.create_task(self._prune_events(), name="event cache pruner")

    async def stop(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        await asyncio.gather(*(informer.stop() for informer in self.all))

    async def wait_synced(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for informer in self.all:
            if not await informer.wait_for(lambda i=informer: i.synced, deadline - loop.time()):
                return False
        return True

    def _keep_event(self, event: Obj) -> bool:
        if event.get("involvedObject", {}).get("kind") not in EVENT_KINDS:
            return False
        when = event_time(event)
        return when is None or when > self._event_cutoff()

    def _event_cutoff(self) -> datetime:
        return datetime.now(timezone.utc) - timedelta(seconds=self.event_retention)

    async def _prune_events(self) -> None:
        interval = max(1.0, min(60.0, self.event_retention / 10))
        while True:
            await asyncio.sleep(interval)
            cutoff = self._event_cutoff()
            self.events.prune(lambda e: (event_time(e) or cutoff) < cutoff)
