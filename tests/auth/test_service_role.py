"""The shipped ClusterRole is enough for every route, reads stay free on warm caches, and
tokens never reach a log line."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from gpuctl_async.auth.guard import ACCESS
from gpuctl_async.auth.permissions import ROUTES
from tests.auth.conftest import bearer
from tests.auth.test_tenancy import QUOTA, create_job, running, token_protocol
from tests.helpers import job_yaml


async def test_every_route_works_through_the_shipped_cluster_role_alone(auth_api, demo):
    """The admin's requests pass every check; the service itself holds only the ClusterRole
    of config/k8s/rbac.yaml, so anything it lacked would show as a 403 or a 5xx."""
    h = bearer(demo.admin)
    nodes = (await (await auth_api.get("/api/v1/nodes", headers=h)).json())["items"]
    free = [n["nodeName"] for n in nodes if n["boundPools"] == ["default"]][0]
    await create_job(auth_api, demo.admin, "every", "team-a")
    await running(auth_api, demo.admin, "every", "team-a")
    key = "example.com%2Fzone"
    calls = [
        ("GET", "/", None), ("GET", "/health", None), ("GET", "/ready", None),
        ("GET", "/api/v1/jobs", None), ("GET", "/api/v1/jobs/every", None),
        ("GET", "/api/v1/jobs/every/logs", None),
        ("POST", "/api/v1/jobs", {"yamlContent": job_yaml(name="second", namespace="team-b")}),
        ("POST", "/api/v1/jobs/batch", {"yamlContents": [job_yaml(name="third",
                                                                  namespace="team-b")]}),
        ("DELETE", "/api/v1/jobs/second", None),
        ("GET", "/api/v1/nodes", None), ("GET", "/api/v1/nodes/gpu-detail", None),
        ("GET", f"/api/v1/nodes/{free}", None),
        ("POST", f"/api/v1/nodes/{free}/pools", {"pool": "spare"}),
        ("DELETE", f"/api/v1/nodes/{free}/pools/spare", None),
        ("POST", "/api/v1/pools", {"name": "extra", "nodes": [free]}),
        ("GET", "/api/v1/pools", None), ("GET", "/api/v1/pools/extra", None),
        ("PUT", "/api/v1/pools/extra", {"description": "spare capacity"}),
        ("DELETE", "/api/v1/pools/extra", None),
        ("GET", "/api/v1/labels", None), ("GET", "/api/v1/nodes/labels?key=runwhere.ai/pool", None),
        ("GET", "/api/v1/nodes/labels/all", None),
        ("POST", f"/api/v1/nodes/{free}/labels", {"key": "example.com/zone", "value": "a"}),
        ("GET", f"/api/v1/nodes/{free}/labels", None),
        ("GET", f"/api/v1/nodes/{free}/labels/{key}", None),
        ("PUT", f"/api/v1/nodes/{free}/labels/{key}", {"value": "b"}),
        ("DELETE", f"/api/v1/nodes/{free}/labels/{key}", None),
        ("POST", "/api/v1/nodes/labels/batch", {"nodeNames": [free], "key": "example.com/rack",
                                                "value": "r1"}),
        ("POST", "/api/v1/quotas", {"yamlContent": QUOTA.format(namespace="team-q")}),
        ("GET", "/api/v1/quotas", None), ("GET", "/api/v1/quotas/team-q", None),
        ("DELETE", "/api/v1/quotas/team-q", None),
        ("GET", "/api/v1/namespaces", None), ("GET", "/api/v1/namespaces/team-q", None),
        ("DELETE", "/api/v1/namespaces/team-q", None),
        ("DELETE", "/api/v1/jobs/every", None),
        ("GET", "/metrics", None),
    ]
    for method, path, body in calls:
        resp = await auth_api.request(method, path, headers=h, json=body)
        assert resp.status < 300, (method, path, resp.status, await resp.text())
    async with auth_api.ws_connect("/api/v1/jobs-feed/ws", headers=h) as ws:
        assert (await ws.receive_json())["type"] == "snapshot"
    await create_job(auth_api, demo.admin, "streamed", "team-a")
    await running(auth_api, demo.admin, "streamed", "team-a")
    async with auth_api.ws_connect("/api/v1/jobs/streamed/logs/ws", headers=h) as ws:
        frame = await ws.receive_json()
        assert frame["type"] != "error", frame
    events = await auth_api.get("/api/v1/jobs/streamed/logs/stream", headers=h)
    assert events.status == 200, await events.text()
    # A log line (``id:``) or, if the short job already finished with nothing to tail,
    # ``event: end``: either way the stream got past every permission check.
    assert (await events.content.readline()).startswith((b"id: ", b"event: end"))
    events.close()
    async with auth_api.ws_connect("/api/v1/stream", headers=h) as ws:
        await ws.send_json({"op": "subscribe", "id": "l", "logs": {"jobId": "streamed"}})
        await ws.send_json({"op": "subscribe", "id": "j", "jobs": {}})
        frames = [await ws.receive_json() for _ in range(4)]
        assert {(f["id"], f["type"]) for f in frames} >= {("l", "subscribed"),
                                                           ("j", "subscribed")}, frames
        assert all(f["type"] != "error" for f in frames), frames
    # Every route of the permission table was exercised above.
    exercised = {(method, await _pattern(auth_api.app, method, path.partition("?")[0]))
                 for method, path, _ in calls}
    exercised |= {("GET", "/api/v1/jobs-feed/ws"), ("GET", "/api/v1/jobs/{jobId}/logs/ws"),
                  ("GET", "/api/v1/jobs/{jobId}/logs/stream"), ("GET", "/api/v1/stream")}
    assert exercised == set(ROUTES)


async def _pattern(app, method: str, path: str) -> str:
    match = await app.router.resolve(make_mocked_request(method, path))
    return match.route.resource.canonical


async def test_reads_make_no_api_calls_on_warm_caches_with_auth_on(auth_api, demo, rbac_sim):
    alice, admin = bearer(demo.tenants["alice"][1]), bearer(demo.admin)
    await create_job(auth_api, demo.admin, "warm", "team-a")
    reads = [(alice, "/api/v1/jobs"), (alice, "/api/v1/jobs/warm"),
             (alice, "/api/v1/quotas"), (admin, "/api/v1/jobs"), (admin, "/api/v1/nodes"),
             (admin, "/api/v1/pools"), (admin, "/api/v1/namespaces"), (admin, "/api/v1/quotas")]
    for headers, path in reads:  # warms tokens and decisions
        assert (await auth_api.get(path, headers=headers)).status == 200, path
    rbac_sim.reset_counters()
    for _ in range(3):
        for headers, path in reads:
            assert (await auth_api.get(path, headers=headers)).status == 200, path
    assert rbac_sim.counters()["requests"] == {}


async def test_concurrent_requests_with_a_new_token_make_one_review(auth_api, demo):
    tokens = auth_api.app[ACCESS].tokens
    before = tokens.reviews
    answers = await asyncio.gather(*(auth_api.get("/", headers=bearer(demo.tenants["bob"][1]))
                                     for _ in range(20)))
    assert [a.status for a in answers] == [200] * 20
    assert tokens.reviews == before + 1
    # A rejected token is remembered briefly (auth_failure_ttl) too.
    for _ in range(5):
        assert (await auth_api.get("/", headers=bearer("no-such-token"))).status == 401
    assert tokens.reviews == before + 2


async def test_tokens_never_reach_a_log_line(rbac_sim, demo, aiohttp_client, tmp_path, caplog):
    from tests.auth.conftest import auth_settings, start

    caplog.set_level(logging.DEBUG)
    api = await start(aiohttp_client, auth_settings(rbac_sim, demo, tmp_path, access_log=True))
    alice = demo.tenants["alice"][1]
    wrong = "wrong-token-that-must-not-be-logged"
    await create_job(api, alice, "quiet", "team-a")
    await running(api, alice, "quiet", "team-a")
    await api.get("/api/v1/jobs", headers=bearer(alice))
    await api.get("/api/v1/jobs", headers=bearer(wrong))
    await api.get("/api/v1/jobs/quiet/logs", headers=bearer(alice), params={"namespace": "team-b"})
    async with api.ws_connect("/api/v1/jobs/quiet/logs/ws",
                              protocols=("unknown.v9", token_protocol(alice))) as ws:
        await ws.receive()
    with pytest.raises(aiohttp.WSServerHandshakeError):
        async with api.ws_connect("/api/v1/jobs-feed/ws", protocols=(token_protocol(wrong),)):
            pass
    await api.delete("/api/v1/jobs/quiet", headers=bearer(alice))
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert len(caplog.records) > 5  # the session was logged
    for token in (alice, wrong, demo.service, demo.admin):
        assert token not in text
        assert token_protocol(token) not in text
