"""Watch timing as kube-apiserver's: bookmarks, ends, timed compaction, and the silence and
refusal faults (plain HTTP, to see exactly what goes over the wire and when)."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson

from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.watch import WatchTiming
from tests.helpers import eventually

from .helpers import pod

PODS = "/api/v1/namespaces/default/pods"


async def timed_lines(http: aiohttp.ClientSession, params: dict) -> tuple[list, float]:
    """Every watch line with its arrival time (from the request), and when the stream ended."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    lines = []
    async with http.get(PODS, params={"watch": "1", **params}) as response:
        async for line in response.content:
            lines.append((loop.time() - start, orjson.loads(line)))
    return lines, loop.time() - start


async def test_idle_watch_gets_its_first_bookmark_late_and_one_before_the_end():
    # Periodic bookmarks every 0.3 s, but the first only after 1.2 s; the watch asks for 2 s.
    timing = WatchTiming(bookmark_interval=0.3, first_bookmark_delay=1.2,
                         pre_timeout_bookmark=0.2, compaction_interval=None)
    async with SimCluster(watch_timing=timing) as sim, aiohttp.ClientSession(sim.url) as http:
        lines, ended = await timed_lines(http, {"allowWatchBookmarks": "true",
                                                "timeoutSeconds": "2"})
    assert [event["type"] for _, event in lines] == ["BOOKMARK", "BOOKMARK", "BOOKMARK"]
    times = [at for at, _ in lines]
    assert times[0] >= 1.2  # nothing for the first 1.2 s: the silence a client must bear
    assert times[1] >= 1.5  # then periodic...
    assert times[2] >= 1.8  # ...and the pre-timeout one
    assert 2.0 <= ended < 4.0  # the server ends the watch at its timeoutSeconds


async def test_watch_without_timeout_lasts_a_random_span_above_the_minimum():
    timing = WatchTiming(min_request_timeout=0.2, compaction_interval=None)
    async with SimCluster(watch_timing=timing) as sim, aiohttp.ClientSession(sim.url) as http:
        spans = [(await timed_lines(http, {}))[1] for _ in range(4)]
    assert all(0.2 <= span < 1.5 for span in spans), spans
    assert max(spans) - min(spans) > 0.005, spans  # randomised, as --min-request-timeout


async def test_history_is_compacted_on_a_timer():
    timing = WatchTiming(compaction_interval=0.2)
    async with SimCluster(watch_timing=timing) as sim, aiohttp.ClientSession(sim.url) as http:
        sim.store.create("pods", pod("a"), namespace="default")
        old = sim.store.resource_version - 1
        sim.store.create("pods", pod("b"), namespace="default")

        async def first_event() -> dict:
            async with http.get(PODS, params={"watch": "1", "resourceVersion": str(old),
                                              "timeoutSeconds": "1"}) as response:
                return orjson.loads(await response.content.readline())

        expired = await eventually(first_event, lambda e: e["type"] == "ERROR", timeout=5)
    assert expired["object"]["code"] == 410 and expired["object"]["reason"] == "Expired"


async def test_silence_fault_holds_every_byte_then_resumes():
    async with SimCluster(watch_timing=WatchTiming.quick(0.1)) as sim, \
            aiohttp.ClientSession(sim.url) as http:
        loop = asyncio.get_running_loop()
        async with http.get(PODS, params={"watch": "1", "allowWatchBookmarks": "true",
                                          "timeoutSeconds": "10"}) as response:
            assert (orjson.loads(await response.content.readline()))["type"] == "BOOKMARK"
            async with http.post("/_sim/faults/watch-silence", params={"seconds": "0.6"}) as r:
                assert r.status == 200 and await r.json() == {"seconds": 0.6}
            silenced = loop.time()
            sim.store.create("pods", pod("during"), namespace="default")
            while True:
                event = orjson.loads(await response.content.readline())
                if event["type"] != "BOOKMARK":
                    break
            assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "during"
            assert loop.time() - silenced >= 0.55  # nothing at all came through meanwhile


async def test_refuse_fault_answers_403_worded_as_rbac_for_that_verb_only():
    async with SimCluster() as sim, aiohttp.ClientSession(sim.url) as http:
        async with http.post("/_sim/faults/refuse", params={"verb": "list",
                                                             "resource": "nodes"}) as r:
            assert await r.json() == {"verb": "list", "resource": "nodes"}
        async with http.get("/api/v1/nodes") as response:
            assert response.status == 403
            status = await response.json()
        assert status["reason"] == "Forbidden" and status["message"] == (
            'nodes is forbidden: User "system:serviceaccount:gpuctl-system:gpuctl-async" '
            'cannot list resource "nodes" in API group "" at the cluster scope')
        async with http.get("/api/v1/nodes", params={"watch": "1", "timeoutSeconds": "1"}) as r:
            assert r.status == 200  # watch is another verb
        async with http.get("/apis/apps/v1/namespaces/default/deployments") as response:
            assert response.status == 200
        sim.refuse(None)
        async with http.get("/api/v1/nodes") as response:
            assert response.status == 200
