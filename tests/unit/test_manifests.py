"""Manifests per kind, pinned in full, and the pool placement variants."""

from __future__ import annotations

import pytest

from gpuctl_async.k8s.labels import PRIORITY_CLASSES
from gpuctl_async.k8s.manifests import build_manifests

from .helpers import document, parse

DEFAULT_POOL_AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [
        {"key": "runwhere.ai/pool", "operator": "DoesNotExist"}]}],
}}}


def manifests(doc: dict | str) -> list[dict]:
    return build_manifests(parse(doc).spec)


def test_training_job():
    assert manifests("""
kind: training
job: {name: train, namespace: team-a, priority: high, description: nightly run}
environment:
  image: pytorch:2
  imagePullSecret: regcred
  command: [python, train.py]
  args: [--epochs, 3]
  env: [{name: A, value: "1"}, {name: B, value: two}]
resources: {pool: train-pool, gpu: 2, gpuType: a100, cpu: 8, memory: 32Gi}
storage: {workdirs: [{path: /data}, {path: /ckpt}]}
""") == [{
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "train",
            "namespace": "team-a",
            "labels": {
                "runwhere.ai/job-type": "training",
                "runwhere.ai/priority": "high",
                "runwhere.ai/pool": "train-pool",
                "runwhere.ai/namespace": "team-a",
                "runwhere.ai/job-name": "train",
            },
            "annotations": {"runwhere.ai/description": "nightly run"},
        },
        "spec": {
            "backoffLimit": 3,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {
                    "labels": {
                        "runwhere.ai/job-type": "training",
                        "runwhere.ai/priority": "high",
                        "runwhere.ai/pool": "train-pool",
                        "runwhere.ai/namespace": "team-a",
                        "runwhere.ai/job-name": "train",
                    },
                    "annotations": {"runwhere.ai/description": "nightly run"},
                },
                "spec": {
                    "restartPolicy": "Never",
                    "priorityClassName": "gpuctl-high",
                    "containers": [{
                        "name": "main",
                        "image": "pytorch:2",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "train.py"],
                        "args": ["--epochs", "3"],
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}],
                        "resources": {
                            "requests": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"},
                            "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"},
                        },
                        "volumeMounts": [
                            {"name": "workdir-0", "mountPath": "/data"},
                            {"name": "workdir-1", "mountPath": "/ckpt"},
                        ],
                    }],
                    "nodeSelector": {"runwhere.ai/pool": "train-pool",
                                     "runwhere.ai/gpu-type": "a100"},
                    "imagePullSecrets": [{"name": "regcred"}],
                    "volumes": [
                        {"name": "workdir-0",
                         "hostPath": {"path": "/data", "type": "DirectoryOrCreate"}},
                        {"name": "workdir-1",
                         "hostPath": {"path": "/ckpt", "type": "DirectoryOrCreate"}},
                    ],
                },
            },
        },
    }]


def test_inference_deployment_and_service():
    assert manifests("""
kind: inference
job: {name: llm}
environment: {image: vllm}
service: {replicas: 2, port: 8080, healthCheck: /health}
resources: {gpu: 1, cpu: 4, memory: 16Gi}
""") == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "llm",
                "namespace": "default",
                "labels": {
                    "runwhere.ai/job-type": "inference",
                    "runwhere.ai/priority": "medium",
                    "runwhere.ai/pool": "default",
                    "runwhere.ai/namespace": "default",
                    "runwhere.ai/job-name": "llm",
                },
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "llm"}},
                "template": {
                    "metadata": {"labels": {
                        "runwhere.ai/job-type": "inference",
                        "runwhere.ai/priority": "medium",
                        "runwhere.ai/pool": "default",
                        "runwhere.ai/namespace": "default",
                        "runwhere.ai/job-name": "llm",
                        "app": "llm",
                    }},
                    "spec": {
                        "restartPolicy": "Always",
                        "priorityClassName": "gpuctl-medium",
                        "containers": [{
                            "name": "main",
                            "image": "vllm",
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {
                                "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                                "limits": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
                            },
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "livenessProbe": {"httpGet": {"path": "/health", "port": 8080},
                                              "initialDelaySeconds": 30, "periodSeconds": 10},
                            "readinessProbe": {"httpGet": {"path": "/health", "port": 8080},
                                               "initialDelaySeconds": 5, "periodSeconds": 10},
                        }],
                        "affinity": DEFAULT_POOL_AFFINITY,
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "svc-llm",
                "namespace": "default",
                "labels": {
                    "runwhere.ai/job-type": "inference",
                    "runwhere.ai/pool": "default",
                    "runwhere.ai/namespace": "default",
                    "runwhere.ai/job-name": "llm",
                },
            },
            "spec": {
                "type": "NodePort",
                "selector": {"app": "llm"},
                "ports": [{"port": 8080, "targetPort": 8080, "protocol": "TCP"}],
            },
        },
    ]


