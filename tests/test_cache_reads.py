"""Every read route is served from the caches, and keeps serving through an API outage."""

from __future__ import annotations

from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from tests.conftest import sim_settings
from tests.helpers import eventually, job_pod, job_yaml

OUTAGE_SECONDS = 120  # longer than the test: it is ended by hand once the outage was seen


async def seed(api) -> None:
    for kind, name in (("training", "t1"), ("inference", "i1")):
        resp = await api.post("/api/v1/jobs", json={"yamlContent": job_yaml(kind, name)})
        assert resp.status == 201, await resp.text()
    quota = "kind: quota\nquota: {name: q}\nnamespace:\n  team-a: {cpu: 4, memory: 8Gi, gpu: 2}\n"
    assert (await api.post("/api/v1/quotas", json={"yamlContent": quota})).status == 201
    await eventually(lambda: api.get("/api/v1/jobs"), lambda r: r.status == 200)


READS = [
    "/api/v1/jobs", "/api/v1/jobs?status=running&kind=training", "/api/v1/jobs/t1",
    "/api/v1/jobs/i1", "/api/v1/pools", "/api/v1/pools/training-pool", "/api/v1/pools/default",
    "/api/v1/nodes", "/api/v1/nodes/train-a100-0", "/api/v1/nodes/gpu-detail",
    "/api/v1/nodes/train-a100-0/labels", "/api/v1/nodes/train-a100-0/labels/runwhere.ai%2Fpool",
    "/api/v1/labels", "/api/v1/nodes/labels?key=runwhere.ai/pool", "/api/v1/nodes/labels/all",
    "/api/v1/quotas", "/api/v1/quotas/team-a", "/api/v1/namespaces",
    "/api/v1/namespaces/team-a", "/ready",
]


async def test_read_routes_make_no_list_or_get_requests(live_sim, live_api):
    await seed(live_api)
    live_sim.reset_counters()
    for path in READS:
        resp = await live_api.get(path)
        assert resp.status == 200, (path, await resp.text())
    requests = live_sim.counters()["requests"]
    assert "list" not in requests, requests
    assert set(requests.get("get", {})) <= {"version"}, requests  # /ready's reachability probe


async def test_outage_serves_last_state_then_catches_up(sim, aiohttp_client, tmp_path):
    settings = sim_settings(sim, tmp_path, ready_probe_interval=0.2, watch_backoff_max=1.0)
    api = await aiohttp_client(create_app(settings))
    cache = api.app[CACHE]
    assert await cache.wait_synced(timeout=10)
    resp = await api.post("/api/v1/jobs", json={"yamlContent": job_yaml("training", "steady")})
    assert resp.status == 201
    job = sim.store.get("jobs", "steady", namespace="default")
    sim.store.create("pods", job_pod(job, "aaaaa"), namespace="default")
    before = await eventually(lambda: _json(api, "/api/v1/jobs"),
                              lambda b: [i["jobId"] for i in b["items"]] == ["steady-aaaaa"])

    sim.set_unavailable(OUTAGE_SECONDS)
    sim.close_watches()
    not_ready = await eventually(lambda: api.get("/ready"), lambda r: r.status == 503)
    assert "Kubernetes" in (await not_ready.json())["error"]
    assert await _json(api, "/api/v1/jobs") == before  # the last known state, still served
    # The cluster changes while the service cannot see it.
    sim.store.create("pods", job_pod(job, "bbbbb"), namespace="default")
    sim.store.delete("pods", "steady-aaaaa", namespace="default", grace_period_seconds=0)
    health = await api.get("/health")
    assert health.status == 200

    sim.set_unavailable(0)  # the API server is back
    await eventually(lambda: api.get("/ready"), lambda r: r.status == 200, timeout=15)
    after = await eventually(lambda: _json(api, "/api/v1/jobs"),
                             lambda b: [i["jobId"] for i in b["items"]] == ["steady-bbbbb"])
    assert after["total"] == 1
    truth = {p["metadata"]["name"] for p in sim.store.list("pods", namespace="default")}
    assert {p["metadata"]["name"] for p in cache.pods.items()} == truth


async def _json(api, path: str) -> dict:
    resp = await api.get(path)
    assert resp.status == 200, await resp.text()
    return await resp.json()
