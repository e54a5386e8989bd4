"""Namespace routes against the simulated cluster: which are listed, detail, delete rules."""

from __future__ import annotations

import re

import pytest

from gpuctl_async.appkeys import CACHE
from gpuctl_async.sim import status as st
from tests.helpers import without_request_id

NAMESPACES = "/api/v1/namespaces"
MARKER = "runwhere.ai/namespace"


def add_namespace(sim, name: str, labels: dict | None = None) -> None:
    sim.store.create("namespaces", {"metadata": {"name": name, "labels": labels or {}}})


def training(name: str, namespace: str) -> str:
    return (f"kind: training\njob: {{name: {name}, namespace: {namespace}}}\n"
            "environment: {image: busybox}\nresources: {cpu: 1, memory: 1Gi}\n")


async def cached_namespace(api, name: str) -> None:
    """Wait until the app's cache has heard of a namespace the test made in the sim."""
    namespaces = api.app[CACHE].namespaces
    assert await namespaces.wait_for(lambda: namespaces.get("", name), timeout=5)


async def submit(api, text: str) -> None:
    resp = await api.post("/api/v1/jobs", json={"yamlContent": text})
    assert resp.status == 201, await resp.text()


async def test_list_shows_gpuctl_namespaces_and_default(api, sim):
    add_namespace(sim, "team-a", {MARKER: "true"})
    add_namespace(sim, "someone-elses")
    add_namespace(sim, "half-marked", {MARKER: "yes"})
    await submit(api, training("t1", "team-b"))  # creates team-b with the marker

    body = await (await api.get(NAMESPACES)).json()
    assert [ns["name"] for ns in body["items"]] == ["default", "team-a", "team-b"]
    assert body["total"] == 3
    team_a = body["items"][1]
    assert team_a["status"] == "Active"
    assert re.fullmatch(r"\d+[smhd]", team_a["age"])  # a duration, not a timestamp
    assert team_a["createdAt"] == sim.store.get("namespaces", "team-a")["metadata"][
        "creationTimestamp"]
    assert team_a["labels"][MARKER] == "true"

    page = await (await api.get(NAMESPACES, params={"page": 2, "pageSize": 2})).json()
    assert [ns["name"] for ns in page["items"]] == ["team-b"]


async def test_detail_has_quota_and_job_counts(api, sim):
    quota = "kind: quota\nquota: {name: q}\nnamespace: {team-a: {cpu: 8, gpu: 2}}\n"
    assert (await api.post("/api/v1/quotas", json={"yamlContent": quota})).status == 201
    await submit(api, training("t1", "team-a"))
    await submit(api, training("t2", "team-a"))
    await submit(api, training("other", "team-b"))
    sim.store.patch("jobs", "t2", {"status": {"conditions": [
        {"type": "Complete", "status": "True"}], "succeeded": 1}},
        namespace="team-a", patch_type="application/merge-patch+json", subresource="status")
    jobs = api.app[CACHE].jobs
    assert await jobs.wait_for(
        lambda: jobs.get("team-a", "t2").get("status", {}).get("succeeded") == 1, timeout=5)

    resp = await api.get(f"{NAMESPACES}/team-a")
    assert resp.status == 200
    body = await resp.json()
    assert body["name"] == "team-a"
    assert body["status"] == "Active"
    assert re.fullmatch(r"\d+[smhd]", body["age"])
    assert body["createdAt"]
    assert body["labels"][MARKER] == "true"
    assert body["jobs"] == {"total": 2, "byStatus": {"Pending": 1, "Succeeded": 1}}
    assert body["quota"]["name"] == "q"
    assert body["quota"]["hard"]["cpu"] == "8"
    assert body["quota"]["utilization"]["nvidia.com/gpu"]["hard"] == "2"


async def test_detail_of_any_namespace_and_404(api, sim):
    add_namespace(sim, "someone-elses")
    await cached_namespace(api, "someone-elses")
    body = await (await api.get(f"{NAMESPACES}/someone-elses")).json()
    assert body["quota"] is None
    assert body["jobs"] == {"total": 0, "byStatus": {}}
    resp = await api.get(f"{NAMESPACES}/nowhere")
    assert resp.status == 404
    assert (await resp.json())["error"] == "Namespace 'nowhere' not found"


@pytest.mark.parametrize("name", ["default", "someone-elses"])
async def test_namespaces_gpuctl_did_not_create_cannot_be_deleted(api, sim, name):
    if name != "default":
        add_namespace(sim, name)
    await cached_namespace(api, name)
    resp = await api.delete(f"{NAMESPACES}/{name}")
    assert resp.status == 403
    assert without_request_id(await resp.json()) == {
        "error": f"Namespace '{name}' was not created by gpuctl and cannot be deleted via this API"}
    assert not sim.store.get("namespaces", name)["metadata"].get("deletionTimestamp")


async def test_delete_unknown_namespace_is_404(api):
    resp = await api.delete(f"{NAMESPACES}/nowhere")
    assert resp.status == 404


async def test_delete_gpuctl_namespace(api, sim):
    await submit(api, training("t1", "team-z"))
    resp = await api.delete(f"{NAMESPACES}/team-z")
    assert resp.status == 200
    assert await resp.json() == {"name": "team-z", "status": "deleted",
                                 "message": "Namespace team-z deleted successfully"}
    # Read-your-writes: the next read shows it going (or gone).
    detail = await api.get(f"{NAMESPACES}/team-z")
    assert detail.status == 404 or (await detail.json())["status"] == "Terminating"
    try:
        namespace = sim.store.get("namespaces", "team-z")
    except st.StatusError as exc:
        assert exc.code == 404
    else:
        assert namespace["metadata"]["deletionTimestamp"]
    # Deleting again while it is going is not an error.
    again = await api.delete(f"{NAMESPACES}/team-z")
    assert again.status in (200, 404)