def test_notebook_statefulset_and_service():
    assert manifests("""
kind: notebook
job: {name: nb, namespace: alice, priority: low, description: scratch}
environment: {image: jupyter}
resources: {pool: dev, cpu: 2, memory: 8Gi}
storage: {workdirs: [{path: /home/jovyan}]}
""") == [
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {
                "name": "nb",
                "namespace": "alice",
                "labels": {
                    "runwhere.ai/job-type": "notebook",
                    "runwhere.ai/priority": "low",
                    "runwhere.ai/pool": "dev",
                    "runwhere.ai/namespace": "alice",
                    "runwhere.ai/job-name": "nb",
                },
                "annotations": {"runwhere.ai/description": "scratch"},
            },
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "nb"}},
                "serviceName": "svc-nb",
                "template": {
                    "metadata": {
                        "labels": {
                            "runwhere.ai/job-type": "notebook",
                            "runwhere.ai/priority": "low",
                            "runwhere.ai/pool": "dev",
                            "runwhere.ai/namespace": "alice",
                            "runwhere.ai/job-name": "nb",
                            "app": "nb",
                        },
                        "annotations": {"runwhere.ai/description": "scratch"},
                    },
                    "spec": {
                        "restartPolicy": "Always",
                        "priorityClassName": "gpuctl-low",
                        "containers": [{
                            "name": "main",
                            "image": "jupyter",
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {
                                "requests": {"cpu": "2", "memory": "8Gi"},
                                "limits": {"cpu": "2", "memory": "8Gi"},
                            },
                            "ports": [{"containerPort": 8888, "protocol": "TCP"}],
                            "volumeMounts": [{"name": "workdir-0", "mountPath": "/home/jovyan"}],
                        }],
                        "nodeSelector": {"runwhere.ai/pool": "dev"},
                        "volumes": [{"name": "workdir-0", "hostPath": {
                            "path": "/home/jovyan", "type": "DirectoryOrCreate"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "svc-nb",
                "namespace": "alice",
                "labels": {
                    "runwhere.ai/job-type": "notebook",
                    "runwhere.ai/pool": "dev",
                    "runwhere.ai/namespace": "alice",
                    "runwhere.ai/job-name": "nb",
                },
                "annotations": {"runwhere.ai/description": "scratch"},
            },
            "spec": {
                "type": "NodePort",
                "selector": {"app": "nb"},
                "ports": [{"port": 8888, "targetPort": 8888, "protocol": "TCP"}],
            },
        },
    ]


def test_notebook_service_port_still_targets_the_notebook():
    service = manifests(document("notebook", service={"port": 80}))[1]
    assert service["spec"]["ports"] == [{"port": 80, "targetPort": 8888, "protocol": "TCP"}]


def test_compute_deployment_and_service():
    assert manifests("""
kind: compute
job: {name: web}
environment: {image: nginx, env: {MODE: prod}}
service: {port: 80}
resources: {cpu: 500m, memory: 128Mi}
""") == [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "web",
                "namespace": "default",
                "labels": {
                    "runwhere.ai/job-type": "compute",
                    "runwhere.ai/priority": "medium",
                    "runwhere.ai/pool": "default",
                    "runwhere.ai/namespace": "default",
                    "runwhere.ai/job-name": "web",
                    "runwhere.ai/port": "80",
                },
            },
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {
                        "runwhere.ai/job-type": "compute",
                        "runwhere.ai/priority": "medium",
                        "runwhere.ai/pool": "default",
                        "runwhere.ai/namespace": "default",
                        "runwhere.ai/job-name": "web",
                        "runwhere.ai/port": "80",
                        "app": "web",
                    }},
                    "spec": {
                        "restartPolicy": "Always",
                        "priorityClassName": "gpuctl-medium",
                        "containers": [{
                            "name": "main",
                            "image": "nginx",
                            "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": "MODE", "value": "prod"}],
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "128Mi"},
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                            },
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        }],
                        "affinity": DEFAULT_POOL_AFFINITY,
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "svc-web",
                "namespace": "default",
                "labels": {
                    "runwhere.ai/job-type": "compute",
                    "runwhere.ai/pool": "default",
                    "runwhere.ai/namespace": "default",
                    "runwhere.ai/job-name": "web",
                },
            },
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}],
            },
        },
    ]


