"""What the caches keep of an object reads back the same through every reader."""

from __future__ import annotations

import copy

import pytest

from gpuctl_async.jobs import status as job_status
from gpuctl_async.jobs.views import job_resources
from gpuctl_async.k8s.manifests import build_manifests
from gpuctl_async.k8s.reverse import reverse_map
from gpuctl_async.k8s.slim import LAST_APPLIED, drop_server_fields, slim_gpuctl_pod
from gpuctl_async.logs import pods as log_pods
from gpuctl_async.pools.accounting import pod_requests

from .helpers import parse
from .test_reverse import RICH

MANAGED = [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}]


def lone_pod(controller: dict, status: dict) -> dict:
    """The pod a controller's template makes, as the API server returns it (defaults,
    managedFields and all)."""
    template = copy.deepcopy(controller["spec"]["template"])
    spec = template["spec"]
    for container in spec["containers"]:
        container.update(terminationMessagePath="/dev/termination-log",
                         terminationMessagePolicy="File")
        container.setdefault("env", []).append(
            {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}})
    spec.update(nodeName="n1", dnsPolicy="ClusterFirst", schedulerName="default-scheduler",
                securityContext={}, tolerations=[{"key": "x", "operator": "Exists"}])
    meta = {**template["metadata"], "name": f"{controller['metadata']['name']}-abcde",
            "namespace": controller["metadata"]["namespace"], "uid": "u-1",
            "resourceVersion": "9", "creationTimestamp": "2026-01-01T00:00:00Z",
            "generateName": "x-", "managedFields": MANAGED,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "x",
                                 "uid": "owner-1", "controller": True,
                                 "blockOwnerDeletion": True}]}
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta, "spec": spec,
            "status": status}


STATUSES = [
    {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                         "reason": "Unschedulable", "message": "0/4 nodes",
                                         "lastProbeTime": None}]},
    {"phase": "Running", "podIP": "10.0.0.2", "startTime": "2026-01-01T00:00:01Z",
     "hostIP": "10.0.0.1", "qosClass": "Guaranteed",
     "containerStatuses": [{"name": "main", "ready": True, "restartCount": 2,
                            "state": {"running": {"startedAt": "t"}},
                            "lastState": {"terminated": {"exitCode": 1}},
                            "image": "img", "imageID": "sha", "containerID": "c://1"}]},
    {"phase": "Pending", "containerStatuses": [{"name": "main", "ready": False,
                                                "state": {"waiting": {"reason":
                                                                      "ImagePullBackOff"}}}]},
]


@pytest.mark.parametrize("kind", sorted(RICH))
@pytest.mark.parametrize("status", STATUSES, ids=["unschedulable", "running", "backoff"])
def test_a_slim_gpuctl_pod_reads_back_as_the_whole_pod(kind, status):
    controller = build_manifests(parse(RICH[kind]).spec)[0]
    pod = lone_pod(controller, status)
    slim = slim_gpuctl_pod(copy.deepcopy(pod))
    assert reverse_map(slim) == reverse_map(pod)
    for read in (job_status.pod_status, job_status.pod_ready, job_status.pod_is_finished,
                 job_resources, pod_requests, log_pods.default_container, log_pods.pod_over,
                 log_pods.on_node):
        assert read(slim) == read(pod), read.__name__
    for read in (log_pods.container_state, log_pods.run_signature, log_pods.waiting_reason):
        assert read(slim, "main") == read(pod, "main"), read.__name__
    assert slim["metadata"]["ownerReferences"][0]["uid"] == "owner-1"
    assert [c["reason"] for c in slim["status"].get("conditions", [])] == \
        [c["reason"] for c in pod["status"].get("conditions", [])]
    for dropped in ("managedFields", "generateName"):
        assert dropped not in slim["metadata"]
    assert "tolerations" not in slim["spec"] and "hostIP" not in slim["status"]


def test_repeated_strings_are_shared_between_cached_objects():
    controller = build_manifests(parse(RICH["training"]).spec)[0]
    first, second = (slim_gpuctl_pod(lone_pod(controller, dict(STATUSES[1])))
                     for _ in range(2))
    # Two separately parsed pods: equal strings, one object once slimmed.
    assert first["spec"]["containers"][0]["image"] is second["spec"]["containers"][0]["image"]
    assert first["metadata"]["namespace"] is second["metadata"]["namespace"]


def test_every_other_type_loses_managed_fields_and_nodes_their_image_lists():
    node = {"kind": "Node", "metadata": {"name": "n", "managedFields": MANAGED,
                                         "annotations": {LAST_APPLIED: "{}", "a": "b"}},
            "status": {"images": [{"names": ["x"], "sizeBytes": 1}], "capacity": {"cpu": "4"}}}
    assert drop_server_fields(node) == {"kind": "Node", "metadata": {
        "name": "n", "annotations": {"a": "b"}}, "status": {"capacity": {"cpu": "4"}}}
