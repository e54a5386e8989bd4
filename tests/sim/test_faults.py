"""Fault injection, counters and bearer-token auth, through real clients."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest
from kubernetes_asyncio import watch
from kubernetes_asyncio.client.exceptions import ApiException

from gpuctl_async.sim.testing import SimCluster

from .helpers import make_clients, pod, raw, wait_for


async def test_counters_count_verbs_per_resource(k8s, sim):
    sim.reset_counters()
    await k8s.core.create_namespaced_pod("default", pod("p"))
    await k8s.core.read_namespaced_pod("p", "default")
    await k8s.core.list_namespaced_pod("default")
    await k8s.core.list_pod_for_all_namespaces()
    await k8s.core.patch_namespaced_pod_status("p", "default", {"status": {"phase": "Running"}})
    await k8s.apps.list_namespaced_deployment("default")
    assert sim.counters()["requests"] == {
        "create": {"pods": 1}, "get": {"pods": 1}, "list": {"pods": 2, "deployments": 1},
        "patch": {"pods/status": 1}}
    assert sim.request_count("list", "pods") == 2


async def test_open_watches_are_counted_and_closable(k8s, sim):
    async with watch.Watch(return_type="object").stream(
            k8s.core.list_namespaced_pod, "default", resource_version="1",
            timeout_seconds=10) as stream:
        first = asyncio.ensure_future(stream.__anext__())  # sends the watch request
        await wait_for(lambda: sim.open_watches("pods") == 1)
        assert sim.counters()["watches"]["open"] == {"pods": 1}
        assert sim.request_count("watch", "pods") == 1
        await k8s.core.create_namespaced_pod("default", pod("p"))
        event = await asyncio.wait_for(first, 5)
        assert event["type"] == "ADDED"
        assert sim.close_watches() == 1
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(stream.__anext__(), 5)
    await wait_for(lambda: sim.open_watches() == 0)


async def test_client_disconnect_frees_the_watch(sim, tmp_path):
    async with aiohttp.ClientSession() as session:
        response = await session.get(f"{sim.url}/api/v1/pods?watch=1&resourceVersion=1")
        await wait_for(lambda: sim.open_watches("pods") == 1)
        response.close()
    await wait_for(lambda: sim.open_watches("pods") == 0)


async def test_unavailable_answers_503_status_then_recovers(k8s, sim):
    sim.set_unavailable(30)
    with pytest.raises(ApiException) as exc:
        await k8s.core.list_namespaced_pod("default")
    assert exc.value.status == 503
    assert orjson.loads(exc.value.body)["reason"] == "ServiceUnavailable"
    sim.set_unavailable(0)
    await k8s.core.list_namespaced_pod("default")


async def test_disconnect_mode_drops_connections(k8s, sim):
    sim.set_unavailable(30, mode="disconnect")
    with pytest.raises(aiohttp.ClientError):
        await k8s.core.list_namespaced_pod("default")
    sim.set_unavailable(0)
    await k8s.core.list_namespaced_pod("default")


async def test_throttle_mode_answers_429_as_the_max_in_flight_filter(k8s, sim):
    sim.set_unavailable(30, mode="429")
    with pytest.raises(ApiException) as exc:
        await k8s.core.list_namespaced_pod("default")
    assert exc.value.status == 429
    assert exc.value.headers["Retry-After"] == "1"
    assert exc.value.body == "Too many requests, please try again later.\n"
    sim.set_unavailable(0)
    await k8s.core.list_namespaced_pod("default")


async def test_latency_is_added_to_requests(k8s, sim):
    sim.set_latency(0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await k8s.core.list_namespaced_pod("default")
    assert loop.time() - started >= 0.3
    sim.set_latency(0)


async def test_sim_http_endpoints(sim):
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim.url}/_sim/seed", json={
                "resource": "pods", "count": 30, "namespace": "bulk"}) as response:
            assert response.status == 200
            assert (await response.json())["created"] == 30
        assert len(sim.store.list("pods", "bulk")) == 30
        async with session.get(f"{sim.url}/api/v1/namespaces/bulk/pods") as response:
            assert len((await response.json())["items"]) == 30
        async with session.get(f"{sim.url}/_sim/counters") as response:
            assert (await response.json())["requests"] == {"list": {"pods": 1}}
        async with session.post(f"{sim.url}/_sim/faults/latency?seconds=0") as response:
            assert response.status == 200
        async with session.post(f"{sim.url}/_sim/faults/unavailable?seconds=30") as response:
            assert response.status == 200
        async with session.get(f"{sim.url}/api/v1/pods") as response:
            assert response.status == 503
        async with session.post(f"{sim.url}/_sim/faults/unavailable?seconds=0") as response:
            assert response.status == 200
        async with session.post(f"{sim.url}/_sim/history/compact") as response:
            rv = (await response.json())["compactedResourceVersion"]
        async with session.get(f"{sim.url}/api/v1/pods?watch=true&resourceVersion=1") as resp:
            line = orjson.loads(await resp.content.readline())
            assert line["type"] == "ERROR" and line["object"]["code"] == 410
            assert line["object"]["message"] == f"too old resource version: 1 ({rv})"
        async with session.post(f"{sim.url}/_sim/watches/close") as response:
            assert (await response.json()) == {"closed": 0}
        async with session.post(f"{sim.url}/_sim/counters/reset") as response:
            assert (await response.json())["requests"] == {}


async def test_bearer_token(tmp_path):
    async with SimCluster(token="s3cret") as sim:
        good = await make_clients(sim, tmp_path)
        bad = await make_clients(sim, tmp_path, token="wrong")
        try:
            listing = await raw(good.core.list_namespace(_preload_content=False))
            assert len(listing["items"]) == 2
            with pytest.raises(ApiException) as exc:
                await bad.core.list_namespace()
            assert exc.value.status == 401
            assert orjson.loads(exc.value.body)["reason"] == "Unauthorized"
        finally:
            await good.api.close()
            await bad.api.close()
