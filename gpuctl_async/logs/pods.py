"""What the log code needs to know about a pod: its container, that container's state, and
whether the pod is over (its containers will not run again)."""

from __future__ import annotations

from gpuctl_async.k8s.informer import Obj

RUNNING, TERMINATED, WAITING = "running", "terminated", "waiting"
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def default_container(pod: Obj) -> str | None:
    """The container ``kubectl logs`` would pick: the annotated default, else the first."""
    annotated = pod.get("metadata", {}).get("annotations", {}).get(DEFAULT_CONTAINER_ANNOTATION)
    containers = pod.get("spec", {}).get("containers") or []
    names = [c.get("name") for c in containers]
    if annotated in names:
        return annotated
    return names[0] if names else None


def container_status(pod: Obj | None, container: str) -> Obj | None:
    status = (pod or {}).get("status", {})
    for field in ("containerStatuses", "initContainerStatuses"):
        for item in status.get(field) or ():
            if item.get("name") == container:
                return item
    return None


def container_state(pod: Obj | None, container: str) -> str | None:
    """running, terminated (it ran, and is not running now), waiting, or None (no status)."""
    status = container_status(pod, container)
    if status is None:
        return None
    state = status.get("state") or {}
    if "running" in state:
        return RUNNING
    if "terminated" in state or (status.get("lastState") or {}).get("terminated"):
        return TERMINATED
    return WAITING


def run_signature(pod: Obj | None, container: str) -> tuple:
    """Changes whenever the container starts or stops a run."""
    status = container_status(pod, container) or {}
    state = status.get("state") or {}
    return (status.get("restartCount", 0), tuple(sorted(state)))


def waiting_reason(pod: Obj | None, container: str) -> str | None:
    state = (container_status(pod, container) or {}).get("state") or {}
    return (state.get("waiting") or {}).get("reason")


def pod_over(pod: Obj | None) -> bool:
    """Gone, Succeeded or Failed: none of its containers will log again."""
    return pod is None or pod.get("status", {}).get("phase") in ("Succeeded", "Failed")


def on_node(pod: Obj) -> bool:
    return bool(pod.get("spec", {}).get("nodeName"))
