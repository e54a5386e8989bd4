"""Defaulting and the fields the server owns, per kind, as the real registry applies them.

``apply_defaults`` fills what the API server's defaulting functions fill (pod spec defaults,
workload specs, service ports, Job selectors and labels) so that objects read back look like
a real cluster's. ``reset_status_on_create`` mirrors the strategies' ``PrepareForCreate``:
clients cannot create objects with a status, except nodes (which kubelets register with one).
"""

from __future__ import annotations

import base64

from gpuctl_async.kuberules.quantity import QuantityError, parse_quantity
from gpuctl_async.sim import quantities
from gpuctl_async.sim.resources import ResourceType


def _pod_spec(spec: dict) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if not isinstance(container, dict):
                continue
            image = str(container.get("image") or "")
            tag = image.rsplit("/", 1)[-1]
            if "@" in image:
                policy = "IfNotPresent"
            elif ":" not in tag or tag.endswith(":latest"):
                policy = "Always"
            else:
                policy = "IfNotPresent"
            container.setdefault("imagePullPolicy", policy)
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            container.setdefault("resources", {})
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def _template(spec: dict) -> None:
    template = spec.get("template")
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        _pod_spec(template["spec"])


_QOS_RESOURCES = ("cpu", "memory")


def qos_class(spec: dict) -> str:
    """Guaranteed / Burstable / BestEffort from the containers' cpu and memory requests and
    limits (other resources, such as GPUs, do not count, as in Kubernetes' GetPodQOS)."""
    containers = [c for c in (spec.get("containers") or []) if isinstance(c, dict)]
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        limits = {k: v for k, v in (resources.get("limits") or {}).items()
                  if k in _QOS_RESOURCES}
        requests = {**limits, **{k: v for k, v in (resources.get("requests") or {}).items()
                                 if k in _QOS_RESOURCES}}
        if limits or requests:
            any_set = True
        for name in ("cpu", "memory"):
            try:
                if name not in limits or (parse_quantity(requests.get(name, limits[name]))
                                          != parse_quantity(limits[name])):
                    guaranteed = False
            except QuantityError:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _deployment(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        strategy.setdefault("type", "RollingUpdate")
        rolling = strategy.setdefault("rollingUpdate", {})
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _template(spec)


def _replicaset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    _template(spec)


def _statefulset(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
    if strategy.get("type") == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {"partition": 0})
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("persistentVolumeClaimRetentionPolicy",
                    {"whenDeleted": "Retain", "whenScaled": "Retain"})
    _template(spec)


def _job(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    if not spec.get("manualSelector"):
        # The Job strategy generates a selector on the Job's uid and labels the template.
        uid, name = obj["metadata"]["uid"], obj["metadata"]["name"]
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        template = spec.setdefault("template", {})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update({"batch.kubernetes.io/controller-uid": uid,
                       "batch.kubernetes.io/job-name": name,
                       "controller-uid": uid, "job-name": name})
    _template(spec)


def _service(obj: dict) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))


def _namespace(obj: dict) -> None:
    name = obj["metadata"]["name"]
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])


def _priorityclass(obj: dict) -> None:
    obj.setdefault("preemptionPolicy", "PreemptLowerPriority")


def _pod(obj: dict) -> None:
    _pod_spec(obj.setdefault("spec", {}))


def _secret(obj: dict) -> None:
    """``type`` defaults to Opaque; ``stringData`` is write-only, merged into ``data``."""
    obj.setdefault("type", "Opaque")
    strings = obj.pop("stringData", None)
    if isinstance(strings, dict):
        data = obj.setdefault("data", {})
        for key, value in strings.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


_DEFAULTERS = {"pods": _pod, "deployments.apps": _deployment,
               "replicasets.apps": _replicaset, "statefulsets.apps": _statefulset,
               "jobs.batch": _job, "services": _service, "namespaces": _namespace,
               "priorityclasses.scheduling.k8s.io": _priorityclass, "secrets": _secret}


def apply_defaults(rt: ResourceType, obj: dict) -> None:
    """Fill defaults in place and write quantities in their stored form (idempotent: also
    applied to updates)."""
    defaulter = _DEFAULTERS.get(rt.key)
    if defaulter is not None:
        defaulter(obj)
    quantities.canonicalize(rt, obj)


def reset_status_on_create(rt: ResourceType, obj: dict) -> None:
    if rt.key == "nodes" or not rt.has_status:
        return
    if rt.key == "pods":
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
    elif rt.key == "namespaces":
        obj["status"] = {"phase": "Active"}
    elif rt.key == "services":
        obj["status"] = {"loadBalancer": {}}
    else:
        obj["status"] = {}
