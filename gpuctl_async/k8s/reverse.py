"""Kubernetes objects → the gpuctl document that would recreate them (``yaml_content``).

Input is raw object dicts as the API server returns them: a controller (Job, Deployment,
StatefulSet, or a lone Pod) and optionally its ``svc-<name>`` Service. Output is a document in
canonical keys that ``parse_document`` accepts and that builds the same manifests again.
Inputs the YAML cannot express (valueFrom env vars, epochs, gpuShare, the model block) are left
out.
"""

from __future__ import annotations

from collections.abc import Mapping

from gpuctl_async.k8s import labels
from gpuctl_async.k8s.manifests import CONTAINER_NAME, NOTEBOOK_PORT
from gpuctl_async.documents.jobs import (
    DEFAULT_PRIORITY,
    DEFAULT_SERVICE_PORT,
    DEFAULT_VERSION,
    PRIORITIES,
)

# Written as the pod selector by the original gpuctl; still read so its jobs map back.
_LEGACY_GPU_TYPE_SELECTOR = labels.PREFIX + "gpuType"
_KIND_OF_CONTROLLER = {"Job": "training", "StatefulSet": "notebook"}


def reverse_map(controller: Mapping, service: Mapping | None = None) -> dict:
    """The gpuctl document of a job, from its controller (or pod) and optional Service."""
    metadata = controller.get("metadata") or {}
    template_metadata, pod_spec = _pod_template(controller)
    object_labels = {**(template_metadata.get("labels") or {}), **(metadata.get("labels") or {})}
    annotations = {**(template_metadata.get("annotations") or {}),
                   **(metadata.get("annotations") or {})}
    kind = _kind(controller, object_labels)
    document: dict = {
        "kind": kind,
        "version": DEFAULT_VERSION,
        "job": _job(metadata, object_labels, annotations, pod_spec),
    }
    if kind == "unknown":
        return document
    container = _main_container(pod_spec)
    document["environment"] = _environment(container, pod_spec)
    document["resources"] = _resources(container, pod_spec, object_labels)
    if kind in ("inference", "compute"):
        document["service"] = _service(controller, container, service, object_labels)
    elif kind == "notebook":
        document["service"] = {"port": _service_port(service) or NOTEBOOK_PORT}
    workdirs = [{"path": volume["hostPath"]["path"]}
                for volume in pod_spec.get("volumes") or [] if volume.get("hostPath")]
    if workdirs:
        document["storage"] = {"workdirs": workdirs}
    return document


def _pod_template(obj: Mapping) -> tuple[Mapping, Mapping]:
    if obj.get("kind") == "Pod":
        return {}, obj.get("spec") or {}
    template = (obj.get("spec") or {}).get("template") or {}
    return template.get("metadata") or {}, template.get("spec") or {}


def _kind(controller: Mapping, object_labels: Mapping) -> str:
    if object_labels.get(labels.JOB_TYPE):
        return object_labels[labels.JOB_TYPE]
    if controller.get("kind") == "Deployment":
        return "compute" if labels.PORT in object_labels else "inference"
    return _KIND_OF_CONTROLLER.get(controller.get("kind"), "unknown")


def _job(metadata: Mapping, object_labels: Mapping, annotations: Mapping,
         pod_spec: Mapping) -> dict:
    name = (object_labels.get(labels.JOB_NAME) or object_labels.get(labels.APP)
            or metadata.get("name"))
    job = {
        "name": name,
        "namespace": metadata.get("namespace") or object_labels.get(labels.NAMESPACE) or "default",
        "priority": _priority(object_labels, pod_spec),
    }
    if labels.DESCRIPTION_ANNOTATION in annotations:
        job["description"] = annotations[labels.DESCRIPTION_ANNOTATION]
    return job


def _priority(object_labels: Mapping, pod_spec: Mapping) -> str:
    priority_class = pod_spec.get("priorityClassName") or ""
    from_class = priority_class.removeprefix(labels.PRIORITY_CLASS_PREFIX)
    for candidate in (object_labels.get(labels.PRIORITY), from_class):
        if candidate in PRIORITIES:
            return candidate
    return DEFAULT_PRIORITY


def _main_container(pod_spec: Mapping) -> Mapping:
    containers = pod_spec.get("containers") or [{}]
    return next((c for c in containers if c.get("name") == CONTAINER_NAME), containers[0])


def _environment(container: Mapping, pod_spec: Mapping) -> dict:
    environment: dict = {"image": container.get("image", "")}
    pull_secrets = pod_spec.get("imagePullSecrets") or []
    if pull_secrets and pull_secrets[0].get("name"):
        environment["imagePullSecret"] = pull_secrets[0]["name"]
    environment["command"] = list(container.get("command") or [])
    environment["args"] = list(container.get("args") or [])
    environment["env"] = [{"name": var["name"], "value": var.get("value", "")}
                          for var in container.get("env") or [] if "valueFrom" not in var]
    return environment


def _resources(container: Mapping, pod_spec: Mapping, object_labels: Mapping) -> dict:
    amounts = container.get("resources") or {}
    limits = {**(amounts.get("requests") or {}), **(amounts.get("limits") or {})}
    node_selector = pod_spec.get("nodeSelector") or {}
    resources: dict = {
        "pool": (object_labels.get(labels.POOL) or node_selector.get(labels.POOL)
                 or labels.DEFAULT_POOL),
        "gpu": int(limits.get(labels.GPU_RESOURCE, 0)),
    }
    gpu_type = node_selector.get(labels.GPU_TYPE) or node_selector.get(_LEGACY_GPU_TYPE_SELECTOR)
    if gpu_type:
        resources["gpuType"] = gpu_type
    if "cpu" in limits:
        cpu = str(limits["cpu"])
        resources["cpu"] = int(cpu) if cpu.isdigit() else cpu
    if "memory" in limits:
        resources["memory"] = str(limits["memory"])
    return resources


def _service(controller: Mapping, container: Mapping, service: Mapping | None,
             object_labels: Mapping) -> dict:
    container_ports = container.get("ports") or [{}]
    port = (_service_port(service) or container_ports[0].get("containerPort")
            or int(object_labels.get(labels.PORT) or DEFAULT_SERVICE_PORT))
    block: dict = {"replicas": (controller.get("spec") or {}).get("replicas") or 1, "port": port}
    probe = container.get("livenessProbe") or container.get("readinessProbe") or {}
    path = (probe.get("httpGet") or {}).get("path")
    if path:
        block["healthCheck"] = path
    return block


def _service_port(service: Mapping | None) -> int | None:
    ports = ((service or {}).get("spec") or {}).get("ports") or [{}]
    return ports[0].get("port")
