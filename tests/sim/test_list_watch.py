"""Lists (selectors, pagination, resourceVersion) and watches, through kubernetes_asyncio."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.client.exceptions import ApiException

from .helpers import pod, raw


def names(listing: dict) -> list[str]:
    return [item["metadata"]["name"] for item in listing["items"]]


async def list_pods(k8s, namespace: str | None = "default", **kwargs) -> dict:
    if namespace is None:
        return await raw(k8s.core.list_pod_for_all_namespaces(_preload_content=False, **kwargs))
    return await raw(k8s.core.list_namespaced_pod(namespace, _preload_content=False, **kwargs))


async def events(stream: watch.Watch, count: int, timeout: float = 5.0) -> list[tuple]:
    """The next ``count`` events as (type, name) pairs (BOOKMARKs as (BOOKMARK, rv))."""
    seen = []
    async with asyncio.timeout(timeout):
        async for event in stream:
            obj = event["raw_object"]
            if event["type"] == "BOOKMARK":
                seen.append(("BOOKMARK", obj["metadata"]["resourceVersion"]))
            else:
                seen.append((event["type"], obj["metadata"]["name"]))
            if len(seen) == count:
                break
    return seen


@pytest.fixture
async def labelled(k8s):
    for name, labels in [("a", {"app": "web", "tier": "front"}), ("b", {"app": "web"}),
                         ("c", {"app": "db", "tier": "back"}), ("d", {})]:
        await k8s.core.create_namespaced_pod("default", pod(name, labels))


@pytest.mark.parametrize("selector,expected", [
    ("app=web", ["a", "b"]), ("app==web", ["a", "b"]), ("app!=web", ["c", "d"]),
    ("app in (db, web),tier", ["a", "c"]), ("tier notin (front)", ["b", "c", "d"]),
    ("tier", ["a", "c"]), ("!tier", ["b", "d"]), ("app=web,!tier", ["b"]),
    ("", ["a", "b", "c", "d"]),
])
async def test_label_selectors(k8s, labelled, selector, expected):
    assert names(await list_pods(k8s, label_selector=selector)) == expected


async def test_bad_label_selector_is_400(k8s, labelled):
    with pytest.raises(ApiException) as exc:
        await k8s.core.list_namespaced_pod("default", label_selector="app in web")
    assert exc.value.status == 400
    assert orjson.loads(exc.value.body)["reason"] == "BadRequest"


async def test_field_selectors(k8s, sim):
    await k8s.core.create_namespace({"metadata": {"name": "other"}})
    await k8s.core.create_namespaced_pod("default", pod("bound", nodeName="n1"))
    await k8s.core.create_namespaced_pod("default", pod("free"))
    await k8s.core.create_namespaced_pod("other", pod("far", nodeName="n1"))
    await k8s.core.patch_namespaced_pod_status("free", "default",
                                               {"status": {"phase": "Running"}})
    assert names(await list_pods(k8s, None, field_selector="spec.nodeName=n1")) == ["bound",
                                                                                    "far"]
    assert names(await list_pods(k8s, None, field_selector="spec.nodeName=")) == ["free"]
    assert names(await list_pods(k8s, None, field_selector="status.phase!=Running,"
                                                           "metadata.namespace=default")) == [
        "bound"]
    assert names(await list_pods(k8s, None, field_selector="metadata.name=far")) == ["far"]
    with pytest.raises(ApiException) as exc:
        await k8s.core.list_namespaced_pod("default", field_selector="spec.bogus=1")
    assert exc.value.status == 400
    assert orjson.loads(exc.value.body)["message"].endswith("field label not supported: "
                                                            "spec.bogus")


async def test_event_field_selectors_as_kubectl_describe_sends(k8s):
    target = await raw(k8s.core.create_namespaced_pod("default", pod("p"),
                                                      _preload_content=False))
    uid = target["metadata"]["uid"]
    for name, obj_name, reason, kind in [("e1", "p", "Scheduled", "Normal"),
                                         ("e2", "p", "Failed", "Warning"),
                                         ("e3", "q", "Scheduled", "Normal")]:
        await k8s.core.create_namespaced_event("default", {
            "metadata": {"name": name}, "reason": reason, "type": kind,
            "involvedObject": {"kind": "Pod", "name": obj_name, "namespace": "default",
                               "uid": uid if obj_name == "p" else "x"}})
    selector = f"involvedObject.name=p,involvedObject.namespace=default,involvedObject.uid={uid}"
    listing = await raw(k8s.core.list_namespaced_event("default", field_selector=selector,
                                                       limit=500, _preload_content=False))
    assert names(listing) == ["e1", "e2"]
    listing = await raw(k8s.core.list_namespaced_event(
        "default", field_selector="type=Warning,involvedObject.kind=Pod,reason=Failed",
        _preload_content=False))
    assert names(listing) == ["e2"]


async def test_pagination_is_a_consistent_snapshot(k8s, sim):
    sim.seed("pods", 25, namespace="default")
    first = await list_pods(k8s, limit=10)
    assert len(first["items"]) == 10
    assert first["metadata"]["remainingItemCount"] == 15
    list_rv = first["metadata"]["resourceVersion"]
    # changes after the first page do not leak into the next ones
    await k8s.core.delete_namespaced_pod("seed-pod-00015", "default")
    await k8s.core.create_namespaced_pod("default", pod("seed-pod-00012x"))
    second = await list_pods(k8s, limit=10, _continue=first["metadata"]["continue"])
    third = await list_pods(k8s, limit=10, _continue=second["metadata"]["continue"])
    assert "continue" not in third["metadata"]
    assert second["metadata"]["resourceVersion"] == list_rv
    everything = names(first) + names(second) + names(third)
    assert everything == [f"seed-pod-{i:05d}" for i in range(25)]
    fresh = await list_pods(k8s)
    assert "seed-pod-00015" not in names(fresh) and "seed-pod-00012x" in names(fresh)


async def test_expired_continue_token_is_410(k8s, sim):
    sim.seed("pods", 5, namespace="default")
    first = await list_pods(k8s, limit=2)
    await k8s.core.create_namespaced_pod("default", pod("later"))
    sim.compact()
    with pytest.raises(ApiException) as exc:
        await list_pods(k8s, limit=2, _continue=first["metadata"]["continue"])
    assert exc.value.status == 410
    assert orjson.loads(exc.value.body)["reason"] == "Expired"


async def test_list_resource_version_is_global_and_monotonic(k8s, sim):
    empty = await raw(k8s.apps.list_namespaced_deployment("default", _preload_content=False))
    await k8s.core.create_namespaced_pod("default", pod("x"))
    pods = await list_pods(k8s)
    assert int(pods["metadata"]["resourceVersion"]) == sim.store.resource_version
    assert int(pods["metadata"]["resourceVersion"]) > int(empty["metadata"]["resourceVersion"])
    assert pods["kind"] == "PodList" and pods["apiVersion"] == "v1"


async def test_watch_from_resource_version_replays_and_follows(k8s):
    await k8s.core.create_namespaced_pod("default", pod("before"))
    rv = (await list_pods(k8s))["metadata"]["resourceVersion"]
    await k8s.core.create_namespaced_pod("default", pod("one"))
    await k8s.core.patch_namespaced_pod("one", "default", {"metadata": {"labels": {"a": "b"}}})
    async with watch.Watch(return_type="object").stream(
            k8s.core.list_namespaced_pod, "default", resource_version=rv,
            timeout_seconds=10) as stream:
        assert await events(stream, 2) == [("ADDED", "one"), ("MODIFIED", "one")]
        await k8s.core.delete_namespaced_pod("one", "default")
        assert await events(stream, 1) == [("DELETED", "one")]


async def test_watch_without_resource_version_starts_with_current_state(k8s):
    await k8s.core.create_namespaced_pod("default", pod("x"))
    await k8s.core.create_namespaced_pod("default", pod("y"))
    async with watch.Watch(return_type="object").stream(
            k8s.core.list_namespaced_pod, "default", timeout_seconds=10) as stream:
        assert await events(stream, 2) == [("ADDED", "x"), ("ADDED", "y")]


async def test_watch_resume_after_stream_closed(k8s, sim):
    rv = (await list_pods(k8s))["metadata"]["resourceVersion"]
    stream = watch.Watch(return_type="object")
    async with stream.stream(k8s.core.list_namespaced_pod, "default", resource_version=rv,
                             timeout_seconds=10) as first:
        await k8s.core.create_namespaced_pod("default", pod("p1"))
        assert await events(first, 1) == [("ADDED", "p1")]
        resume_from = stream.resource_version
        assert sim.close_watches() == 1
        assert await events(first, 0) == []  # the stream ends
    await k8s.core.create_namespaced_pod("default", pod("p2"))
    async with watch.Watch(return_type="object").stream(
            k8s.core.list_namespaced_pod, "default", resource_version=resume_from,
            timeout_seconds=10) as second:
        assert await events(second, 1) == [("ADDED", "p2")]


async def test_watch_selector_transitions(k8s):
    await k8s.core.create_namespaced_pod("default", pod("t", {"app": "web"}))
    rv = (await list_pods(k8s))["metadata"]["resourceVersion"]
    async with watch.Watch(return_type="object").stream(
            k8s.core.list_namespaced_pod, "default", resource_version=rv,
            label_selector="app=web", timeout_seconds=10) as stream:
        leave = await raw(k8s.core.patch_namespaced_pod(
            "t", "default", {"metadata": {"labels": {"app": "db"}}}, _preload_content=False))
        await k8s.core.patch_namespaced_pod("t", "default",
                                            {"metadata": {"labels": {"other": "1"}}})
        await k8s.core.patch_namespaced_pod("t", "default", {"metadata": {"labels": {
            "app": "web"}}})
        seen = []
        async with asyncio.timeout(5):
            async for event in stream:
                seen.append(event)
                if len(seen) == 2:
                    break
    assert [e["type"] for e in seen] == ["DELETED", "ADDED"]
    gone = seen[0]["raw_object"]
    # the DELETED event carries the last matching content at the change's resourceVersion
    assert gone["metadata"]["labels"] == {"app": "web"}
    assert gone["metadata"]["resourceVersion"] == leave["metadata"]["resourceVersion"]
    assert seen[1]["raw_object"]["metadata"]["labels"] == {"app": "web", "other": "1"}


async def test_watch_field_selector_across_namespaces(k8s):
    await k8s.core.create_namespace({"metadata": {"name": "ns2"}})
    async with watch.Watch(return_type="object").stream(
            k8s.core.list_pod_for_all_namespaces, field_selector="spec.nodeName=n1",
            resource_version=str((await list_pods(k8s, None))["metadata"]["resourceVersion"]),
            timeout_seconds=10) as stream:
        await k8s.core.create_namespaced_pod("default", pod("elsewhere", nodeName="n2"))
        await k8s.core.create_namespaced_pod("ns2", pod("here", nodeName="n1"))
        assert await events(stream, 1) == [("ADDED", "here")]


async def test_watch_bookmarks(k8s, sim):
    rv = (await list_pods(k8s))["metadata"]["resourceVersion"]
    async with watch.Watch(return_type="object").stream(
            k8s.core.list_namespaced_pod, "default", resource_version=rv,
            allow_watch_bookmarks=True, timeout_seconds=10) as stream:
        await k8s.core.create_namespaced_config_map("default", {"metadata": {"name": "cm"}})
        seen = await events(stream, 1)
    # bookmarks carry the current (global) resourceVersion, past the unrelated configmap
    assert seen == [("BOOKMARK", str(sim.store.resource_version))]
    assert int(seen[0][1]) > int(rv)


async def test_no_bookmarks_unless_asked(k8s, sim):
    rv = (await list_pods(k8s))["metadata"]["resourceVersion"]
    async with watch.Watch(return_type="object").stream(
            k8s.core.list_namespaced_pod, "default", resource_version=rv,
            timeout_seconds=1) as stream:
        assert await events(stream, 10) == []  # the stream ends at its timeout, silent


async def test_watch_too_old_resource_version_is_410(k8s, sim):
    rv = (await list_pods(k8s))["metadata"]["resourceVersion"]
    sim.seed("pods", 60, namespace="default")  # more than the 50-event window
    with pytest.raises(ApiException) as exc:
        async with watch.Watch(return_type="object").stream(
                k8s.core.list_namespaced_pod, "default", resource_version=rv,
                timeout_seconds=5) as stream:
            await events(stream, 1)
    assert exc.value.status == 410
    assert "too old resource version" in exc.value.reason
    # within the window it still works
    recent = str(sim.store.resource_version - 5)
    async with watch.Watch(return_type="object").stream(
            k8s.core.list_namespaced_pod, "default", resource_version=recent,
            timeout_seconds=5) as stream:
        assert len(await events(stream, 5)) == 5


async def test_compaction_expires_old_watch_positions(k8s, sim):
    rv = (await list_pods(k8s))["metadata"]["resourceVersion"]
    await k8s.core.create_namespaced_pod("default", pod("x"))
    sim.compact()
    with pytest.raises(ApiException) as exc:
        async with watch.Watch(return_type="object").stream(
                k8s.core.list_namespaced_pod, "default", resource_version=rv,
                timeout_seconds=5) as stream:
            await events(stream, 1)
    assert exc.value.status == 410


async def test_send_initial_events_ends_with_annotated_bookmark(k8s, sim):
    await k8s.core.create_namespaced_pod("default", pod("x"))
    response = await k8s.core.list_namespaced_pod(
        "default", watch=True, send_initial_events=True, allow_watch_bookmarks=True,
        resource_version_match="NotOlderThan", timeout_seconds=1, _preload_content=False)
    try:
        lines = [orjson.loads(line) for line in (await response.read()).splitlines()]
    finally:
        response.release()
    assert lines[0]["type"] == "ADDED"
    assert lines[1]["type"] == "BOOKMARK"
    assert lines[1]["object"]["metadata"]["annotations"] == {
        "k8s.io/initial-events-end": "true"}
