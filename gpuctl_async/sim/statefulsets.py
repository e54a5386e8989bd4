"""The StatefulSet controller (``statefulset-controller``): pods ``<name>-<ordinal>``.

Pods keep their ordinal names; a deleted or finished pod is recreated under the same name
once the old one is gone. With ``podManagementPolicy: OrderedReady`` (the default) pod N is
created only when pods 0..N-1 are Running and Ready, and scale-down removes the highest
ordinal first, one at a time; ``Parallel`` creates and deletes all at once. Pods carry the
labels ``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and
``controller-revision-hash``, and ``hostname``/``subdomain`` (the serviceName). Events
SuccessfulCreate ("create Pod web-0 in StatefulSet web successful"), SuccessfulDelete and
FailedCreate ("create Pod web-0 in StatefulSet web failed error: ..."). ``status``:
replicas, readyReplicas, currentReplicas, updatedReplicas, availableReplicas,
currentRevision, updateRevision, observedGeneration, collisionCount.
"""

from __future__ import annotations

from gpuctl_async.sim.controller import Controller, condition_true, pod_from_template
from gpuctl_async.sim.deployments import template_hash
from gpuctl_async.sim.usage import TERMINAL_PHASES


def _running_and_ready(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and condition_true(pod, "Ready")


class StatefulSetController(Controller):
    owner_kind = "StatefulSet"
    owner_resource = "statefulsets"
    child_resource = "pods"
    component = "statefulset-controller"

    def sync(self, sts: dict) -> float | None:
        spec = sts.get("spec") or {}
        name = sts["metadata"]["name"]
        replicas = spec.get("replicas", 1)
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        revision = f"{name}-{template_hash(spec.get('template') or {})}"
        by_ordinal: dict[int, dict] = {}
        for pod in self.children(sts):
            suffix = pod["metadata"]["name"][len(name) + 1:]
            if pod["metadata"]["name"].startswith(name + "-") and suffix.isdigit():
                by_ordinal[int(suffix)] = pod
        retry = None
        for ordinal in range(replicas):
            pod = by_ordinal.get(ordinal)
            if pod is not None and (pod.get("status") or {}).get("phase") in TERMINAL_PHASES \
                    and not pod["metadata"].get("deletionTimestamp"):
                self.delete_child(sts, pod, deleted=f"delete Pod {{name}} in StatefulSet {name} "
                                                    f"successful")
                pod = None
            if pod is not None and pod["metadata"].get("deletionTimestamp"):
                if ordered:
                    break  # its replacement waits until the old one is gone
                continue
            if pod is None:
                if self._create(sts, ordinal, revision) is None:
                    retry = self.refusal_delay(sts)
                    break
                if ordered:
                    break
            elif ordered and not _running_and_ready(pod):
                break
        extra = sorted((o for o in by_ordinal if o >= replicas), reverse=True)
        if extra and not (ordered and any(by_ordinal[o]["metadata"].get("deletionTimestamp")
                                          for o in extra)):
            for ordinal in extra[:1] if ordered else extra:
                self.delete_child(sts, by_ordinal[ordinal],
                                  deleted=f"delete Pod {{name}} in StatefulSet {name} successful")
        pods = [p for p in self.children(sts) if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in pods if _running_and_ready(p))
        status = {"observedGeneration": sts["metadata"].get("generation", 1),
                  "replicas": len(pods), "readyReplicas": ready, "currentReplicas": len(pods),
                  "updatedReplicas": len(pods), "availableReplicas": ready,
                  "currentRevision": revision, "updateRevision": revision,
                  "collisionCount": 0}
        for field in ("readyReplicas", "currentReplicas", "updatedReplicas",
                      "availableReplicas"):
            if not status[field]:
                del status[field]
        self.write_status(sts, status)
        return retry

    def _create(self, sts: dict, ordinal: int, revision: str) -> dict | None:
        name = sts["metadata"]["name"]
        pod_name = f"{name}-{ordinal}"
        pod = pod_from_template(sts, sts["spec"].get("template"), name=pod_name, labels={
            "statefulset.kubernetes.io/pod-name": pod_name,
            "apps.kubernetes.io/pod-index": str(ordinal),
            "controller-revision-hash": revision})
        pod["spec"]["hostname"] = pod_name
        if sts["spec"].get("serviceName"):
            pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
        return self.create_child(
            sts, pod, created=f"create Pod {{name}} in StatefulSet {name} successful",
            refused=f"create Pod {{name}} in StatefulSet {name} failed error: {{error}}")
