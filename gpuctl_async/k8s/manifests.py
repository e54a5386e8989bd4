"""gpuctl job spec → Kubernetes manifests, as plain dicts.

Input is the normalised spec of a job document (``ParsedDocument.spec``). The mapping follows
the original gpuctl (original-gpuctl-behavior.md §2) with the fixes of DESIGN.md §5: one env
var per item, ``runwhere.ai/gpu-type`` selector, notebook Service port 8888 by default, and a
``runwhere.ai/job-name`` label on everything.
"""

from __future__ import annotations

from collections.abc import Mapping

from gpuctl_async.k8s import labels

SERVICE_PREFIX = "svc-"
CONTAINER_NAME = "main"
NOTEBOOK_PORT = 8888
JOB_BACKOFF_LIMIT = 3
JOB_TTL_SECONDS = 86400

# kind → (apiVersion, Kubernetes kind) of its controller.
CONTROLLERS = {
    "training": ("batch/v1", "Job"),
    "inference": ("apps/v1", "Deployment"),
    "notebook": ("apps/v1", "StatefulSet"),
    "compute": ("apps/v1", "Deployment"),
}
SERVED_KINDS = ("inference", "notebook", "compute")


def service_name(job_name: str) -> str:
    return SERVICE_PREFIX + job_name


def build_manifests(spec: Mapping) -> list[dict]:
    """The objects that make up the job: its controller, then its Service if it has one."""
    manifests = [build_controller(spec)]
    if spec["kind"] in SERVED_KINDS:
        manifests.append(build_service(spec))
    return manifests


def build_controller(spec: Mapping) -> dict:
    kind = spec["kind"]
    api_version, controller_kind = CONTROLLERS[kind]
    name = spec["job"]["name"]
    template = {"metadata": _metadata(spec, _template_labels(spec)), "spec": _pod_spec(spec)}
    if kind == "training":
        controller_spec: dict = {
            "backoffLimit": JOB_BACKOFF_LIMIT,
            "ttlSecondsAfterFinished": JOB_TTL_SECONDS,
            "template": template,
        }
    else:
        controller_spec = {
            "replicas": 1 if kind == "notebook" else spec["service"]["replicas"],
            "selector": {"matchLabels": {labels.APP: name}},
        }
        if kind == "notebook":
            controller_spec["serviceName"] = service_name(name)
        controller_spec["template"] = template
    return {
        "apiVersion": api_version,
        "kind": controller_kind,
        "metadata": {"name": name, "namespace": spec["job"]["namespace"],
                     **_metadata(spec, _controller_labels(spec))},
        "spec": controller_spec,
    }


def build_service(spec: Mapping) -> dict:
    name = spec["job"]["name"]
    port = spec["service"]["port"]
    # A notebook listens on 8888 whatever port its Service exposes.
    target_port = NOTEBOOK_PORT if spec["kind"] == "notebook" else port
    service_labels = {
        labels.JOB_TYPE: spec["kind"],
        labels.POOL: spec["resources"]["pool"],
        labels.NAMESPACE: spec["job"]["namespace"],
        labels.JOB_NAME: name,
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name(name), "namespace": spec["job"]["namespace"],
                     **_metadata(spec, service_labels)},
        "spec": {
            "type": "NodePort",
            "selector": {labels.APP: name},
            "ports": [{"port": port, "targetPort": target_port, "protocol": "TCP"}],
        },
    }


def _metadata(spec: Mapping, object_labels: dict) -> dict:
    metadata: dict = {"labels": object_labels}
    description = spec["job"].get("description")
    if description is not None:
        metadata["annotations"] = {labels.DESCRIPTION_ANNOTATION: description}
    return metadata


