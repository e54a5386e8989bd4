"""Kubernetes objects back to gpuctl YAML: the round trip and what the cluster adds."""

from __future__ import annotations

import copy

import pytest
import yaml

from gpuctl_async.k8s.manifests import build_manifests
from gpuctl_async.k8s.reverse import reverse_map
from gpuctl_async.documents.examples import JOB_EXAMPLES

from .helpers import parse

RICH = {
    "training": """
kind: training
job: {name: t, namespace: ns1, priority: low, description: "multi\\nline"}
environment:
  image: img
  imagePullSecret: regcred
  command: [sh, -c]
  args: [echo hi]
  env: {A: "1", B: ""}
resources: {pool: p1, gpu: 8, gpu_type: h100, cpu: 1.5, memory: 1024Mi}
storage: {workdirs: [{path: /a}, {path: /b}]}
""",
    "inference": """
kind: inference
job: {name: i, priority: high}
environment: {image: img}
service: {replicas: 3, port: 9000, health_check: /ready}
resources: {gpu: 1, gpuType: a10, cpu: 250m, memory: 1G}
storage: {workdirs: [{path: /models}]}
""",
    "notebook": """
kind: notebook
job: {name: n}
environment: {image: img}
service: {port: 30000}
resources: {pool: dev, cpu: 2, memory: 4Gi}
""",
    "compute": """
kind: compute
job: {name: c, namespace: web}
environment: {image: nginx}
service:
resources: {cpu: 1, memory: 64Mi}
""",
}


def round_trip(text: str) -> tuple[dict, dict]:
    first = parse(text)
    document = reverse_map(*build_manifests(first.spec))
    second = parse(yaml.safe_dump(document, sort_keys=False))
    return first.spec, second.spec


@pytest.mark.parametrize("text", [*JOB_EXAMPLES.values(), *RICH.values()],
                         ids=[*(f"example-{k}" for k in JOB_EXAMPLES), *(f"rich-{k}" for k in RICH)])
def test_round_trip(text):
    first, second = round_trip(text)
    assert second == first


def test_reverse_document_shape():
    deployment, service = build_manifests(parse(RICH["inference"]).spec)
    assert reverse_map(deployment, service) == {
        "kind": "inference",
        "version": "v0.1",
        "job": {"name": "i", "namespace": "default", "priority": "high"},
        "environment": {"image": "img", "command": [], "args": [], "env": []},
        "resources": {"pool": "default", "gpu": 1, "gpuType": "a10", "cpu": "250m",
                      "memory": "1G"},
        "service": {"replicas": 3, "port": 9000, "healthCheck": "/ready"},
        "storage": {"workdirs": [{"path": "/models"}]},
    }


def test_whole_cpu_reads_back_as_a_number():
    job = build_manifests(parse(RICH["compute"]).spec)[0]
    assert reverse_map(job)["resources"]["cpu"] == 1


def test_objects_as_the_cluster_returns_them():
    """Server-filled fields (defaults, status, uid) and canonicalised quantities change nothing."""
    deployment, service = copy.deepcopy(build_manifests(parse(RICH["compute"]).spec))
    deployment["metadata"].update(uid="u1", resourceVersion="7", generation=1)
    deployment["spec"].update(revisionHistoryLimit=10, progressDeadlineSeconds=600)
    pod = deployment["spec"]["template"]["spec"]
    pod.update(dnsPolicy="ClusterFirst", schedulerName="default-scheduler",
               terminationGracePeriodSeconds=30)
    pod["containers"][0]["terminationMessagePath"] = "/dev/termination-log"
    deployment["status"] = {"replicas": 1, "readyReplicas": 1}
    service["spec"].update(clusterIP="10.0.0.5")
    service["spec"]["ports"][0]["nodePort"] = 31000
    assert reverse_map(deployment, service) == reverse_map(*build_manifests(
        parse(RICH["compute"]).spec))


def test_without_the_service_the_port_comes_from_the_container():
    deployment = build_manifests(parse(RICH["inference"]).spec)[0]
    assert reverse_map(deployment)["service"]["port"] == 9000


def test_notebook_without_service_defaults_to_8888():
    statefulset = build_manifests(parse(RICH["notebook"]).spec)[0]
    assert reverse_map(statefulset)["service"] == {"port": 8888}


def test_pod_maps_to_its_job():
    job = build_manifests(parse(RICH["training"]).spec)[0]
    template = job["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "t-abcde", "namespace": "ns1", **template["metadata"]},
           "spec": template["spec"]}
    assert reverse_map(pod) == reverse_map(job)


def test_value_from_env_vars_are_left_out():
    job = build_manifests(parse(RICH["training"]).spec)[0]
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s",
                                                                             "key": "k"}}})
    assert [var["name"] for var in reverse_map(job)["environment"]["env"]] == ["A", "B"]


def test_objects_of_the_original_gpuctl():
    """No job-name label, camelCase gpuType selector, empty annotations."""
    job = {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "old", "namespace": "default", "annotations": {},
                     "labels": {"runwhere.ai/job-type": "training", "runwhere.ai/pool": "p1"}},
        "spec": {"template": {"spec": {
            "priorityClassName": "gpuctl-high",
            "nodeSelector": {"runwhere.ai/pool": "p1", "runwhere.ai/gpuType": "a100"},
            "containers": [{"name": "main", "image": "img", "command": [], "args": [],
                            "resources": {"limits": {"cpu": 4, "memory": "8Gi"}}}],
        }}},
    }
    assert reverse_map(job) == {
        "kind": "training", "version": "v0.1",
        "job": {"name": "old", "namespace": "default", "priority": "high"},
        "environment": {"image": "img", "command": [], "args": [], "env": []},
        "resources": {"pool": "p1", "gpu": 0, "gpuType": "a100", "cpu": 4, "memory": "8Gi"},
    }


@pytest.mark.parametrize(("kind", "extra_labels", "expected"), [
    ("Job", {}, "training"),
    ("StatefulSet", {}, "notebook"),
    ("Deployment", {}, "inference"),
    ("Deployment", {"runwhere.ai/port": "80"}, "compute"),
    ("ReplicaSet", {}, "unknown"),
])
def test_kind_without_the_job_type_label(kind, extra_labels, expected):
    document = reverse_map({"kind": kind, "metadata": {"name": "x", "labels": extra_labels}})
    assert document["kind"] == expected


def test_unknown_kind_has_only_kind_and_job():
    assert reverse_map({"kind": "ReplicaSet", "metadata": {"name": "x", "namespace": "n"}}) == {
        "kind": "unknown", "version": "v0.1",
        "job": {"name": "x", "namespace": "n", "priority": "medium"},
    }
