"""The multiplexed socket with authentication on: each subscription is authorized on its own,
a denied one gets an error frame and the others go on."""

from __future__ import annotations

from tests.auth.conftest import bearer
from tests.auth.test_tenancy import create_job, running
from tests.logs.helpers import MuxSocket

POD_LISTER = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
    "metadata": {"name": "pod-lister"},
    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
}


async def test_a_denied_subscription_beside_allowed_ones(auth_api, rbac_sim, demo):
    alice, admin = demo.tenants["alice"][1], demo.admin
    await create_job(auth_api, alice, "mine", "team-a", kind="inference")  # runs on
    await create_job(auth_api, admin, "theirs", "team-b")
    await running(auth_api, alice, "mine", "team-a")
    await running(auth_api, admin, "theirs", "team-b")
    # In team-b alice may list pods, but not read their logs.
    rbac_sim.store.create("roles", POD_LISTER, namespace="team-b")
    rbac_sim.bind("User", "alice", "pod-lister", namespace="team-b", role_kind="Role")

    mux = await MuxSocket.open(auth_api, headers=bearer(alice))
    await mux.subscribe_logs("mine", "mine", tail=1)
    await mux.subscribe_logs("theirs", "theirs", namespace="team-b")
    await mux.subscribe_logs("search", "theirs")  # without a namespace: not found for her
    await mux.subscribe_jobs("feed-b", namespace="team-b")  # allowed: she may list pods
    await mux.subscribe_jobs("feed")
    await mux.until(lambda m: len(m.lines("mine")) >= 3 and len(m.of("feed")) >= 2
                    and len(m.of("feed-b")) >= 2 and m.of("theirs") and m.of("search"),
                    timeout=15)
    (denied,) = mux.of("theirs")
    assert denied["type"] == "error" and denied["code"] == 403
    assert denied["data"] == ('Forbidden: User "alice" cannot get resource "pods/log" in API '
                              'group "" in the namespace "team-b"')
    (missing,) = mux.of("search")
    assert missing["code"] == 404 and missing["data"] == "Job 'theirs' not found"
    snapshot_b = mux.of("feed-b")[1]
    assert {item["name"] for item in snapshot_b["items"]} == {"theirs"}
    snapshot = mux.of("feed")[1]
    assert {item["namespace"] for item in snapshot["items"]} == {"team-a", "team-b"}
    before = len(mux.lines("mine"))
    await mux.until(lambda m: len(m.lines("mine")) > before)  # the allowed one goes on
    assert all(line["pod"].startswith("mine-") for line in mux.lines("mine"))
    await mux.close()

    bob = demo.tenants["bob"][1]
    other = await MuxSocket.open(auth_api, headers=bearer(bob))
    await other.subscribe_jobs("feed")
    await other.subscribe_jobs("feed-a", namespace="team-a")
    await other.until(lambda m: len(m.of("feed")) >= 2 and m.of("feed-a"))
    assert {item["namespace"] for item in other.of("feed")[1]["items"]} == {"team-b"}
    assert other.of("feed-a")[0]["code"] == 403
    assert 'cannot list resource "pods"' in other.of("feed-a")[0]["data"]
    await other.close()


async def test_the_socket_itself_needs_a_token(auth_api):
    resp = await auth_api.get("/api/v1/stream", headers={"Upgrade": "websocket",
                                                         "Connection": "Upgrade",
                                                         "Sec-WebSocket-Version": "13",
                                                         "Sec-WebSocket-Key": "x" * 22 + "=="})
    assert resp.status == 401


async def test_event_stream_checks_the_permission(auth_api, demo):
    alice, admin = demo.tenants["alice"][1], demo.admin
    await create_job(auth_api, admin, "theirs", "team-b")
    resp = await auth_api.get("/api/v1/jobs/theirs/logs/stream", headers=bearer(alice),
                              params={"namespace": "team-b"})
    assert resp.status == 403 and 'get resource "pods/log"' in (await resp.json())["error"]
    resp = await auth_api.get("/api/v1/jobs/theirs/logs/stream", headers=bearer(alice))
    assert resp.status == 404


async def test_a_job_feed_subscription_ends_when_its_binding_goes(rbac_sim, demo, aiohttp_client,
                                                                  tmp_path):
    from tests.auth.conftest import auth_settings, start

    api = await start(aiohttp_client, auth_settings(rbac_sim, demo, tmp_path, authz_ttl=0.2))
    alice, admin = demo.tenants["alice"][1], demo.admin
    await create_job(api, admin, "theirs", "team-b", kind="inference")
    rbac_sim.store.create("roles", POD_LISTER, namespace="team-b")
    rbac_sim.bind("User", "alice", "pod-lister", namespace="team-b", role_kind="Role")
    mux = await MuxSocket.open(api, headers=bearer(alice))
    await mux.subscribe_jobs("feed-b", namespace="team-b")
    await mux.subscribe_jobs("feed-a", namespace="team-a")
    await mux.until(lambda m: "snapshot" in m.types("feed-b") and "snapshot" in m.types("feed-a"))
    rbac_sim.unbind("User", "alice", "pod-lister", namespace="team-b")
    resp = await api.delete("/api/v1/jobs/theirs", headers=bearer(admin),
                            params={"namespace": "team-b", "force": "true"})  # a change
    assert resp.status == 200, await resp.text()
    await mux.until(lambda m: "error" in m.types("feed-b"), timeout=15)
    assert mux.of("feed-b")[-1]["code"] == 403
    assert 'cannot list resource "pods"' in mux.of("feed-b")[-1]["data"]
    await create_job(api, alice, "mine", "team-a", kind="inference")  # feed-a goes on
    await mux.until(lambda m: any(f["type"] == "ADDED" for f in m.of("feed-a")), timeout=15)
    await mux.close()
