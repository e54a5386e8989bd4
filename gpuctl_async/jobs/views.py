"""What the job read routes show: controller status, events, and the job detail document."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from gpuctl_async.jobs import status as job_status
from gpuctl_async.jobs.lookup import JobRef
from gpuctl_async.jobs.reasons import Explainer
from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import (
    INVOLVED_INDEX,
    OWNER_INDEX,
    ClusterCache,
    event_count,
    event_last_seen,
    event_time,
)
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.k8s.manifests import CONTAINER_NAME, SERVED_KINDS, service_name
from gpuctl_async.k8s.reverse import reverse_map
from gpuctl_async.kuberules.quantity import QuantityError, parse_quantity

MAX_EVENTS = 50
# Controller events that explain why a job has no pods (e.g. refused by a quota).
_CREATE_FAILURES = ("FailedCreate",)


def _replica_sets(cache: ClusterCache, controller: Obj, filling: bool = False) -> list[Obj]:
    if controller.get("kind") != "Deployment":
        return []
    index = cache.replica_sets.peek_index if filling else cache.replica_sets.by_index
    return index(OWNER_INDEX, controller["metadata"].get("uid", ""))


def job_events(cache: ClusterCache, objects: Iterable[Obj], filling: bool = False) -> list[Obj]:
    """Cached events about any of ``objects``, newest first."""
    index = cache.events.peek_index if filling else cache.events.by_index
    events: list[Obj] = []
    for obj in objects:
        uid = obj.get("metadata", {}).get("uid")
        if uid:
            events.extend(index(INVOLVED_INDEX, uid))
    oldest = datetime.min.replace(tzinfo=timezone.utc)
    events.sort(key=lambda e: event_time(e) or oldest, reverse=True)
    return events


def controller_status(cache: ClusterCache, controller: Obj, *, filling: bool = False) -> str:
    """The status a controller without pods shows. ``filling``: called from a cache
    subscriber, which may run before every cache has synced, so it reads what is there
    (the job list recomputes the row as pods and events arrive) instead of refusing."""
    namespace = controller["metadata"].get("namespace", "")
    job_name = controller["metadata"].get("labels", {}).get(labels.JOB_NAME,
                                                             controller["metadata"]["name"])
    pods_index = cache.pods.peek_index if filling else cache.pods.by_index
    pods = pods_index("job", f"{namespace}/{job_name}")
    if controller["kind"] == "Job":
        shown = job_status.job_status(controller, pods)
    else:
        shown = job_status.replicated_status(controller, pods)
    if shown == "Pending" and not pods:
        for event in job_events(cache, [controller, *_replica_sets(cache, controller, filling)],
                                filling):
            if event.get("reason") in _CREATE_FAILURES:
                return event["reason"]
            if event.get("reason") == "SuccessfulCreate":
                break
    return shown


_SETTLED = ("Running", "Succeeded", "Failed")


def _missing_pods(job: JobRef) -> bool:
    assert job.controller is not None
    live = [p for p in job.pods if not job_status.pod_is_finished(p)]
    if job.controller["kind"] == "Job":
        return not live
    return len(live) < int(job.controller.get("spec", {}).get("replicas", 1) or 0)


def job_scheduling(explainer: Explainer, job: JobRef, status: str) -> dict[str, Any] | None:
    """The detail's ``scheduling``: why the job is not running, what blocks it, and for a pod
    waiting for a node its place in the pool's queue; None once it runs (with all its
    replicas) or has finished."""
    missing = job.controller is not None and _missing_pods(job)
    if status in _SETTLED and not (status == "Running" and missing):
        return None
    pods = [p for p in job.pods if not job_status.pod_is_finished(p)
            and job_status.pod_status(p) != "Running"]
    pods.sort(key=lambda p: (job_status.telling_rank(job_status.pod_status(p)),
                             p["metadata"]["name"]))
    if pods:
        pod = pods[0]
        why = explainer.pod(pod)
        position = explainer.queue.position(pod)
    elif missing and job.controller is not None:
        # Pods it should have and does not: refused by a quota, or not created yet.
        why = explainer.controller(job.controller, status, replicas_missing=True)
        pod, position = None, None
    else:
        return None
    if why is None:
        return None
    return {"reason": why.reason, "message": why.message,
            "pod": pod["metadata"]["name"] if pod is not None else None,
            "blockers": why.blockers,
            "queue": position.as_dict() if position is not None else None}


def _pod_item(explainer: Explainer, pod: Obj) -> dict[str, Any]:
    why = explainer.pod(pod)
    return {"name": pod["metadata"]["name"], "status": job_status.pod_status(pod),
            "node": pod.get("spec", {}).get("nodeName"),
            "reason": why.reason if why else None, "message": why.message if why else None}


def _event_item(event: Obj, now: datetime) -> dict[str, Any]:
    involved = event.get("involvedObject", {})
    when = event_last_seen(event)
    return {
        "age": job_status.format_age(when, now),
        "type": event.get("type") or "Normal",
        "reason": event.get("reason") or "-",
        "from": (event.get("source") or {}).get("component")
                or event.get("reportingComponent") or "-",
        "object": f"{involved.get('kind', '')}/{involved.get('name', '')}",
        "message": event.get("message") or "-",
        "count": event_count(event),
        "lastTimestamp": when,
    }


def aggregate_events(events: list[Obj], now: datetime) -> list[dict[str, Any]]:
    """Newest first; repeats of one (object, type, reason, message) folded into one entry
    whose count adds up; at most MAX_EVENTS."""
    merged: dict[tuple, dict[str, Any]] = {}
    for event in events:
        item = _event_item(event, now)
        key = (item["object"], item["type"], item["reason"], item["message"])
        if key in merged:
            merged[key]["count"] += item["count"]
        else:
            merged[key] = item
    return list(merged.values())[:MAX_EVENTS]


def _main_container(template_spec: Obj) -> Obj:
    containers = template_spec.get("containers") or [{}]
    return next((c for c in containers if c.get("name") == CONTAINER_NAME), containers[0])


def _pod_spec(obj: Obj) -> Obj:
    if obj.get("kind") == "Pod":
        return obj.get("spec", {})
    return obj.get("spec", {}).get("template", {}).get("spec", {})


def job_resources(obj: Obj) -> dict[str, Any]:
    limits = _main_container(_pod_spec(obj)).get("resources", {}).get("limits", {})
    try:
        gpu = int(parse_quantity(limits.get(labels.GPU_RESOURCE, 0)))
    except QuantityError:
        gpu = 0
    return {"cpu": limits.get("cpu"), "memory": limits.get("memory"), "gpu": gpu}


def _internal_ip(node: Obj | None) -> str | None:
    for address in (node or {}).get("status", {}).get("addresses", ()):
        if address.get("type") == "InternalIP":
            return address.get("address")
    return None


def access_methods(cache: ClusterCache, job: JobRef) -> dict[str, Any] | None:
    if job.kind not in SERVED_KINDS:
        return None
    service = cache.services.get(job.namespace, service_name(job.name))
    port_spec = ((service or {}).get("spec", {}).get("ports") or [{}])[0]
    target = port_spec.get("targetPort")
    port = target if isinstance(target, int) else port_spec.get("port")
    running = sorted((p for p in job.pods if p.get("status", {}).get("phase") == "Running"
                      and not p["metadata"].get("deletionTimestamp")),
                     key=lambda p: p["metadata"]["name"])
    pod = running[0] if running else None
    pod_ip = (pod or {}).get("status", {}).get("podIP")
    node_ip = _internal_ip(cache.nodes.get("", pod["spec"].get("nodeName", ""))) if pod else None
    node_port = port_spec.get("nodePort")
    return {
        "pod_ip_access": {"pod_ip": pod_ip, "port": port,
                          "url": f"http://{pod_ip}:{port}" if pod_ip and port else None},
        "node_port_access": {"node_ip": node_ip, "node_port": node_port,
                             "url": f"http://{node_ip}:{node_port}" if node_ip and node_port
                             else None},
    }


def job_detail(cache: ClusterCache, explainer: Explainer, job: JobRef,
               job_id: str) -> dict[str, Any]:
    explainer.require_synced()
    now = datetime.now(timezone.utc)
    controller = job.controller
    if controller is not None:
        shown = controller
        status = controller_status(cache, controller)
        kind_name = controller["kind"]
        started = (controller.get("status", {}).get("startTime") if kind_name == "Job"
                   else controller["metadata"].get("creationTimestamp"))
        completed = controller.get("status", {}).get("completionTime")
        service = cache.services.get(job.namespace, service_name(job.name))
        yaml_content = reverse_map(controller, service)
        related = [controller, *_replica_sets(cache, controller), *job.pods]
    else:
        shown = next((p for p in job.pods if p["metadata"]["name"] == job_id), job.pods[0])
        status = job_status.pod_status(shown)
        kind_name = "Pod"
        started = shown.get("status", {}).get("startTime") or \
            shown["metadata"].get("creationTimestamp")
        completed = None
        yaml_content = reverse_map(shown)
        related = list(job.pods)
    meta = shown["metadata"]
    shown_labels = meta.get("labels", {})
    return {
        "job_id": meta["name"],
        "name": job.name,
        "namespace": job.namespace,
        "kind": job.kind,
        "resource_type": kind_name,
        "status": status,
        "age": job_status.format_age(meta.get("creationTimestamp"), now),
        "started": started,
        "completed": completed,
        "priority": shown_labels.get(labels.PRIORITY, "medium"),
        "pool": shown_labels.get(labels.POOL, labels.DEFAULT_POOL),
        "resources": job_resources(shown),
        "metrics": {},
        "yaml_content": yaml_content,
        "events": aggregate_events(job_events(cache, related), now),
        "access_methods": access_methods(cache, job),
        "scheduling": job_scheduling(explainer, job, status),
        "pods": [_pod_item(explainer, p) for p in
                 sorted(job.pods, key=lambda p: p["metadata"]["name"])],
    }
