"""The in-process interfaces part 2 builds on: python API, change feed, admission hooks."""

from __future__ import annotations

import asyncio
import contextlib
import random

import orjson
import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.client.exceptions import ApiException

from gpuctl_async.sim import status
from gpuctl_async.sim.store import AdmissionRequest, Store

from .helpers import pod


async def test_change_feed_follows_commits_from_python_and_http(k8s, sim):
    store = sim.store
    rv = store.resource_version
    seen = []

    async def follow():
        async with contextlib.aclosing(store.changes("pods", resource_version=rv)) as feed:
            async for event in feed:
                seen.append((event.type, event.entry.obj["metadata"]["name"],
                             (event.previous or {}).get("metadata", {}).get("labels")))
                if len(seen) == 3:
                    return

    task = asyncio.create_task(follow())
    store.create("pods", pod("py"), namespace="default")
    await k8s.core.patch_namespaced_pod("py", "default", {"metadata": {"labels": {"a": "1"}}})
    store.delete("pods", "py", "default")
    await asyncio.wait_for(task, 5)
    assert seen == [("ADDED", "py", None), ("MODIFIED", "py", {}),
                    ("DELETED", "py", {"a": "1"})]


async def test_python_writes_reach_http_watchers(k8s, sim):
    rv = str(sim.store.resource_version)
    async with watch.Watch(return_type="object").stream(
            k8s.core.list_namespaced_pod, "default", resource_version=rv,
            timeout_seconds=10) as stream:
        sim.store.create("pods", pod("from-python"), namespace="default")
        sim.store.patch("pods", "from-python", {"status": {"phase": "Running"}},
                        namespace="default", subresource="status")
        got = []
        async with asyncio.timeout(5):
            async for event in stream:
                got.append((event["type"], event["raw_object"]["status"]["phase"]))
                if len(got) == 2:
                    break
    assert got == [("ADDED", "Pending"), ("MODIFIED", "Running")]


def generated(prefix: str) -> dict:
    body = pod("")
    body["metadata"] = {"generateName": prefix}
    return body


async def test_a_taken_generated_name_is_generated_again(sim):
    """As kube-apiserver since 1.32 (RetryGenerateName): a collision is not a 409."""
    state = random.getstate()
    try:
        random.seed(4420)
        first = sim.store.create("pods", generated("worker-"), namespace="default")
        random.seed(4420)  # the same suffix comes first again
        second = sim.store.create("pods", generated("worker-"), namespace="default")
    finally:
        random.setstate(state)
    assert first["metadata"]["name"].startswith("worker-")
    assert second["metadata"]["name"].startswith("worker-")
    assert first["metadata"]["name"] != second["metadata"]["name"]


async def test_python_api_returns_private_copies(sim):
    created = sim.store.create("configmaps", {"metadata": {"name": "c"}, "data": {"k": "v"}},
                               namespace="default")
    created["data"]["k"] = "changed"
    fetched = sim.store.get("configmaps", "c", "default")
    assert fetched["data"] == {"k": "v"}
    fetched["data"]["k"] = "again"
    assert sim.store.get("configmaps", "c", "default")["data"] == {"k": "v"}
    with pytest.raises(status.StatusError) as exc:
        sim.store.update("configmaps", {**created, "metadata": {
            **created["metadata"], "resourceVersion": "1"}})
    assert exc.value.code == 409


async def test_admission_hook_can_reject_and_mutate(k8s, sim):
    def quota(request: AdmissionRequest) -> None:
        if request.operation != "CREATE":
            return
        request.obj["metadata"].setdefault("annotations", {})["admitted"] = "yes"
        if request.obj["metadata"]["name"].startswith("big"):
            raise status.forbidden(request.resource, request.obj["metadata"]["name"],
                                   "exceeded quota: gpu, requested: nvidia.com/gpu=8")

    sim.store.add_admission("pods", quota)
    with pytest.raises(ApiException) as exc:
        await k8s.core.create_namespaced_pod("default", pod("big-one"))
    assert exc.value.status == 403
    assert orjson.loads(exc.value.body)["message"] == (
        'pods "big-one" is forbidden: exceeded quota: gpu, requested: nvidia.com/gpu=8')
    created = sim.store.create("pods", pod("small"), namespace="default")
    assert created["metadata"]["annotations"] == {"admitted": "yes"}
    with pytest.raises(status.StatusError):
        sim.store.create("pods", pod("big-dry"), namespace="default", dry_run=True)


async def test_listener_sees_every_commit():
    store = Store()
    try:
        types = []
        store.add_listener("namespaces", lambda event: types.append(event.type))
        store.create("namespaces", {"metadata": {"name": "x"}})
        store.patch("namespaces", "x", {"metadata": {"labels": {"a": "b"}}})
        assert types == ["ADDED", "MODIFIED"]
    finally:
        store.close()
