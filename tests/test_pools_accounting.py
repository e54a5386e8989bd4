"""Node accounting rules, and the slimmed pods the cache keeps for them (no cluster needed)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gpuctl_async.k8s.cache import holds_node_resources
from gpuctl_async.k8s.slim import slim_gpuctl_pod, slim_other_pod
from gpuctl_async.pools.accounting import gpu_total, node_gpu_type, node_status, pod_requests
from gpuctl_async.pools.labels import is_gpu_label


def pod(*containers: dict, init: tuple[dict, ...] = (), node: str | None = "n1",
        phase: str = "Running") -> dict:
    def spec(requests: dict) -> dict:
        return {"name": "c", "image": "busybox", "env": [{"name": "A", "value": "1"}],
                "resources": {"requests": requests, "limits": requests}}

    return {"metadata": {"name": "p", "namespace": "ns", "resourceVersion": "7",
                         "labels": {"app": "x"}, "annotations": {"big": "x" * 1000}},
            "spec": {"nodeName": node, "containers": [spec(c) for c in containers],
                     "initContainers": [spec(c) for c in init], "volumes": [{"name": "v"}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready"}]}}


def test_effective_request_is_the_larger_of_containers_and_any_init_container():
    p = pod({"cpu": "500m", "nvidia.com/gpu": "1"}, {"cpu": "1", "nvidia.com/gpu": "2"},
            init=({"cpu": "2", "nvidia.com/gpu": "1"}, {"memory": "1Gi"}))
    assert pod_requests(p) == {"cpu": Decimal(2), "nvidia.com/gpu": Decimal(3),
                               "memory": Decimal(2**30)}


def test_a_malformed_quantity_counts_as_nothing():
    assert pod_requests(pod({"nvidia.com/gpu": "lots", "cpu": "1"})) == {
        "nvidia.com/gpu": Decimal(0), "cpu": Decimal(1)}


@pytest.mark.parametrize("node, phase, held", [
    ("n1", "Running", True), ("n1", "Pending", True), ("n1", "Unknown", True),
    (None, "Pending", False), ("n1", "Succeeded", False), ("n1", "Failed", False),
])
def test_only_bound_unfinished_pods_hold_node_resources(node, phase, held):
    assert holds_node_resources(pod({"cpu": "1"}, node=node, phase=phase)) is held


def test_slim_pod_keeps_only_what_accounting_reads():
    full = pod({"nvidia.com/gpu": "1"}, init=({"cpu": "2"},))
    slim = slim_other_pod(full)
    assert slim == {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "7"},
        "spec": {"nodeName": "n1",
                 "containers": [{"resources": {"requests": {"nvidia.com/gpu": "1"}}}],
                 "initContainers": [{"resources": {"requests": {"cpu": "2"}}}]},
        "status": {"phase": "Running"}}
    assert pod_requests(slim) == pod_requests(full)


def test_node_facts():
    node = {"metadata": {"name": "n", "labels": {"runwhere.ai/gpu-type": "a100",
                                                 "nvidia.com/gpuType": "A100-80G"}},
            "status": {"capacity": {"nvidia.com/gpu": "4"},
                       "conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert node_gpu_type(node) == "A100-80G"  # nvidia.com labels first, as the original
    assert gpu_total(node) == 4
    assert node_status(node) == "not_ready"
    assert gpu_total({"metadata": {"name": "cpu-only"}, "status": {}}) == 0


@pytest.mark.parametrize("key, gpu", [
    ("nvidia.com/gpu-product", True), ("runwhere.ai/gpu-type", True), ("gpu-model", True),
    ("nvidia.com/gpu", False), ("zone", False),
])
def test_gpu_labels(key, gpu):
    assert is_gpu_label(key) is gpu


def test_pod_cache_keeps_gpuctl_pods_for_their_readers_and_others_slim_while_they_hold_a_node():
    from gpuctl_async.k8s.cache import keep_pod, shape_pod

    gpuctl = {"metadata": {"name": "a", "labels": {"runwhere.ai/job-type": "training"}},
              "spec": {"containers": [{"name": "main", "image": "x"}]}, "status": {}}
    other_bound = {"metadata": {"name": "b", "labels": {"app": "x"}},
                   "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "y"}]},
                   "status": {"phase": "Running"}}
    other_done = {**other_bound, "status": {"phase": "Succeeded"}}
    assert keep_pod(gpuctl) and shape_pod(gpuctl) == slim_gpuctl_pod(gpuctl)
    assert keep_pod(other_bound) and "labels" not in shape_pod(other_bound)["metadata"]
    assert not keep_pod(other_done)
