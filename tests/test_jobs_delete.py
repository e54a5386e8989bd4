"""DELETE /api/v1/jobs/{jobId} against the simulated cluster."""

from __future__ import annotations

from gpuctl_async.appkeys import CACHE
from gpuctl_async.sim.status import StatusError
from tests.helpers import job_pod, job_yaml, without_request_id


async def create(api, sim, kind: str, name: str, namespace: str = "default") -> dict:
    resp = await api.post("/api/v1/jobs",
                          json={"yamlContent": job_yaml(kind, name, namespace=namespace)})
    assert resp.status == 201, await resp.text()
    resource = {"training": "jobs", "inference": "deployments", "compute": "deployments",
                "notebook": "statefulsets"}[kind]
    return sim.store.get(resource, name, namespace=namespace)


def gone_or_going(sim, resource: str, name: str, namespace: str) -> bool:
    try:
        obj = sim.store.get(resource, name, namespace=namespace)
    except StatusError as exc:
        return exc.status["code"] == 404
    return bool(obj["metadata"].get("deletionTimestamp"))


async def test_delete_by_job_name_removes_controller_and_service(sim, api):
    await create(api, sim, "inference", "web")
    resp = await api.delete("/api/v1/jobs/web")
    assert resp.status == 200
    assert await resp.json() == {"jobId": "web", "name": "web", "namespace": "default",
                                 "status": "terminating",
                                 "message": "Job deletion command issued"}
    assert gone_or_going(sim, "deployments", "web", "default")
    assert gone_or_going(sim, "services", "svc-web", "default")
    listed = await (await api.get("/api/v1/jobs")).json()
    assert "web" not in [item["name"] for item in listed["items"]]


async def test_delete_by_pod_name_resolves_the_job(sim, api):
    job = await create(api, sim, "training", "trainer")
    pod = sim.store.create("pods", job_pod(job), namespace="default")
    cache = api.app[CACHE]
    assert await cache.pods.wait_for(lambda: cache.pods.get("default", pod["metadata"]["name"]), 5)
    resp = await api.delete(f"/api/v1/jobs/{pod['metadata']['name']}")
    assert resp.status == 200
    body = await resp.json()
    assert body["name"] == "trainer" and body["jobId"] == pod["metadata"]["name"]
    assert gone_or_going(sim, "jobs", "trainer", "default")


async def test_force_deletes_pods_at_once(sim, api):
    job = await create(api, sim, "training", "forced")
    node = {"metadata": {"name": "n1"}, "status": {"conditions": [
        {"type": "Ready", "status": "True"}]}}
    sim.store.create("nodes", node)
    pod = sim.store.create("pods", job_pod(job, node="n1"), namespace="default")
    cache = api.app[CACHE]
    assert await cache.pods.wait_for(lambda: cache.pods.get("default", pod["metadata"]["name"]), 5)
    sim.reset_counters()
    resp = await api.delete("/api/v1/jobs/forced", params={"force": "true"})
    assert resp.status == 200
    assert sim.request_count("delete", "pods") == 1
    try:
        sim.store.get("pods", pod["metadata"]["name"], namespace="default")
    except StatusError as exc:
        assert exc.status["code"] == 404  # grace period 0: gone, not terminating
    else:
        raise AssertionError("force-deleted pod still exists")


async def test_unknown_job_is_404(sim, api):
    resp = await api.delete("/api/v1/jobs/nothing-here")
    assert resp.status == 404
    assert without_request_id(await resp.json()) == {"error": "Job 'nothing-here' not found"}


async def test_same_name_in_two_namespaces_needs_a_namespace(sim, api):
    await create(api, sim, "training", "twin", namespace="team-a")
    await create(api, sim, "training", "twin", namespace="team-b")
    resp = await api.delete("/api/v1/jobs/twin")
    assert resp.status == 409
    message = (await resp.json())["error"]
    assert "team-a" in message and "team-b" in message and "namespace" in message
    resp = await api.delete("/api/v1/jobs/twin", params={"namespace": "team-b"})
    assert resp.status == 200
    assert gone_or_going(sim, "jobs", "twin", "team-b")
    assert not gone_or_going(sim, "jobs", "twin", "team-a")