def test_compute_with_null_service_builds_defaults():
    spec = parse("kind: compute\njob: {name: c}\nenvironment: {image: x}\n"
                 "resources: {cpu: 1, memory: 1Gi}\nservice: null\n").spec
    deployment, service = build_manifests(spec)
    assert deployment["spec"]["replicas"] == 1
    assert service["spec"]["ports"][0]["port"] == 8000


def _placement(resources: dict) -> dict:
    pod = manifests(document(resources=resources))[0]["spec"]["template"]["spec"]
    return {key: pod[key] for key in ("nodeSelector", "affinity") if key in pod}


@pytest.mark.parametrize(("resources", "placement"), [
    ({}, {"affinity": DEFAULT_POOL_AFFINITY}),
    ({"pool": "default"}, {"affinity": DEFAULT_POOL_AFFINITY}),
    ({"gpuType": "a100"}, {"affinity": DEFAULT_POOL_AFFINITY,
                           "nodeSelector": {"runwhere.ai/gpu-type": "a100"}}),
    ({"pool": "p1"}, {"nodeSelector": {"runwhere.ai/pool": "p1"}}),
    ({"pool": "p1", "gpu-type": "h100"}, {"nodeSelector": {"runwhere.ai/pool": "p1",
                                                           "runwhere.ai/gpu-type": "h100"}}),
])
def test_pool_placement(resources, placement):
    assert _placement(resources) == placement


def test_gpu_zero_requests_no_gpu():
    container = manifests(document(resources={"gpu": 0}))[0]["spec"]["template"]["spec"][
        "containers"][0]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_requests_and_limits_are_separate_dicts():
    resources = manifests(document())[0]["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["requests"] is not resources["limits"]


def test_training_has_no_service():
    assert [m["kind"] for m in manifests(document())] == ["Job"]


def test_priority_classes():
    assert PRIORITY_CLASSES == (
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
         "metadata": {"name": "gpuctl-high"}, "value": 1000000, "globalDefault": False,
         "preemptionPolicy": "PreemptLowerPriority",
         "description": "High priority for critical business applications"},
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
         "metadata": {"name": "gpuctl-medium"}, "value": 500000, "globalDefault": False,
         "preemptionPolicy": "PreemptLowerPriority",
         "description": "Medium priority for regular microservices"},
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
         "metadata": {"name": "gpuctl-low"}, "value": 100, "globalDefault": False,
         "preemptionPolicy": "Never",
         "description": "Low priority for batch processing tasks"},
    )
