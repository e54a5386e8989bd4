"""Tenants see and change only what their Kubernetes RBAC allows; an admin sees everything.

HTTP and WebSocket to the app; the app talks to the simulated cluster with RBAC on, as the
ServiceAccount of config/k8s/rbac.yaml, impersonating callers for writes.
"""

from __future__ import annotations

import base64

import aiohttp
import orjson
import pytest

from tests.auth.conftest import auth_settings, bearer, start
from tests.helpers import eventually, job_yaml

QUOTA = """kind: quota
quota:
  name: team-quota
namespace:
  {namespace}:
    cpu: 8
    memory: 32Gi
    gpu: 2
"""


def token_protocol(token: str) -> str:
    encoded = base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
    return f"base64url.bearer.authorization.k8s.io.{encoded}"


async def create_job(api, token: str, name: str, namespace: str, kind: str = "training"):
    resp = await api.post("/api/v1/jobs", headers=bearer(token),
                          json={"yamlContent": job_yaml(kind, name, namespace=namespace)})
    assert resp.status == 201, await resp.text()


async def running(api, token: str, name: str, namespace: str) -> dict:
    async def probe():
        resp = await api.get(f"/api/v1/jobs/{name}", headers=bearer(token),
                             params={"namespace": namespace})
        return await resp.json()
    return await eventually(probe, lambda d: d.get("status") in ("Running", "Succeeded"),
                            timeout=15)


async def first_log_frame(ws) -> dict:
    async for message in ws:
        frame = orjson.loads(message.data)
        if frame["type"] in ("log", "logs"):
            return frame
    raise AssertionError("the log stream ended without a line")


async def test_tenant_creates_lists_reads_streams_and_deletes_in_own_namespace(auth_api, demo):
    alice = demo.tenants["alice"][1]
    await create_job(auth_api, alice, "mine", "team-a", kind="inference")  # runs, and logs
    listed = await (await auth_api.get("/api/v1/jobs", headers=bearer(alice))).json()
    assert {item["name"] for item in listed["items"]} == {"mine"}
    await running(auth_api, alice, "mine", "team-a")

    async def tail():
        resp = await auth_api.get("/api/v1/jobs/mine/logs", headers=bearer(alice))
        assert resp.status == 200, await resp.text()
        return (await resp.json())["logs"]
    assert await eventually(tail, bool)

    async with auth_api.ws_connect("/api/v1/jobs/mine/logs/ws", headers=bearer(alice)) as ws:
        assert (await first_log_frame(ws))["type"] in ("log", "logs")

    resp = await auth_api.delete("/api/v1/jobs/mine", headers=bearer(alice))
    assert resp.status == 200, await resp.text()


