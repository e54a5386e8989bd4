"""Display status of pods and controllers, and ages, as gpuctl shows them.

Pod status follows the original gpuctl (original-gpuctl-behavior.md §3.0.2) plus
``Terminating`` for a pod being deleted; controller status follows DESIGN.md §5, so a rollout
in progress is never reported as ``Failed``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

from gpuctl_async.k8s.timestamps import parse_time

_KNOWN_WAITING = frozenset({
    "ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "CreateContainerConfigError",
    "CreateContainerError", "ContainerCreating", "InvalidImageName", "ImageInspectError",
    "RegistryUnavailable", "RunInitContainerError", "Resizing", "Restarting", "Waiting",
    "Terminating", "Unknown",
})


def _detailed(reason: str, message: str) -> str:
    message = message.lower()
    if reason in _KNOWN_WAITING:
        return reason
    if "BackOff" in reason:
        return "BackOff"
    if "NotFound" in reason or "not found" in message:
        return "NotFound"
    if "Permission" in reason or "denied" in message:
        return "PermissionDenied"
    if "Storage" in reason or "storage" in message:
        return "StorageError"
    return reason or "Waiting"


def pod_status(pod: Mapping) -> str:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status", {})
    result = status.get("phase") or "Unknown"
    for container in status.get("containerStatuses") or ():
        state = container.get("state") or {}
        if "waiting" in state:
            waiting = state["waiting"] or {}
            return _detailed(waiting.get("reason", ""), waiting.get("message", ""))
        if "terminated" in state:
            reason = (state["terminated"] or {}).get("reason", "")
            return reason if reason in ("OOMKilled", "Error") else result
    return result


def pod_ready(pod: Mapping) -> str:
    statuses = pod.get("status", {}).get("containerStatuses") or ()
    ready = sum(1 for s in statuses if s.get("ready"))
    return f"{ready}/{len(statuses)}"


def pod_is_finished(pod: Mapping) -> bool:
    return pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def _condition(obj: Mapping, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in obj.get("status", {}).get("conditions") or ())


def job_status(job: Mapping, pods: Iterable[Mapping] = ()) -> str:
    """batch/v1 Job: its conditions first; while pods are active, Running once one of them
    runs, else the most telling of their statuses (an unschedulable pod is "active" to
    Kubernetes, but the job is not running). A job whose pods the cache has not seen yet is
    Pending: the Job controller counts a pod active before the pod watch delivers it."""
    if _condition(job, "Complete"):
        return "Succeeded"
    if _condition(job, "Failed"):
        return "Failed"
    if not job.get("status", {}).get("active"):
        return "Pending"
    statuses = [pod_status(p) for p in pods if not pod_is_finished(p)]
    if "Running" in statuses:
        return "Running"
    return min(statuses, key=telling_rank, default="Pending")


def replicated_status(controller: Mapping, pods: Iterable[Mapping]) -> str:
    """Deployment / StatefulSet: Running when every desired replica is ready, else the most
    telling status among its pods (a problem such as ImagePullBackOff before a pod still
    starting), else Pending."""
    desired = controller.get("spec", {}).get("replicas", 1)
    ready = controller.get("status", {}).get("readyReplicas", 0) or 0
    if ready >= desired:
        return "Running"
    statuses = [pod_status(p) for p in pods]
    return min(statuses, key=telling_rank, default="Pending")


_ROUTINE = ("ContainerCreating", "Pending", "Running", "Terminating", "Succeeded")


def telling_rank(status: str) -> int:
    """Problems first (rank -1), then routine states in the order they explain a wait."""
    return _ROUTINE.index(status) if status in _ROUTINE else -1


def format_age(stamp: str | None, now: datetime | None = None) -> str:
    """``45s``, ``12m``, ``3h``, ``2d`` since the timestamp; ``N/A`` when there is none."""
    when = parse_time(stamp)
    if when is None:
        return "N/A"
    return format_duration(((now or datetime.now(timezone.utc)) - when).total_seconds())


_UNITS = ((60, 1, "s"), (3600, 60, "m"), (86400, 3600, "h"), (float("inf"), 86400, "d"))


def format_duration(seconds: float) -> str:
    """``45s``, ``12m``, ``3h`` or ``2d``, truncated; never negative (clock skew)."""
    return duration_and_change(seconds)[0]


def duration_and_change(seconds: float) -> tuple[str, int]:
    """:func:`format_duration` of ``seconds``, and the duration at which that text changes
    next (``"12m"``: 780): a shown age stays true until then, a second or days away."""
    whole = max(0, int(seconds))
    for below, unit, suffix in _UNITS:
        if whole < below:
            count = whole // unit
            return f"{count}{suffix}", (count + 1) * unit
    raise AssertionError("unreachable: the last unit has no bound")
