"""What gpuctl's objects look like, so the sim can seed a cluster that gpuctl already uses.

The simulated cluster is a cluster, not part of the service: it does not import gpuctl's
modules. It needs gpuctl's conventions only to seed gpuctl-looking workloads (benchmarks'
Running training jobs, pool-labelled GPU nodes), so it keeps its own copy of them here, as a
real cluster would hold what some earlier gpuctl wrote. ``tests/sim/test_independence.py``
pins this copy to the service's (``k8s.labels``, ``k8s.manifests.build_controller``), so a
change on one side that the other misses fails a test instead of drifting silently.
"""

from __future__ import annotations

# The NVIDIA device plugin's extended resource.
GPU_RESOURCE = "nvidia.com/gpu"
# gpuctl's label keys on nodes (pool membership, GPU type) and on its workloads.
POOL = "runwhere.ai/pool"
GPU_TYPE = "runwhere.ai/gpu-type"
JOB_TYPE = "runwhere.ai/job-type"
JOB_NAME = "runwhere.ai/job-name"
_PRIORITY = "runwhere.ai/priority"
_NAMESPACE = "runwhere.ai/namespace"
_DESCRIPTION = "runwhere.ai/description"

PRIORITY_CLASSES: tuple[dict, ...] = tuple(
    {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
     "metadata": {"name": f"gpuctl-{priority}"}, "value": value, "globalDefault": False,
     "preemptionPolicy": preemption, "description": description}
    for priority, value, preemption, description in (
        ("high", 1000000, "PreemptLowerPriority",
         "High priority for critical business applications"),
        ("medium", 500000, "PreemptLowerPriority", "Medium priority for regular microservices"),
        ("low", 100, "Never", "Low priority for batch processing tasks"),
    )
)


def training_job(name: str, namespace: str, pool: str, gpus: int, *,
                 description: str = "seeded for benchmarks") -> dict:
    """The Job gpuctl creates for a medium-priority training job of one 1-CPU/2Gi pod
    (``gpus`` GPUs) in ``pool``, running ``python train.py`` in a PyTorch image."""
    labels = {JOB_TYPE: "training", _PRIORITY: "medium", POOL: pool, _NAMESPACE: namespace,
              JOB_NAME: name}
    amounts = {"cpu": "1", "memory": "2Gi", **({GPU_RESOURCE: str(gpus)} if gpus else {})}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels),
                     "annotations": {_DESCRIPTION: description}},
        "spec": {
            "backoffLimit": 3, "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": dict(labels), "annotations": {_DESCRIPTION: description}},
                "spec": {
                    "restartPolicy": "Never", "priorityClassName": "gpuctl-medium",
                    "containers": [{
                        "name": "main",
                        "image": "pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime",
                        "imagePullPolicy": "IfNotPresent", "command": ["python", "train.py"],
                        "resources": {"requests": dict(amounts), "limits": dict(amounts)}}],
                    "nodeSelector": {POOL: pool}}}}}
