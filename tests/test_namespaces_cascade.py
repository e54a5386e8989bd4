"""Deleting a gpuctl namespace takes its jobs with it: the job routes stop showing them."""

from __future__ import annotations

from gpuctl_async.appkeys import CACHE

TRAINING = ("kind: training\njob: {name: t1, namespace: team-z}\n"
            "environment: {image: busybox}\nresources: {cpu: 1, memory: 1Gi}\n")


def gpuctl_pod(name: str, job: str) -> dict:
    """A pod as the Job controller would make it (the simulated cluster runs no controllers
    here), so the pod-level job list has something to show."""
    return {"metadata": {"name": name, "labels": {"runwhere.ai/job-type": "training",
                                                  "runwhere.ai/job-name": job}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}]}}


async def test_deleting_a_namespace_removes_its_jobs_from_the_job_routes(api, sim):
    resp = await api.post("/api/v1/jobs", json={"yamlContent": TRAINING})
    assert resp.status == 201, await resp.text()
    sim.store.create("pods", gpuctl_pod("t1-abcde", "t1"), namespace="team-z")
    pods = api.app[CACHE].pods
    assert await pods.wait_for(lambda: pods.get("team-z", "t1-abcde"), timeout=5)
    listed = await (await api.get("/api/v1/jobs", params={"namespace": "team-z"})).json()
    assert [job["jobId"] for job in listed["items"]] == ["t1-abcde"]

    assert (await api.delete("/api/v1/namespaces/team-z")).status == 200

    cache = api.app[CACHE]
    # Kubernetes removes the contents, then the namespace; each cache hears of it on its own.
    for informer in (cache.namespaces, cache.pods, cache.jobs):
        assert await informer.wait_for(lambda i=informer: not i.in_namespace("team-z") and
                                       i.get("", "team-z") is None, timeout=5), informer.name
    listed = await (await api.get("/api/v1/jobs", params={"namespace": "team-z"})).json()
    assert listed == {"total": 0, "items": []}
    assert (await api.get("/api/v1/jobs/t1", params={"namespace": "team-z"})).status == 404
    assert (await api.get("/api/v1/namespaces/team-z")).status == 404


async def test_a_terminating_namespace_refuses_new_jobs_while_it_lasts(api, sim):
    # A real namespace stays Terminating for seconds (the sim: namespace_finalize_seconds).
    resp = await api.post("/api/v1/jobs", json={"yamlContent": TRAINING})
    assert resp.status == 201, await resp.text()
    assert (await api.delete("/api/v1/namespaces/team-z")).status == 200
    detail = await api.get("/api/v1/namespaces/team-z")
    assert detail.status == 200 and (await detail.json())["status"] == "Terminating"
    again = TRAINING.replace("name: t1", "name: t2")
    resp = await api.post("/api/v1/jobs", json={"yamlContent": again})
    body = await resp.json()
    assert resp.status == 409, body
    assert "team-z" in body["error"] and "being deleted" in body["error"]
    assert sim.store.get("namespaces", "team-z")["status"]["phase"] == "Terminating"
