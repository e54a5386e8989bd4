"""ResourceQuota admission and status, FailedCreate and retries, PriorityClass admission."""

from __future__ import annotations

import orjson
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.topology import default_nodes

from .helpers import make_clients, raw, wait_for


@pytest.fixture
async def cluster():
    async with SimCluster(workloads=True, nodes=default_nodes(), timing=Timing.fast()) as sim:
        yield sim


def quota(name: str, hard: dict) -> dict:
    return {"metadata": {"name": name}, "spec": {"hard": hard}}


def gpu_pod(name: str, gpus: int, cpu: str = "1", memory: str = "2Gi", **spec) -> dict:
    amounts = {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus)}
    return {"metadata": {"name": name},
            "spec": {"containers": [{"name": "main", "image": "cuda:12",
                                     "resources": {"requests": amounts, "limits": amounts}}],
                     **spec}}


def used(cluster: SimCluster, name: str = "q") -> dict:
    return (cluster.store.get("resourcequotas", name, "default").get("status") or {}).get(
        "used") or {}


async def test_status_hard_and_used(cluster):
    hard = {"pods": "10", "requests.cpu": "8", "requests.memory": "64Gi",
            "requests.nvidia.com/gpu": "8", "limits.cpu": "16", "limits.memory": "64Gi",
            "cpu": "8", "memory": "64Gi"}
    cluster.store.create("resourcequotas", quota("q", hard), namespace="default")
    await wait_for(lambda: used(cluster) == {key: "0" for key in hard})
    assert cluster.store.get("resourcequotas", "q", "default")["status"]["hard"] == hard
    cluster.store.create("pods", gpu_pod("a", 2, cpu="1500m", memory="3Gi"),
                         namespace="default")
    cluster.store.create("pods", gpu_pod("b", 1, cpu="500m", memory="1Gi"),
                         namespace="default")
    expected = {"pods": "2", "requests.cpu": "2", "requests.memory": "4Gi",
                "requests.nvidia.com/gpu": "3", "limits.cpu": "2", "limits.memory": "4Gi",
                "cpu": "2", "memory": "4Gi"}
    await wait_for(lambda: used(cluster) == expected)
    cluster.store.delete("pods", "b", "default", grace_period_seconds=0)
    await wait_for(lambda: used(cluster)["requests.nvidia.com/gpu"] == "2")
    assert used(cluster)["requests.cpu"] == "1500m"


async def test_admission_refuses_what_exceeds_the_quota(cluster, tmp_path):
    cluster.store.create("resourcequotas", quota("gpu", {"requests.nvidia.com/gpu": "4",
                                                         "limits.cpu": "4"}),
                         namespace="default")
    cluster.store.create("pods", gpu_pod("first", 3), namespace="default")
    kube = await make_clients(cluster, tmp_path)
    try:
        with pytest.raises(ApiException) as refused:
            await raw(kube.core.create_namespaced_pod("default", gpu_pod("second", 2),
                                                      _preload_content=False))
    finally:
        await kube.api.close()
    assert refused.value.status == 403
    body = orjson.loads(refused.value.body)
    assert (body["reason"], body["message"]) == (
        "Forbidden", 'pods "second" is forbidden: exceeded quota: gpu, requested: '
                     'requests.nvidia.com/gpu=2, used: requests.nvidia.com/gpu=3, limited: '
                     'requests.nvidia.com/gpu=4')
    no_limits = {"metadata": {"name": "bare"},
                 "spec": {"containers": [{"name": "main", "image": "x:1"}]}}
    with pytest.raises(StatusError) as missing:
        cluster.store.create("pods", no_limits, namespace="default")
    assert missing.value.message == ('pods "bare" is forbidden: failed quota: gpu: must '
                                     'specify limits.cpu')


