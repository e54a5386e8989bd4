"""The simulated scheduler: pools, GPU capacity, affinity, taints, FailedScheduling, retries."""

from __future__ import annotations

import pytest

from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.topology import build_node, default_nodes

from .helpers import wait_for

NO_POOL = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
    "nodeSelectorTerms": [{"matchExpressions": [{"key": "runwhere.ai/pool",
                                                 "operator": "DoesNotExist"}]}]}}}


@pytest.fixture
async def cluster():
    async with SimCluster(workloads=True, nodes=default_nodes(), timing=Timing.fast()) as sim:
        yield sim


def gpu_pod(name: str, gpus: int, **spec: object) -> dict:
    container = {"name": "main", "image": "cuda:12",
                 "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
    return {"metadata": {"name": name}, "spec": {"containers": [container], **spec}}


def node_of(cluster: SimCluster, name: str) -> str | None:
    return cluster.store.get("pods", name, "default")["spec"].get("nodeName")


def scheduled(cluster: SimCluster, name: str) -> dict | None:
    pod = cluster.store.get("pods", name, "default")
    return next((c for c in pod["status"].get("conditions") or []
                 if c["type"] == "PodScheduled"), None)


def failed_scheduling(cluster: SimCluster, name: str) -> list[dict]:
    return cluster.store.list("events", "default",
                              field_selector=f"involvedObject.name={name},"
                                             f"reason=FailedScheduling")


async def test_pools_gpu_types_and_affinity(cluster):
    store = cluster.store
    store.create("pods", gpu_pod("train", 8, nodeSelector={"runwhere.ai/pool": "training-pool"}),
                 namespace="default")
    store.create("pods", gpu_pod("serve", 1, nodeSelector={"runwhere.ai/gpu-type": "t4"}),
                 namespace="default")
    store.create("pods", gpu_pod("general", 1, affinity=NO_POOL), namespace="default")
    store.create("pods", gpu_pod("not-a100", 1, affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "NotIn",
                                   "values": ["NVIDIA-A100-SXM4-80GB", "NVIDIA-L4"]}]}]}}}),
                 namespace="default")
    for name in ("train", "serve", "general", "not-a100"):
        await wait_for(lambda name=name: node_of(cluster, name))
    assert node_of(cluster, "train") in ("train-a100-0", "train-a100-1")
    assert node_of(cluster, "serve") == "infer-t4-0"
    assert node_of(cluster, "general") == "general-l4-0"
    assert node_of(cluster, "not-a100") == "infer-t4-0"
    [event] = cluster.store.list("events", "default",
                                 field_selector="involvedObject.name=serve,reason=Scheduled")
    assert event["message"] == "Successfully assigned default/serve to infer-t4-0"
    assert (event["reportingComponent"], event["action"]) == ("default-scheduler", "Binding")


async def test_gpu_capacity_failed_scheduling_and_retry(cluster):
    store = cluster.store
    for name in ("a", "b"):
        store.create("pods", gpu_pod(name, 8, nodeSelector={"runwhere.ai/pool":
                                                            "training-pool"}),
                     namespace="default")
    await wait_for(lambda: node_of(cluster, "a") and node_of(cluster, "b"))
    assert {node_of(cluster, "a"), node_of(cluster, "b")} == {"train-a100-0", "train-a100-1"}
    store.create("pods", gpu_pod("c", 2, nodeSelector={"runwhere.ai/pool": "training-pool"}),
                 namespace="default")
    await wait_for(lambda: failed_scheduling(cluster, "c"))
    message = ("0/4 nodes are available: 2 Insufficient nvidia.com/gpu, 2 node(s) didn't "
               "match Pod's node affinity/selector. preemption: 0/4 nodes are available: 2 No "
               "preemption victims found for incoming pod, 2 Preemption is not helpful for "
               "scheduling.")
    [event] = failed_scheduling(cluster, "c")
    assert (event["type"], event["message"]) == ("Warning", message)
    # As kube-scheduler records them (events.k8s.io/v1, read through core/v1): no count,
    # no first/lastTimestamp, an eventTime, the reporting controller and an action.
    assert "count" not in event and "series" not in event
    assert (event["firstTimestamp"], event["lastTimestamp"]) == (None, None)
    assert event["eventTime"] and event["action"] == "Scheduling"
    assert (event["reportingComponent"], event["source"]) == ("default-scheduler", {})
    condition = scheduled(cluster, "c")
    assert (condition["status"], condition["reason"], condition["message"]) == \
        ("False", "Unschedulable", message)
    assert cluster.store.get("pods", "c", "default")["status"]["phase"] == "Pending"
    # A node change that does not help: retried, same message, the event aggregates.
    cluster.store.patch("nodes", "infer-t4-0", {"metadata": {"labels": {"x": "y"}}})
    await wait_for(lambda: (failed_scheduling(cluster, "c")[0].get("series") or {}).get(
        "count") == 2)
    series = failed_scheduling(cluster, "c")[0]["series"]
    assert series["lastObservedTime"] >= event["eventTime"] and "count" not in event
    # Capacity frees up: the pending pod is placed.
    cluster.store.delete("pods", "a", "default")
    await wait_for(lambda: node_of(cluster, "c"))
    assert scheduled(cluster, "c")["status"] == "True"


