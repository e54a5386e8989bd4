"""After a write, the next read agrees with it, even when the watch feeding the caches lags.

The simulated cluster holds every watch event back by LAG seconds; without the service
waiting for its caches after a write, each of these reads would show the old state."""

from __future__ import annotations

from gpuctl_async.appkeys import CACHE
from tests.helpers import add_nodes, job_pod, job_yaml, node_manifest

LAG = 0.4


async def test_a_created_job_is_listed_and_found_at_once(sim, api):
    sim.set_watch_delay(LAG)
    resp = await api.post("/api/v1/jobs", json={"yamlContent": job_yaml("inference", "fresh")})
    assert resp.status == 201
    assert (await api.get("/api/v1/jobs/fresh")).status == 200
    listed = await (await api.get("/api/v1/jobs")).json()
    assert [i["name"] for i in listed["items"]] == ["fresh"]


async def test_a_deleted_job_is_not_listed_as_running(sim, api):
    resp = await api.post("/api/v1/jobs", json={"yamlContent": job_yaml("training", "gone")})
    assert resp.status == 201
    job = sim.store.get("jobs", "gone", namespace="default")
    sim.store.create("nodes", node_manifest("n1"))
    pod = sim.store.create("pods", job_pod(job, "aaaaa", node="n1"), namespace="default")
    cache = api.app[CACHE]
    assert await cache.pods.wait_for(lambda: cache.pods.get("default", "gone-aaaaa"), 5)
    sim.store.patch("pods", pod["metadata"]["name"], {"status": {"phase": "Running"}},
                    namespace="default", patch_type="application/merge-patch+json",
                    subresource="status")
    assert await cache.pods.wait_for(
        lambda: cache.pods.get("default", "gone-aaaaa")["status"].get("phase") == "Running", 5)
    sim.set_watch_delay(LAG)
    assert (await api.delete("/api/v1/jobs/gone")).status == 200
    listed = await (await api.get("/api/v1/jobs")).json()
    assert [(i["jobId"], i["status"]) for i in listed["items"]] == [("gone-aaaaa", "Terminating")]


async def test_a_label_write_is_read_back_at_once(sim, api):
    await add_nodes(api, sim, node_manifest("n1"))
    sim.set_watch_delay(LAG)
    resp = await api.post("/api/v1/nodes/n1/labels", json={"key": "team", "value": "vision"})
    assert resp.status == 200, await resp.text()
    labels = await (await api.get("/api/v1/nodes/n1/labels")).json()
    assert labels["labels"]["team"] == "vision"
    resp = await api.post("/api/v1/pools", json={"name": "lagged", "nodes": ["n1"]})
    assert resp.status == 201, await resp.text()
    assert (await api.get("/api/v1/pools/lagged")).status == 200


async def test_a_quota_is_read_back_at_once(sim, api):
    sim.set_watch_delay(LAG)
    quota = "kind: quota\nquota: {name: q}\nnamespace:\n  team-a: {cpu: 4, memory: 8Gi, gpu: 2}\n"
    assert (await api.post("/api/v1/quotas", json={"yamlContent": quota})).status == 201
    assert (await api.get("/api/v1/quotas/team-a")).status == 200
    names = [n["name"] for n in (await (await api.get("/api/v1/namespaces")).json())["items"]]
    assert "team-a" in names


async def test_a_change_the_cache_has_not_seen_yet_is_not_overwritten(sim, api):
    """Another writer (a second replica, kubectl) labels the node while this service's cache
    lags: the service's own check passes on stale data, but its patch carries the node's
    resourceVersion, is refused as stale, and the check is made again on fresh data."""
    await add_nodes(api, sim, node_manifest("n1"))
    sim.set_watch_delay(LAG)
    sim.store.patch("nodes", "n1", {"metadata": {"labels": {"owner": "other-team"}}},
                    patch_type="application/merge-patch+json")
    resp = await api.post("/api/v1/nodes/n1/labels", json={"key": "owner", "value": "us"})
    assert resp.status == 409, await resp.text()
    assert sim.store.get("nodes", "n1")["metadata"]["labels"]["owner"] == "other-team"