def _controller_labels(spec: Mapping) -> dict:
    job = spec["job"]
    object_labels = {
        labels.JOB_TYPE: spec["kind"],
        labels.PRIORITY: job["priority"],
        labels.POOL: spec["resources"]["pool"],
        labels.NAMESPACE: job["namespace"],
        labels.JOB_NAME: job["name"],
    }
    if spec["kind"] == "compute":
        object_labels[labels.PORT] = str(spec["service"]["port"])
    return object_labels


def _template_labels(spec: Mapping) -> dict:
    template_labels = _controller_labels(spec)
    if spec["kind"] in SERVED_KINDS:
        template_labels[labels.APP] = spec["job"]["name"]
    return template_labels


def _pod_spec(spec: Mapping) -> dict:
    environment = spec["environment"]
    workdirs = spec["storage"]["workdirs"]
    pod: dict = {
        "restartPolicy": "Never" if spec["kind"] == "training" else "Always",
        "priorityClassName": labels.priority_class_name(spec["job"]["priority"]),
        "containers": [_container(spec)],
    }
    pod.update(_placement(spec["resources"]))
    if environment.get("imagePullSecret"):
        pod["imagePullSecrets"] = [{"name": environment["imagePullSecret"]}]
    if workdirs:
        pod["volumes"] = [
            {"name": _workdir_volume(index), "hostPath": {"path": workdir["path"],
                                                        "type": "DirectoryOrCreate"}}
            for index, workdir in enumerate(workdirs)
        ]
    return pod


def _container(spec: Mapping) -> dict:
    environment = spec["environment"]
    container: dict = {
        "name": CONTAINER_NAME,
        "image": environment["image"],
        "imagePullPolicy": "IfNotPresent",
    }
    for key in ("command", "args"):
        if environment[key]:
            container[key] = list(environment[key])
    if environment["env"]:
        container["env"] = [{"name": var["name"], "value": var["value"]}
                            for var in environment["env"]]
    container["resources"] = {"requests": _resources(spec["resources"]),
                              "limits": _resources(spec["resources"])}
    port = _container_port(spec)
    if port is not None:
        # Declared so the reverse mapping (and kubectl) can read the port from the pod alone.
        container["ports"] = [{"containerPort": port, "protocol": "TCP"}]
    health_check = spec.get("service", {}).get("healthCheck")  # inference and compute only
    if health_check:
        probe = {"httpGet": {"path": health_check, "port": port}}
        container["livenessProbe"] = {**probe, "initialDelaySeconds": 30, "periodSeconds": 10}
        container["readinessProbe"] = {**probe, "initialDelaySeconds": 5, "periodSeconds": 10}
    if spec["storage"]["workdirs"]:
        container["volumeMounts"] = [
            {"name": _workdir_volume(index), "mountPath": workdir["path"]}
            for index, workdir in enumerate(spec["storage"]["workdirs"])
        ]
    return container


def _container_port(spec: Mapping) -> int | None:
    if spec["kind"] == "notebook":
        return NOTEBOOK_PORT
    if spec["kind"] in SERVED_KINDS:
        return spec["service"]["port"]
    return None


def _resources(resources: Mapping) -> dict:
    amounts = {"cpu": resources["cpu"], "memory": resources["memory"]}
    if resources["gpu"] > 0:
        amounts[labels.GPU_RESOURCE] = str(resources["gpu"])
    return amounts


def _placement(resources: Mapping) -> dict:
    """A named pool is a node label; the default pool is every node without that label."""
    placement: dict = {}
    node_selector = {}
    if resources["pool"] != labels.DEFAULT_POOL:
        node_selector[labels.POOL] = resources["pool"]
    else:
        without_pool = {"matchExpressions": [{"key": labels.POOL, "operator": "DoesNotExist"}]}
        placement["affinity"] = {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [without_pool]},
        }}
    if resources.get("gpuType"):
        node_selector[labels.GPU_TYPE] = resources["gpuType"]
    if node_selector:
        placement["nodeSelector"] = node_selector
    return placement


def _workdir_volume(index: int) -> str:
    return f"workdir-{index}"
