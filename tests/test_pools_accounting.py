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
    assert pod_requests(pod({"nvidia.com/gpu": "lots", "cpu": "1"})) == {"cpu": Decimal(1)}


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


async def test_the_usage_ledger_follows_pods_as_they_come_change_finish_and_go(sim, api):
    """node_usage reads the ledger; it must equal the sum recomputed from the cached pods."""
    from gpuctl_async.appkeys import CACHE
    from gpuctl_async.pools.accounting import NodeUsage, node_usage
    from gpuctl_async.pools.ledger import ledger_of
    from tests.helpers import add_nodes, node_manifest, settle

    await add_nodes(api, sim, node_manifest("n1"), node_manifest("n2"))
    cache = api.app[CACHE]
    ledger = ledger_of(cache)
    assert ledger is not None

    def recomputed(node: str) -> NodeUsage:
        cpu = memory = Decimal(0)
        gpus = 0
        for p in cache.pods.by_index("node", node):
            if holds_node_resources(p):
                requests = pod_requests(p)
                cpu += requests.get("cpu", Decimal(0))
                memory += requests.get("memory", Decimal(0))
                gpus += int(requests.get("nvidia.com/gpu", 0))
        return NodeUsage(cpu, memory, gpus)

    def manifest(name: str, node: str, gpu: str) -> dict:
        requests = {"cpu": "250m", "memory": "1Gi", "nvidia.com/gpu": gpu}
        return {"metadata": {"name": name}, "spec": {"nodeName": node, "containers": [
            {"name": "c", "image": "x", "resources": {"requests": requests,
                                                      "limits": requests}}]}}

    for index in range(4):
        sim.store.create("pods", manifest(f"p{index}", "n1" if index % 2 else "n2", "1"),
                         namespace="default")
    await settle(api, sim)
    assert node_usage(cache, "n1") == recomputed("n1") == NodeUsage(Decimal("0.5"),
                                                                    Decimal(2 * 2**30), 2)
    sim.store.patch("pods", "p1", {"status": {"phase": "Succeeded"}}, namespace="default",
                    patch_type="application/merge-patch+json", subresource="status")
    sim.store.delete("pods", "p2", namespace="default", grace_period_seconds=0)
    await settle(api, sim)
    for node in ("n1", "n2"):
        assert node_usage(cache, node) == recomputed(node)
    assert node_usage(cache, "n1").gpu == 1 and node_usage(cache, "n2").gpu == 1
    resp = await api.get("/api/v1/nodes/n1")
    assert resp.status == 200


async def test_node_list_entries_follow_their_node_and_its_gpu_use(sim, api):
    """The node list reuses an entry until its node or the GPUs used on it change."""
    from tests.helpers import add_nodes, node_manifest, settle

    await add_nodes(api, sim, node_manifest("n1"))

    async def entry() -> dict:
        resp = await api.get("/api/v1/nodes", params={"pageSize": 10})
        assert resp.status == 200
        return next(i for i in (await resp.json())["items"] if i["nodeName"] == "n1")

    first = await entry()
    assert first["gpuUsed"] == 0 and first["status"] == "active"
    requests = {"nvidia.com/gpu": "2"}
    sim.store.create("pods", {"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [
        {"name": "c", "image": "x", "resources": {"requests": requests, "limits": requests}}]}},
        namespace="default")
    await settle(api, sim)
    assert (await entry())["gpuUsed"] == 2
    sim.store.patch("nodes", "n1", {"status": {"conditions": [
        {"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]}},
        patch_type="application/merge-patch+json", subresource="status")
    await settle(api, sim, "nodes")
    assert (await entry())["status"] != first["status"]