async def test_tenant_sees_nothing_of_another_namespace(auth_api, demo):
    alice, admin = demo.tenants["alice"][1], demo.admin
    await create_job(auth_api, admin, "theirs", "team-b")
    await create_job(auth_api, alice, "mine", "team-a")
    resp = await auth_api.post("/api/v1/quotas", headers=bearer(admin),
                               json={"yamlContent": QUOTA.format(namespace="team-b")})
    assert resp.status == 201, await resp.text()
    await running(auth_api, admin, "theirs", "team-b")
    h = bearer(alice)

    listed = await (await auth_api.get("/api/v1/jobs", headers=h)).json()
    assert {item["namespace"] for item in listed["items"]} == {"team-a"}
    resp = await auth_api.get("/api/v1/jobs", headers=h, params={"namespace": "team-b"})
    assert resp.status == 403
    assert 'cannot list resource "pods"' in (await resp.json())["error"]
    assert '"team-b"' in (await resp.json())["error"]

    # Detail, logs and delete: a search finds nothing; naming the namespace is a 403.
    for method, path, permission in (("GET", "/api/v1/jobs/theirs", 'get resource "pods"'),
                                     ("GET", "/api/v1/jobs/theirs/logs",
                                      'get resource "pods/log"'),
                                     ("DELETE", "/api/v1/jobs/theirs", 'get resource "pods"')):
        resp = await auth_api.request(method, path, headers=h)
        assert resp.status == 404, (method, path, await resp.text())
        resp = await auth_api.request(method, path, headers=h, params={"namespace": "team-b"})
        assert resp.status == 403, (method, path)
        assert permission in (await resp.json())["error"]

    for params, code in (({}, 4404), ({"namespace": "team-b"}, 4403)):
        async with auth_api.ws_connect("/api/v1/jobs/theirs/logs/ws", headers=h,
                                       params=params) as ws:
            frame = await ws.receive_json()
            assert frame["type"] == "error"
            await ws.receive()
            assert ws.close_code == code

    async with auth_api.ws_connect("/api/v1/jobs-feed/ws", headers=h) as ws:
        snapshot = await ws.receive_json()
        assert {item["namespace"] for item in snapshot["items"]} == {"team-a"}
    async with auth_api.ws_connect("/api/v1/jobs-feed/ws", headers=h,
                                   params={"namespace": "team-b"}) as ws:
        assert (await ws.receive_json())["type"] == "error"
        await ws.receive()
        assert ws.close_code == 4403

    quotas = await (await auth_api.get("/api/v1/quotas", headers=h)).json()
    assert quotas["items"] == []
    assert (await auth_api.get("/api/v1/quotas/team-b", headers=h)).status == 403
    assert (await auth_api.delete("/api/v1/quotas/team-b", headers=h)).status == 403

    # The admin sees both namespaces, and team-b's job is untouched.
    everything = await (await auth_api.get("/api/v1/jobs", headers=bearer(admin))).json()
    assert {item["namespace"] for item in everything["items"]} == {"team-a", "team-b"}
    quotas = await (await auth_api.get("/api/v1/quotas", headers=bearer(admin))).json()
    assert [q["namespace"] for q in quotas["items"]] == ["team-b"]


async def test_tenant_cannot_create_or_touch_cluster_objects(auth_api, demo, rbac_sim):
    alice = demo.tenants["alice"][1]
    h = bearer(alice)
    resp = await auth_api.post("/api/v1/jobs", headers=h,
                               json={"yamlContent": job_yaml(name="x", namespace="team-b")})
    assert resp.status == 403
    assert 'cannot create resource "jobs" in API group "batch"' in (await resp.json())["error"]
    # Refused before the service wrote anything with its own rights.
    assert not [pc for pc in rbac_sim.store.list("priorityclasses")
                if pc["metadata"]["name"].startswith("gpuctl-")]
    assert (await auth_api.get("/api/v1/nodes", headers=h)).status == 403
    assert (await auth_api.delete("/api/v1/namespaces/team-a", headers=h)).status == 403
    resp = await auth_api.post("/api/v1/pools", headers=h,
                               json={"name": "mine", "nodes": ["gpu-node-1"]})
    assert resp.status == 403


async def test_no_wrong_or_expired_token_is_401_and_open_routes_need_none(auth_api, rbac_sim):
    for headers in ({}, bearer("not-a-token"), {"Authorization": "Basic YTpi"}):
        resp = await auth_api.get("/api/v1/jobs", headers=headers)
        assert resp.status == 401, headers
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert set(await resp.json()) == {"error", "requestId"}
    # A service-account token that expired a second ago (the sim mints any lifetime).
    expired = rbac_sim.service_account_token("team-a", "default", expiration_seconds=-1)
    resp = await auth_api.get("/api/v1/jobs", headers=bearer(expired))
    assert resp.status == 401 and "WWW-Authenticate" in resp.headers
    for path in ("/health", "/ready", "/docs", "/api/docs/openapi.json"):
        assert (await auth_api.get(path)).status == 200, path


async def test_websocket_token_as_subprotocol_is_never_selected(auth_api, demo):
    alice = demo.tenants["alice"][1]
    async with auth_api.ws_connect("/api/v1/jobs-feed/ws",
                                   protocols=("gpuctl.v1", token_protocol(alice))) as ws:
        assert ws.protocol == "gpuctl.v1"
        assert (await ws.receive_json())["type"] == "snapshot"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        async with auth_api.ws_connect("/api/v1/jobs-feed/ws",
                                       protocols=("gpuctl.v1", token_protocol("wrong"))):
            pass
    assert refused.value.status == 401


