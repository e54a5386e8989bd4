"""A cache that has never synced answers 503 with the reason, never an empty 200 or a false 400.

The cases of a real cluster: a kubeconfig whose token the API server refuses, and a
ClusterRole missing ``list`` on one resource (only the reads that need that cache fail)."""

from __future__ import annotations

import aiohttp
import pytest

from gpuctl_async.app import create_app
from gpuctl_async.settings import Settings
from gpuctl_async.sim.kubeconfig import write_kubeconfig
from gpuctl_async.sim.testing import SimCluster
from tests.conftest import sim_settings
from tests.helpers import eventually, job_yaml

READS = [
    "/api/v1/jobs", "/api/v1/jobs/t1", "/api/v1/pools", "/api/v1/pools/training-pool",
    "/api/v1/nodes", "/api/v1/nodes/n1", "/api/v1/nodes/gpu-detail", "/api/v1/labels",
    "/api/v1/nodes/labels?key=runwhere.ai/pool", "/api/v1/nodes/n1/labels",
    "/api/v1/quotas", "/api/v1/quotas/team-a", "/api/v1/namespaces",
    "/api/v1/namespaces/team-a",
]


@pytest.fixture
async def guarded_sim():
    async with SimCluster(token="the-right-token") as cluster:
        yield cluster


async def test_refused_token_makes_every_read_503_with_the_cause(guarded_sim, aiohttp_client,
                                                                  tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", guarded_sim.url, token="wrong")
    api = await aiohttp_client(create_app(Settings(kubeconfig=str(kubeconfig), auth="none",
                                                   access_log=False, watch_backoff_max=0.5)))
    refused = "Kubernetes API server refused the service's credentials: Unauthorized"
    # /ready lists every reason; the first is the API server check's
    ready = (await eventually(lambda: _reasons(api), lambda r: bool(r) and refused in r[0]))[0]
    for path in READS:
        resp = await api.get(path)
        body = await resp.json()
        assert resp.status == 503, (path, body)
        assert refused in body["error"], (path, body)
        assert "the-right-token" not in body["error"] and "wrong" not in body["error"]
    assert await _error(api, "/api/v1/jobs") == f"cache of pods has not synced yet: {ready}"
    resp = await api.post("/api/v1/jobs", json={"yamlContent": job_yaml(pool="training-pool")})
    assert resp.status == 503, await resp.text()
    assert "has not synced yet" in (await resp.json())["error"]


async def test_missing_list_on_nodes_fails_only_what_needs_nodes(sim, aiohttp_client, tmp_path):
    sim.refuse("list", "nodes")
    api = await aiohttp_client(create_app(sim_settings(sim, tmp_path, watch_backoff_max=0.5,
                                                       ready_probe_interval=0.1)))
    ready = await eventually(lambda: api.get("/ready"), lambda r: r.status == 503)
    reasons = await eventually(lambda: _reasons(api),
                               lambda r: any("cache of nodes" in e for e in r))
    reason = next(e for e in reasons if "cache of nodes" in e)
    assert reason == ('cache of nodes has not synced yet: nodes is forbidden: User '
                      '"system:serviceaccount:gpuctl-system:gpuctl-async" cannot list resource '
                      '"nodes" in API group "" at the cluster scope')
    assert ready.status == 503
    for path in ("/api/v1/nodes", "/api/v1/pools", "/api/v1/labels", "/api/v1/nodes/n1"):
        resp = await api.get(path)
        assert resp.status == 503, path
        assert (await resp.json())["error"] == reason
    # The pool check of a create cannot be made: 503 with the reason, not "has no nodes".
    resp = await api.post("/api/v1/jobs", json={"yamlContent": job_yaml(pool="training-pool")})
    assert resp.status == 503 and (await resp.json())["error"] == reason
    # Reads that do not need nodes are served (their caches synced).
    resp = await eventually(lambda: api.get("/api/v1/jobs"), lambda r: r.status == 200)
    assert await resp.json() == {"total": 0, "items": []}
    assert (await api.get("/api/v1/namespaces")).status == 200

    sim.refuse(None)
    await eventually(lambda: api.get("/ready"), lambda r: r.status == 200, timeout=10)
    assert (await api.get("/api/v1/nodes")).status == 200


async def test_job_feed_is_503_before_the_upgrade(sim, aiohttp_client, tmp_path):
    sim.refuse("list", "pods")
    api = await aiohttp_client(create_app(sim_settings(sim, tmp_path, watch_backoff_max=0.5)))
    await eventually(lambda: _error(api, "/ready"), lambda e: "forbidden" in e)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.ws_connect("/api/v1/jobs-feed/ws")
    assert refused.value.status == 503
    # The same handshake by hand, to read the answer's body.
    resp = await api.get("/api/v1/jobs-feed/ws", headers={
        "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert resp.status == 503
    assert "cache of pods has not synced yet: pods is forbidden" in (await resp.json())["error"]


async def _error(api, path: str) -> str:
    resp = await api.get(path)
    return (await resp.json()).get("error", "")


async def _reasons(api) -> list[str]:
    """What /ready lists (empty when ready)."""
    return (await (await api.get("/ready")).json()).get("reasons", [])


async def test_rows_made_while_caches_fill_are_right_once_all_synced(sim, aiohttp_client,
                                                                       tmp_path, caplog):
    # The Job controller's cache syncs while pods cannot be listed: the job list's
    # subscribers must not fail on the unsynced pod cache, and the row is there afterwards.
    from gpuctl_async.appkeys import CACHE

    sim.store.create("namespaces", {"metadata": {"name": "team-f"}})
    sim.store.create("jobs", {
        "metadata": {"name": "waiting", "labels": {"runwhere.ai/job-type": "training",
                                                   "runwhere.ai/job-name": "waiting"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": "busybox:1.36"}]}}}}, namespace="team-f")
    sim.refuse("list", "pods")
    api = await aiohttp_client(create_app(sim_settings(sim, tmp_path, watch_backoff_max=0.3)))
    jobs = api.app[CACHE].jobs
    assert await jobs.wait_for(lambda: jobs.synced, timeout=5)
    assert (await api.get("/api/v1/jobs")).status == 503
    sim.refuse(None)
    resp = await eventually(lambda: api.get("/api/v1/jobs"), lambda r: r.status == 200)
    body = await resp.json()
    assert [(i["jobId"], i["namespace"]) for i in body["items"]] == [("waiting", "team-f")]
    assert not [r for r in caplog.records if "subscriber failed" in r.getMessage()]