async def test_controllers_record_failed_create_and_retry_when_usage_drops(cluster):
    cluster.store.create("resourcequotas", quota("q", {"requests.nvidia.com/gpu": "2"}),
                         namespace="default")
    blocker = gpu_pod("blocker", 2)
    cluster.store.create("pods", blocker, namespace="default")
    template = {"metadata": {"labels": {"app": "w"}}, "spec": gpu_pod("x", 1)["spec"]}
    cluster.store.create("deployments", {
        "metadata": {"name": "w"}, "spec": {"replicas": 1, "selector": {"matchLabels": {
            "app": "w"}}, "template": template}}, namespace="default")
    cluster.store.create("jobs", {"metadata": {"name": "j"}, "spec": {"template": {
        "spec": {**gpu_pod("x", 1)["spec"], "restartPolicy": "Never"}}}}, namespace="default")

    def failed_create(kind: str) -> list[dict]:
        return cluster.store.list("events", "default",
                                  field_selector=f"reason=FailedCreate,"
                                                 f"involvedObject.kind={kind}")

    await wait_for(lambda: failed_create("ReplicaSet") and failed_create("Job"))
    for kind in ("ReplicaSet", "Job"):
        event = failed_create(kind)[0]
        assert event["type"] == "Warning" and event["message"].startswith(
            'Error creating: pods "')
        assert event["message"].endswith(
            '" is forbidden: exceeded quota: q, requested: requests.nvidia.com/gpu=1, used: '
            'requests.nvidia.com/gpu=2, limited: requests.nvidia.com/gpu=2')
        assert event["source"]["component"] in ("replicaset-controller", "job-controller")
    # retried with back-off; each refusal names a new generated pod, so a new event
    await wait_for(lambda: len(failed_create("Job")) >= 2)
    cluster.store.delete("pods", "blocker", "default", grace_period_seconds=0)
    await wait_for(lambda: len(cluster.store.list("pods", "default")) == 2)
    await wait_for(lambda: used(cluster) == {"requests.nvidia.com/gpu": "2"})


async def test_statefulset_failed_create_message(cluster):
    cluster.store.create("resourcequotas", quota("q", {"pods": "0"}), namespace="default")
    cluster.store.create("statefulsets", {
        "metadata": {"name": "nb"}, "spec": {"replicas": 1, "serviceName": "nb",
                                             "selector": {"matchLabels": {"app": "nb"}},
                                             "template": {"metadata": {"labels": {"app": "nb"}},
                                                          "spec": gpu_pod("x", 0)["spec"]}}},
        namespace="default")
    await wait_for(lambda: cluster.store.list("events", "default",
                                              field_selector="reason=FailedCreate"))
    [event] = cluster.store.list("events", "default", field_selector="reason=FailedCreate")
    assert event["message"] == (
        'create Pod nb-0 in StatefulSet nb failed error: pods "nb-0" is forbidden: exceeded '
        'quota: q, requested: pods=1, used: pods=0, limited: pods=0')
    await wait_for(lambda: cluster.store.list("events", "default",
                                              field_selector="reason=FailedCreate")[0][
        "count"] >= 2)  # same pod name: the retries aggregate
    cluster.store.patch("resourcequotas", "q", {"spec": {"hard": {"pods": "1"}}},
                        namespace="default")
    await wait_for(lambda: cluster.store.list("pods", "default"))


async def test_priority_class_admission(cluster):
    with pytest.raises(StatusError) as missing:
        cluster.store.create("pods", gpu_pod("p", 0, priorityClassName="gpuctl-high"),
                             namespace="default")
    assert (missing.value.code, missing.value.message) == (
        403, 'pods "p" is forbidden: no PriorityClass with name gpuctl-high was found')
    cluster.store.create("priorityclasses", {"metadata": {"name": "gpuctl-high"},
                                             "value": 1000000, "preemptionPolicy": "Never"})
    created = cluster.store.create("pods", gpu_pod("p", 0, priorityClassName="gpuctl-high"),
                                   namespace="default")
    assert (created["spec"]["priority"], created["spec"]["preemptionPolicy"]) == (
        1000000, "Never")
    system = cluster.store.create("pods", gpu_pod("s", 0,
                                                  priorityClassName="system-node-critical"),
                                  namespace="default")
    assert system["spec"]["priority"] == 2000001000
    plain = cluster.store.create("pods", gpu_pod("plain", 0), namespace="default")
    assert plain["spec"]["priority"] == 0
    with pytest.raises(StatusError) as mismatch:
        cluster.store.create("pods", gpu_pod("q", 0, priorityClassName="gpuctl-high",
                                             priority=5), namespace="default")
    assert "must not be provided in pod spec" in mismatch.value.message
