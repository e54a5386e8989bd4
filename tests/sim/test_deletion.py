"""Deletion semantics: grace periods, finalizers, propagation policies, GC, namespaces."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from gpuctl_async.sim.resources import resource as resource_type

from .helpers import pod, raw, wait_for


def owned(name: str, owner: dict, kind: str = "ReplicaSet", api_version: str = "apps/v1",
          **spec: object) -> dict:
    body = pod(name, **spec)
    body["metadata"]["ownerReferences"] = [{
        "apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    return body


def exists(sim, resource: str, name: str, namespace: str | None = "default"):
    return lambda: (namespace or "", name) in sim.store.table(resource_type(resource))


def gone(sim, resource: str, name: str, namespace: str | None = "default"):
    present = exists(sim, resource, name, namespace)
    return lambda: not present()


async def make_replicaset(k8s, name: str = "rs") -> dict:
    body = {"metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}
    return await raw(k8s.apps.create_namespaced_replica_set("default", body,
                                                            _preload_content=False))


async def test_delete_returns_pod_or_status(k8s):
    await k8s.core.create_namespaced_pod("default", pod("p"))
    deleted = await raw(k8s.core.delete_namespaced_pod("p", "default", _preload_content=False))
    assert deleted["kind"] == "Pod" and "deletionTimestamp" not in deleted["metadata"]
    await k8s.core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    status = await raw(k8s.core.delete_namespaced_config_map("cm", "default",
                                                             _preload_content=False))
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "cm" and status["details"]["kind"] == "configmaps"
    with pytest.raises(ApiException) as exc:
        await k8s.core.delete_namespaced_config_map("cm", "default")
    assert exc.value.status == 404


async def test_bound_pod_deletion_is_graceful(k8s, sim):
    await k8s.core.create_namespaced_pod("default", pod("p", nodeName="n1"))
    deleting = await raw(k8s.core.delete_namespaced_pod("p", "default", _preload_content=False))
    assert deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["deletionGracePeriodSeconds"] == 30
    await wait_for(gone(sim, "pods", "p"))  # max_grace_seconds stands in for the kubelet
    await k8s.core.create_namespaced_pod("default", pod("q", nodeName="n1"))
    await k8s.core.delete_namespaced_pod("q", "default", grace_period_seconds=0)
    assert gone(sim, "pods", "q")()


async def test_finalizers_hold_deletion_until_removed(k8s, sim):
    await k8s.core.create_namespaced_config_map(
        "default", {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    held = await raw(k8s.core.delete_namespaced_config_map("held", "default",
                                                           _preload_content=False))
    assert held["metadata"]["deletionTimestamp"]
    with pytest.raises(ApiException) as exc:
        await k8s.core.patch_namespaced_config_map(
            "held", "default", {"metadata": {"finalizers": ["example.com/hold", "more"]}})
    assert exc.value.status == 422
    await k8s.core.patch_namespaced_config_map(
        "held", "default", [{"op": "remove", "path": "/metadata/finalizers"}])
    assert gone(sim, "configmaps", "held")()


async def test_preconditions(k8s):
    await k8s.core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
    with pytest.raises(ApiException) as exc:
        await k8s.core.delete_namespaced_config_map(
            "cm", "default", body=client.V1DeleteOptions(
                preconditions=client.V1Preconditions(uid="not-it")))
    assert exc.value.status == 409
    assert "Precondition failed: UID in precondition: not-it" in orjson.loads(
        exc.value.body)["message"]


async def test_background_propagation_deletes_dependents(k8s, sim):
    rs = await make_replicaset(k8s)
    for i in range(3):
        await k8s.core.create_namespaced_pod("default", owned(f"rs-{i}", rs))
    await k8s.apps.delete_namespaced_replica_set("rs", "default",
                                                 propagation_policy="Background")
    assert gone(sim, "replicasets", "rs")()
    await wait_for(lambda: not sim.store.list("pods", "default"))


async def test_dependent_with_another_live_owner_survives(k8s, sim):
    first, second = await make_replicaset(k8s, "one"), await make_replicaset(k8s, "two")
    shared = owned("shared", first)
    shared["metadata"]["ownerReferences"].append({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "two",
        "uid": second["metadata"]["uid"]})
    await k8s.core.create_namespaced_pod("default", shared)
    await k8s.apps.delete_namespaced_replica_set("one", "default")
    await wait_for(lambda: len(sim.store.get("pods", "shared", "default")["metadata"][
        "ownerReferences"]) == 1)
    assert sim.store.get("pods", "shared", "default")["metadata"]["ownerReferences"][0][
        "name"] == "two"


async def test_orphan_propagation_keeps_dependents(k8s, sim):
    rs = await make_replicaset(k8s)
    await k8s.core.create_namespaced_pod("default", owned("kept", rs))
    deleting = await raw(k8s.apps.delete_namespaced_replica_set(
        "rs", "default", propagation_policy="Orphan", _preload_content=False))
    assert "orphan" in deleting["metadata"]["finalizers"]
    await wait_for(gone(sim, "replicasets", "rs"))
    assert "ownerReferences" not in sim.store.get("pods", "kept", "default")["metadata"]


async def test_jobs_orphan_their_pods_by_default(k8s, sim):
    job = await raw(k8s.batch.create_namespaced_job("default", {
        "metadata": {"name": "j"}, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}},
        _preload_content=False))
    await k8s.core.create_namespaced_pod("default", owned("j-pod", job, "Job", "batch/v1"))
    await k8s.batch.delete_namespaced_job("j", "default")
    await wait_for(gone(sim, "jobs", "j"))
    assert exists(sim, "pods", "j-pod")()
    job = await raw(k8s.batch.create_namespaced_job("default", {
        "metadata": {"name": "k"}, "spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}},
        _preload_content=False))
    await k8s.core.create_namespaced_pod("default", owned("k-pod", job, "Job", "batch/v1"))
    await k8s.batch.delete_namespaced_job("k", "default", propagation_policy="Background")
    await wait_for(gone(sim, "pods", "k-pod"))


async def test_foreground_waits_for_dependents(k8s, sim):
    rs = await make_replicaset(k8s)
    await k8s.core.create_namespaced_pod("default", owned("slow", rs, nodeName="n1"))
    deleting = await raw(k8s.apps.delete_namespaced_replica_set(
        "rs", "default", propagation_policy="Foreground", _preload_content=False))
    assert deleting["metadata"]["finalizers"] == ["foregroundDeletion"]
    # the pod is terminating gracefully; the owner stays until it is gone
    await wait_for(lambda: sim.store.get("pods", "slow", "default")["metadata"].get(
        "deletionTimestamp"))
    assert exists(sim, "replicasets", "rs")()
    await wait_for(gone(sim, "pods", "slow"))
    await wait_for(gone(sim, "replicasets", "rs"))


async def test_namespace_deletion(k8s, sim):
    await k8s.core.create_namespace({"metadata": {"name": "team"}})
    await k8s.core.create_namespaced_pod("team", pod("p", nodeName="n1"))
    await k8s.core.create_namespaced_config_map("team", {"metadata": {"name": "cm"}})
    terminating = await raw(k8s.core.delete_namespace("team", _preload_content=False))
    assert terminating["status"]["phase"] == "Terminating"
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespaced_config_map("team", {"metadata": {"name": "late"}})
    assert exc.value.status == 403
    assert "because it is being terminated" in orjson.loads(exc.value.body)["message"]
    await wait_for(gone(sim, "namespaces", "team", None))
    assert not sim.store.list("pods", "team") and not sim.store.list("configmaps", "team")


async def test_default_namespaces_exist_and_are_protected(k8s):
    listing = await raw(k8s.core.list_namespace(_preload_content=False))
    assert [n["metadata"]["name"] for n in listing["items"]] == ["default", "kube-system"]
    assert listing["items"][0]["status"] == {"phase": "Active"}
    with pytest.raises(ApiException) as exc:
        await k8s.core.delete_namespace("default")
    assert exc.value.status == 403


async def test_deletecollection(k8s, sim):
    for name, app in [("a", "x"), ("b", "x"), ("c", "y")]:
        await k8s.core.create_namespaced_pod("default", pod(name, {"app": app}))
    deleted = await raw(k8s.core.delete_collection_namespaced_pod(
        "default", label_selector="app=x", _preload_content=False))
    assert [i["metadata"]["name"] for i in deleted["items"]] == ["a", "b"]
    assert [p["metadata"]["name"] for p in sim.store.list("pods", "default")] == ["c"]


async def test_empty_namespace_stays_terminating_for_the_finalize_time():
    from gpuctl_async.sim.testing import SimCluster

    async with SimCluster(namespace_finalize_seconds=0.5) as cluster:
        loop = asyncio.get_running_loop()
        cluster.store.create("namespaces", {"metadata": {"name": "brief"}})
        started = loop.time()
        cluster.store.delete("namespaces", "brief")
        assert cluster.store.get("namespaces", "brief")["status"]["phase"] == "Terminating"
        await wait_for(gone(cluster, "namespaces", "brief", None), timeout=5)
        assert loop.time() - started >= 0.5