async def test_taints_unschedulable_nodes_and_no_nodes():
    tainted = build_node({"name": "tainted", "taints": [
        {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}, 0)
    cordoned = build_node({"name": "cordoned"}, 1)
    cordoned["spec"]["unschedulable"] = True
    async with SimCluster(workloads=True, nodes=[tainted, cordoned],
                          timing=Timing.fast()) as sim:
        sim.store.create("pods", gpu_pod("p", 0), namespace="default")
        await wait_for(lambda: failed_scheduling(sim, "p"))
        assert failed_scheduling(sim, "p")[0]["message"] == (
            "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, 1 "
            "node(s) were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is "
            "not helpful for scheduling.")
        tolerant = gpu_pod("q", 0, tolerations=[{"key": "dedicated", "operator": "Equal",
                                                 "value": "infra", "effect": "NoSchedule"}])
        sim.store.create("pods", tolerant, namespace="default")
        await wait_for(lambda: node_of(sim, "q") == "tainted")
    async with SimCluster(workloads=True, timing=Timing.fast()) as empty:
        empty.store.create("pods", gpu_pod("lonely", 1), namespace="default")
        await wait_for(lambda: failed_scheduling(empty, "lonely"))
        assert failed_scheduling(empty, "lonely")[0]["message"] == \
            "no nodes available to schedule pods"


async def test_cpu_memory_and_pod_count_fit():
    small = build_node({"name": "small", "cpu": 2, "memoryGi": 4}, 0)
    small["status"]["allocatable"]["pods"] = "2"
    async with SimCluster(workloads=True, nodes=[small], timing=Timing.fast()) as sim:
        big = {"metadata": {"name": "big"}, "spec": {"containers": [{
            "name": "main", "image": "x:1",
            "resources": {"requests": {"cpu": "3", "memory": "8Gi"}}}]}}
        sim.store.create("pods", big, namespace="default")
        await wait_for(lambda: failed_scheduling(sim, "big"))
        assert failed_scheduling(sim, "big")[0]["message"].startswith(
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. ")
        for name in ("one", "two", "three"):
            sim.store.create("pods", gpu_pod(name, 0), namespace="default")
        await wait_for(lambda: failed_scheduling(sim, "three"))
        assert failed_scheduling(sim, "three")[0]["message"].startswith(
            "0/1 nodes are available: 1 Too many pods.")


async def test_freed_gpus_go_to_the_highest_priority_then_the_oldest(cluster):
    store = cluster.store
    for priority_class in ({"metadata": {"name": "low"}, "value": 100},
                           {"metadata": {"name": "high"}, "value": 1000}):
        store.create("priorityclasses", priority_class)
    training = {"runwhere.ai/pool": "training-pool"}
    for name in ("hold-0", "hold-1"):
        store.create("pods", gpu_pod(name, 8, nodeSelector=training), namespace="default")
    await wait_for(lambda: node_of(cluster, "hold-0") and node_of(cluster, "hold-1"))
    # Four older low-priority pods, then one high-priority pod: all wait for 8 GPUs.
    waiting = [f"low-{n}" for n in range(4)] + ["high"]
    for name in waiting:
        store.create("pods", gpu_pod(name, 8, nodeSelector=training,
                                     priorityClassName=name.split("-")[0]),
                     namespace="default")
        await wait_for(lambda name=name: failed_scheduling(cluster, name))
    store.delete("pods", "hold-0", "default")
    await wait_for(lambda: node_of(cluster, "high"))
    assert not any(node_of(cluster, name) for name in waiting[:4])
    store.delete("pods", "hold-1", "default")
    await wait_for(lambda: any(node_of(cluster, name) for name in waiting[:4]))
    assert [bool(node_of(cluster, name)) for name in waiting[:4]] == [True, False, False, False]