async def test_removed_binding_takes_effect_within_the_ttl(rbac_sim, demo, aiohttp_client,
                                                          tmp_path):
    api = await start(aiohttp_client, auth_settings(rbac_sim, demo, tmp_path, authz_ttl=0.3))
    alice = bearer(demo.tenants["alice"][1])
    params = {"namespace": "team-a"}
    assert (await api.get("/api/v1/jobs", headers=alice, params=params)).status == 200
    async with api.ws_connect("/api/v1/jobs-feed/ws", headers=alice, params=params) as feed:
        assert (await feed.receive_json())["type"] == "snapshot"
        rbac_sim.unbind("User", "alice", "edit", namespace="team-a")
        await eventually(lambda: api.get("/api/v1/jobs", headers=alice, params=params),
                         lambda resp: resp.status == 403, timeout=5)
        # The open feed learns it at its next change.
        await create_job(api, demo.admin, "after", "team-a")
        frames = []
        while not frames or frames[-1]["type"] != "error":
            frames.append(await feed.receive_json(timeout=5))
        assert all(f["type"] in ("ADDED", "MODIFIED", "DELETED", "error") for f in frames)
        # The close frame's code: the client's own close_code turns 1006 when the server has
        # already dropped the connection by the time the client echoes the close.
        closing = await feed.receive()
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 4403)


async def test_writes_are_audited_as_the_caller(auth_api, demo, rbac_sim):
    await create_job(auth_api, demo.tenants["alice"][1], "audited", "team-a", kind="inference")
    service = "system:serviceaccount:gpuctl-system:gpuctl-async"
    for resource in ("deployments", "services"):
        [record] = rbac_sim.audit(verb="create", resource=resource, namespace="team-a")
        assert record["user"] == "alice" and record["impersonatedBy"] == service
        assert {"tenants", "system:authenticated"} <= set(record["groups"])
    # The gpuctl-* PriorityClasses are the service's own bookkeeping.
    classes = rbac_sim.audit(verb="create", resource="priorityclasses")
    assert classes and all(r["user"] == service and not r["impersonatedBy"] for r in classes)


async def test_kubernetes_refusal_of_an_impersonated_write_comes_back_as_403(
        auth_api, demo, rbac_sim):
    """carol may create Deployments but not Services in team-a: the service's own check
    passes, Kubernetes refuses the Service as carol, and the Deployment is rolled back."""
    rbac_sim.store.create("clusterroles", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "deployer"},
        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"],
                   "verbs": ["create", "delete", "get", "list"]},
                  {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})
    carol = rbac_sim.add_user("carol")
    rbac_sim.bind("User", "carol", "deployer", namespace="team-a")
    resp = await auth_api.post("/api/v1/jobs", headers=bearer(carol), json={
        "yamlContent": job_yaml("inference", "half", namespace="team-a")})
    assert resp.status == 403
    assert 'User "carol" cannot create resource "services"' in (await resp.json())["error"]
    await eventually(lambda: rbac_sim.store.list("deployments", namespace="team-a"),
                     lambda items: not items, timeout=5)


async def test_a_service_account_caller_is_impersonated_with_its_uid_and_extra(
        auth_api, rbac_sim):
    """Service-account tokens carry a uid and extra (credential id): the write goes out with
    Impersonate-Uid and a percent-encoded Impersonate-Extra-, which the role must allow."""
    token = rbac_sim.service_account_token("team-a", "ci")
    rbac_sim.bind("ServiceAccount", "team-a/ci", "edit", namespace="team-a")
    await create_job(auth_api, token, "from-ci", "team-a")
    [record] = rbac_sim.audit(verb="create", resource="jobs", namespace="team-a")
    assert record["user"] == "system:serviceaccount:team-a:ci"
    assert record["uid"] and "system:serviceaccounts:team-a" in record["groups"]
