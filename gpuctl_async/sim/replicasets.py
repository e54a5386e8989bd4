"""The ReplicaSet controller (``replicaset-controller``): keeps ``spec.replicas`` pods.

Pods are ``<replicaset>-<5 random>`` from the template; a missing, deleted or finished pod
is replaced; extra pods are deleted, the least established first (unscheduled, then
pending, then not ready, then the newest). Events SuccessfulCreate ("Created pod: x"),
SuccessfulDelete ("Deleted pod: x") and FailedCreate ("Error creating: pods "x" is
forbidden: exceeded quota: ..."). ``status``: replicas, fullyLabeledReplicas, readyReplicas,
availableReplicas, observedGeneration.
"""

from __future__ import annotations

from gpuctl_async.sim.controller import Controller, condition_true, pod_from_template
from gpuctl_async.sim.selectors import from_label_selector
from gpuctl_async.sim.usage import TERMINAL_PHASES


def _deletion_rank(pod: dict) -> tuple:
    status = pod.get("status") or {}
    return (bool((pod.get("spec") or {}).get("nodeName")),
            status.get("phase") == "Running", condition_true(pod, "Ready"))


def deletion_order(pods: list[dict]) -> list[dict]:
    """Least established first; the newest first among equals."""
    newest_first = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""),
                          reverse=True)
    return sorted(newest_first, key=_deletion_rank)


def active_pods(pods: list[dict]) -> list[dict]:
    return [p for p in pods if (p.get("status") or {}).get("phase") not in TERMINAL_PHASES
            and not p["metadata"].get("deletionTimestamp")]


class ReplicaSetController(Controller):
    owner_kind = "ReplicaSet"
    owner_resource = "replicasets"
    child_resource = "pods"
    component = "replicaset-controller"

    def sync(self, rs: dict) -> float | None:
        spec = rs.get("spec") or {}
        pods = active_pods(self.children(rs))
        wanted = spec.get("replicas", 1)
        retry = None
        if len(pods) < wanted:
            for _ in range(wanted - len(pods)):
                pod = self.create_child(rs, pod_from_template(rs, spec.get("template")),
                                        created="Created pod: {name}",
                                        refused="Error creating: {error}")
                if pod is None:
                    retry = self.refusal_delay(rs)
                    break
                pods.append(pod)
        elif len(pods) > wanted:
            doomed = deletion_order(pods)[:len(pods) - wanted]
            for pod in doomed:
                self.delete_child(rs, pod, deleted="Deleted pod: {name}")
            pods = [p for p in pods if p not in doomed]
        selector = from_label_selector(spec.get("selector"))
        ready = sum(1 for p in pods if condition_true(p, "Ready"))
        status = {"replicas": len(pods),
                  "fullyLabeledReplicas": sum(1 for p in pods if selector.matches(p)),
                  "readyReplicas": ready, "availableReplicas": ready,
                  "observedGeneration": rs["metadata"].get("generation", 1)}
        for field in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            if not status[field]:
                del status[field]
        self.write_status(rs, status)
        return retry
