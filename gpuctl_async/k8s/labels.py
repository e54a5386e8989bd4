"""Every label, annotation and resource key gpuctl reads or writes, and its PriorityClasses.

Keys and values match the original gpuctl (original-gpuctl-behavior.md §2.7, §4.4), except
that pods select GPU types on ``runwhere.ai/gpu-type``, the key pool creation writes.
"""

from __future__ import annotations

PREFIX = "runwhere.ai/"

# On controllers, pod templates and Services: which gpuctl job an object belongs to.
JOB_TYPE = PREFIX + "job-type"
JOB_NAME = PREFIX + "job-name"
PRIORITY = PREFIX + "priority"
POOL = PREFIX + "pool"
# Compute controllers and pods: the service port, as a string.
PORT = PREFIX + "port"
# On workloads and ResourceQuotas its value is the namespace name; on Namespace objects the
# value NAMESPACE_MARKER marks a namespace gpuctl created.
NAMESPACE = PREFIX + "namespace"
NAMESPACE_MARKER = "true"
QUOTA = PREFIX + "quota"
# Nodes: pool membership is POOL; GPU type as written by pool creation.
GPU_TYPE = PREFIX + "gpu-type"
# Node labels that may carry a GPU type, in the order they are consulted for display.
NODE_GPU_TYPE_LABELS = ("nvidia.com/gpu-type", "nvidia.com/gpuType", GPU_TYPE)
# Selector label of inference, notebook and compute pods.
APP = "app"

DESCRIPTION_ANNOTATION = PREFIX + "description"
# On a namespace that gpuctl marked but did not create (a quota adopted it): it is listed as
# gpuctl's, but never deleted through the API.
ADOPTED_ANNOTATION = PREFIX + "namespace-adopted"
POOL_DESCRIPTION_ANNOTATION = PREFIX + "pool-description"

DEFAULT_POOL = "default"
GPU_RESOURCE = "nvidia.com/gpu"
# Kubernetes enforces quota on extended resources only in the requests.<name> form.
QUOTA_GPU_RESOURCE = "requests." + GPU_RESOURCE

PRIORITY_CLASS_PREFIX = "gpuctl-"
_PRIORITY_CLASSES = (
    ("high", 1000000, "PreemptLowerPriority", "High priority for critical business applications"),
    ("medium", 500000, "PreemptLowerPriority", "Medium priority for regular microservices"),
    ("low", 100, "Never", "Low priority for batch processing tasks"),
)


def priority_class_name(priority: str) -> str:
    return PRIORITY_CLASS_PREFIX + priority


PRIORITY_CLASSES: tuple[dict, ...] = tuple(
    {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": priority_class_name(priority)},
        "value": value,
        "globalDefault": False,
        "preemptionPolicy": preemption,
        "description": description,
    }
    for priority, value, preemption, description in _PRIORITY_CLASSES
)
