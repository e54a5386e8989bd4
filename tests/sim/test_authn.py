"""Authentication, reviews, TokenRequest, impersonation and audit in the simulated cluster."""

from __future__ import annotations

import aiohttp
import pytest

from gpuctl_async.sim.authn import parse_token_file, parse_token_text
from gpuctl_async.sim.testing import SimCluster
from tests.helpers import eventually

from .auth_helpers import ADMIN, Caller, pod

TOKENS = """\
t-alice,alice,uid-alice,"devs,gpu-users"
t-bob,bob,uid-bob

t-svc,gpuctl,uid-svc,delegators
"""
AUTHN = "/apis/authentication.k8s.io/v1"
AUTHZ = "/apis/authorization.k8s.io/v1"


@pytest.fixture
async def sim(tmp_path):
    path = tmp_path / "tokens.csv"
    path.write_text(TOKENS)
    async with SimCluster(token=ADMIN, token_file=path, max_grace_seconds=0) as cluster:
        cluster.ensure_namespace("team-a")
        cluster.ensure_namespace("team-b")
        yield cluster


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


def test_token_file_format(tmp_path):
    tokens = parse_token_text(TOKENS)
    assert tokens["t-alice"].name == "alice" and tokens["t-alice"].uid == "uid-alice"
    assert tokens["t-alice"].groups == ("devs", "gpu-users")
    assert tokens["t-bob"].groups == ()
    assert parse_token_text(",nobody,1\nx,last,2\nx,again,3\n")["x"].name == "again"
    path = tmp_path / "bad.csv"
    path.write_text("t1,onlyuser\n")
    with pytest.raises(ValueError, match="must have at least 3 columns"):
        parse_token_file(path)


async def test_unauthenticated_requests_get_401_but_sim_and_health_stay_open(sim, session):
    for token in (None, "wrong", ""):
        code, body = await Caller(sim, session, token).get("/api/v1/pods")
        assert (code, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")
    nobody = Caller(sim, session, None)
    for path in ("/healthz", "/readyz", "/livez", "/_sim/counters", "/_sim/audit"):
        assert (await nobody.get(path))[0] == 200, path
    code, _ = await Caller(sim, session, None, {"Authorization": "Basic dTpw"}).get("/api")
    assert code == 401


async def test_open_sim_has_no_authentication_nor_policy():
    async with SimCluster() as open_sim, aiohttp.ClientSession() as session:
        assert (await Caller(open_sim, session, None).get("/api/v1/nodes"))[0] == 200
        assert open_sim.store.list("clusterroles") == []
        code, body = await Caller(open_sim, session, None).post(
            f"{AUTHZ}/selfsubjectaccessreviews",
            {"spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}})
        assert (code, body["status"]) == (201, {"allowed": True})


async def test_token_review(sim, session):
    sim.bind("User", "gpuctl", "system:auth-delegator")
    svc = Caller(sim, session, "t-svc")
    code, body = await svc.post(f"{AUTHN}/tokenreviews", {
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
        "spec": {"token": "t-alice"}})
    assert code == 201
    assert body["kind"] == "TokenReview" and body["status"]["authenticated"] is True
    assert body["status"]["user"] == {"username": "alice", "uid": "uid-alice",
                                      "groups": ["devs", "gpu-users", "system:authenticated"]}
    code, body = await svc.post(f"{AUTHN}/tokenreviews", {"spec": {"token": "nope"}})
    assert body["status"] == {"user": {}, "error": "invalid bearer token"}
    code, body = await svc.post(f"{AUTHN}/tokenreviews", {"spec": {}})
    assert (code, body["message"]) == (400, "token is required for TokenReview in "
                                            "authentication")
    # Creating a TokenReview is itself authorized.
    code, body = await Caller(sim, session, "t-bob").post(f"{AUTHN}/tokenreviews",
                                                          {"spec": {"token": "t-alice"}})
    assert code == 403
    assert body["message"] == ('tokenreviews.authentication.k8s.io is forbidden: User "bob" '
                               'cannot create resource "tokenreviews" in API group '
                               '"authentication.k8s.io" at the cluster scope')
    code, body = await svc.get(f"{AUTHN}/tokenreviews")
    assert code == 403  # no list verb granted; an admin gets 405
    assert (await Caller(sim, session, ADMIN).get(f"{AUTHN}/tokenreviews"))[0] == 405


async def test_subject_access_review(sim, session):
    sim.bind("User", "gpuctl", "system:auth-delegator")
    sim.bind("Group", "devs", "edit", namespace="team-a")
    svc = Caller(sim, session, "t-svc")
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": "alice", "groups": ["devs"],
                       "resourceAttributes": {"namespace": "team-a", "verb": "create",
                                              "group": "batch", "resource": "jobs"}}}
    code, body = await svc.post(f"{AUTHZ}/subjectaccessreviews", review)
    assert code == 201 and body["spec"] == review["spec"]
    assert body["status"] == {"allowed": True, "reason": (
        'RBAC: allowed by RoleBinding "sim:edit:group:devs/team-a" of ClusterRole "edit" to '
        'Group "devs"')}
    review["spec"]["resourceAttributes"]["namespace"] = "team-b"
    assert (await svc.post(f"{AUTHZ}/subjectaccessreviews", review))[1]["status"] == \
        {"allowed": False}
    # A SAR carries exactly the groups it is given: no implicit system:authenticated.
    review["spec"] = {"user": "bob", "nonResourceAttributes": {"path": "/api", "verb": "get"}}
    assert (await svc.post(f"{AUTHZ}/subjectaccessreviews", review))[1]["status"] == \
        {"allowed": False}
    review["spec"]["groups"] = ["system:authenticated"]
    assert (await svc.post(f"{AUTHZ}/subjectaccessreviews", review))[1]["status"]["allowed"]
    review["spec"] = {"groups": ["system:masters"], "resourceAttributes": {
        "verb": "delete", "resource": "nodes"}}
    assert (await svc.post(f"{AUTHZ}/subjectaccessreviews", review))[1]["status"] == \
        {"allowed": True}
    code, body = await svc.post(f"{AUTHZ}/subjectaccessreviews", {"spec": {}})
    assert code == 422
    assert body["message"] == (
        'SubjectAccessReview.authorization.k8s.io "" is invalid: [spec: Invalid value: "null": '
        'exactly one of nonResourceAttributes or resourceAttributes must be specified, '
        'spec.user: Invalid value: "": at least one of user or group must be specified]')


async def test_self_and_local_reviews(sim, session):
    sim.bind("User", "alice", "admin", namespace="team-a")
    alice = Caller(sim, session, "t-alice")
    ask = {"spec": {"resourceAttributes": {"namespace": "team-a", "verb": "list",
                                           "resource": "pods"}}}
    code, body = await alice.post(f"{AUTHZ}/selfsubjectaccessreviews", ask)
    assert code == 201 and body["status"]["allowed"] is True
    ask["spec"]["resourceAttributes"]["namespace"] = "team-b"
    assert (await alice.post(f"{AUTHZ}/selfsubjectaccessreviews", ask))[1]["status"] == \
        {"allowed": False}
    code, body = await alice.post(f"{AUTHN}/selfsubjectreviews", {})
    assert body["status"]["userInfo"]["username"] == "alice"
    local = {"spec": {"user": "bob", "resourceAttributes": {"namespace": "team-a",
                                                             "verb": "get", "resource": "pods"}}}
    code, body = await alice.post(f"{AUTHZ}/namespaces/team-a/localsubjectaccessreviews",
                                  local)
    assert code == 201 and body["status"] == {"allowed": False}
    local["spec"]["resourceAttributes"]["namespace"] = "team-b"
    code, body = await alice.post(f"{AUTHZ}/namespaces/team-a/localsubjectaccessreviews",
                                  local)
    assert code == 422 and "must match metadata.namespace" in body["message"]
    code, body = await alice.post(f"{AUTHZ}/selfsubjectaccessreviews", {"spec": {
        "resourceAttributes": {"verb": "get", "resource": "pods"},
        "nonResourceAttributes": {"path": "/api", "verb": "get"}}})
    assert body["message"] == (
        'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec: Invalid value: '
        'v1.NonResourceAttributes{Path:"/api", Verb:"get"}: exactly one of '
        'nonResourceAttributes or resourceAttributes must be specified')


async def test_token_request_and_expiry(sim, session):
    sim.bind("User", "alice", "edit", namespace="team-a")
    alice = Caller(sim, session, "t-alice")
    path = "/api/v1/namespaces/team-a/serviceaccounts/default/token"
    code, body = await alice.post(path, {"apiVersion": "authentication.k8s.io/v1",
                                         "kind": "TokenRequest",
                                         "spec": {"expirationSeconds": 1200}})
    assert code == 201, body
    assert body["kind"] == "TokenRequest" and body["spec"]["expirationSeconds"] == 1200
    token = body["status"]["token"]
    assert body["status"]["expirationTimestamp"].endswith("Z")
    robot = Caller(sim, session, token)
    code, who = await robot.post(f"{AUTHN}/selfsubjectreviews", {})
    info = who["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:team-a:default"
    assert info["groups"] == ["system:serviceaccounts", "system:serviceaccounts:team-a",
                              "system:authenticated"]
    assert info["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
    code, body = await alice.post(path, {"spec": {"expirationSeconds": 60}})
    assert code == 422 and body["message"] == (
        'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: Invalid '
        'value: 60: may not specify a duration less than 10 minutes')
    assert (await alice.post("/api/v1/namespaces/team-a/serviceaccounts/ghost/token",
                             {}))[0] == 404
    assert (await alice.post("/api/v1/namespaces/team-b/serviceaccounts/default/token",
                             {}))[0] == 403
    # Expiry: a short-lived token (only the Python helper mints these) turns into a 401.
    sim.bind("ServiceAccount", "team-a/brief", "view", namespace="team-a")
    brief = Caller(sim, session, sim.service_account_token("team-a", "brief",
                                                           expiration_seconds=0.3))
    assert (await brief.get("/api/v1/namespaces/team-a/pods"))[0] == 200
    await eventually(lambda: brief.get("/api/v1/namespaces/team-a/pods"),
                     lambda r: r[0] == 401, timeout=5)
    sim.bind("User", "gpuctl", "system:auth-delegator")
    expired = sim.service_account_token("team-a", "brief", expiration_seconds=0)
    code, body = await Caller(sim, session, "t-svc").post(f"{AUTHN}/tokenreviews",
                                                          {"spec": {"token": expired}})
    assert body["status"]["error"] == ("[invalid bearer token, service account token has "
                                       "expired]")
    # Deleting the ServiceAccount invalidates its tokens.
    sim.store.delete("serviceaccounts", "default", namespace="team-a")
    assert (await robot.get("/api")).__getitem__(0) == 401


async def test_impersonation(sim, session):
    sim.bind("User", "alice", "edit", namespace="team-a")
    sim.store.create("clusterroles", {"metadata": {"name": "impersonator"}, "rules": [
        {"apiGroups": [""], "resources": ["users"], "resourceNames": ["alice"],
         "verbs": ["impersonate"]},
        {"apiGroups": [""], "resources": ["groups"], "verbs": ["impersonate"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["uids", "userextras/scopes"],
         "verbs": ["impersonate"]}]})
    sim.bind("User", "gpuctl", "impersonator")
    svc = Caller(sim, session, "t-svc")
    as_alice = {"Impersonate-User": "alice", "Impersonate-Group": "devs",
                "Impersonate-Uid": "uid-alice", "Impersonate-Extra-Scopes": "jobs"}
    code, created = await svc.call("POST", "/api/v1/namespaces/team-a/pods", pod("p1"),
                                   headers=as_alice)
    assert code == 201, created
    code, who = await svc.call("POST", f"{AUTHN}/selfsubjectreviews", {}, headers=as_alice)
    assert who["status"]["userInfo"] == {"username": "alice", "uid": "uid-alice",
                                         "groups": ["devs", "system:authenticated"],
                                         "extra": {"scopes": ["jobs"]}}
    code, body = await svc.call("GET", "/api/v1/namespaces/team-b/pods",
                                headers={"Impersonate-User": "alice"})
    assert code == 403 and 'User "alice" cannot list' in body["message"]
    code, body = await svc.call("GET", "/api/v1/pods", headers={"Impersonate-User": "bob"})
    assert (code, body["message"]) == (403, 'users "bob" is forbidden: User "gpuctl" cannot '
                                            'impersonate resource "users" in API group "" at '
                                            'the cluster scope')
    assert body["details"] == {"name": "bob", "kind": "users"}
    code, body = await svc.call("GET", "/api/v1/pods", headers={
        "Impersonate-User": "system:serviceaccount:team-a:default"})
    assert body["message"] == ('serviceaccounts "default" is forbidden: User "gpuctl" cannot '
                               'impersonate resource "serviceaccounts" in API group "" in the '
                               'namespace "team-a"')
    code, body = await svc.call("GET", "/api/v1/pods", headers={
        "Impersonate-User": "alice", "Impersonate-Extra-Other": "x"})
    assert body["message"] == ('userextras.authentication.k8s.io "x" is forbidden: User '
                               '"gpuctl" cannot impersonate resource "userextras/other" in API '
                               'group "authentication.k8s.io" at the cluster scope')
    code, body = await svc.call("GET", "/api/v1/pods", headers={"Impersonate-Group": "devs"})
    assert (code, body["text"]) == (500, 'Internal Server Error: "/api/v1/pods": requested '
                                         '[{Group  devs    }] without impersonating a user\n')
    # Nobody without the impersonate verb may impersonate at all.
    code, body = await Caller(sim, session, "t-bob").call(
        "GET", "/api", headers={"Impersonate-User": "alice"})
    assert code == 403 and body["message"].startswith('users "alice" is forbidden')
    # A ServiceAccount impersonated without groups gets its own groups.
    code, who = await Caller(sim, session, ADMIN).call(
        "POST", f"{AUTHN}/selfsubjectreviews", {},
        headers={"Impersonate-User": "system:serviceaccount:team-a:default"})
    assert who["status"]["userInfo"]["groups"] == [
        "system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"]


async def test_audit_records_the_impersonated_identity(sim, session):
    sim.bind("User", "alice", "edit", namespace="team-a")
    sim.store.create("clusterroles", {"metadata": {"name": "imp"}, "rules": [
        {"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]}]})
    sim.bind("User", "gpuctl", "imp")
    sim.reset_audit()
    svc, alice = Caller(sim, session, "t-svc"), Caller(sim, session, "t-alice")
    headers = {"Impersonate-User": "alice", "Impersonate-Group": "devs"}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "train-"},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
               {"name": "main", "image": "busybox:1.36"}]}}}}
    code, created = await svc.call("POST", "/apis/batch/v1/namespaces/team-a/jobs", job,
                                   headers=headers)
    assert code == 201
    await alice.get("/apis/batch/v1/namespaces/team-a/jobs")  # reads are not audited
    assert (await alice.post("/api/v1/namespaces/team-b/pods", pod("x")))[0] == 403
    [record] = sim.audit(verb="create", resource="jobs")
    assert record["user"] == "alice" and record["groups"] == ["devs", "system:authenticated"]
    assert record["impersonatedBy"] == "gpuctl"
    assert record["name"] == created["metadata"]["name"]
    assert (record["namespace"], record["apiGroup"], record["code"]) == ("team-a", "batch", 201)
    assert record["authorizationReason"] == ('RBAC: allowed by RoleBinding "sim:edit:user:alice/'
                                             'team-a" of ClusterRole "edit" to User "alice"')
    code, body = await Caller(sim, session, None).get("/_sim/audit", resource="jobs",
                                                      user="alice")
    assert body["items"] == [record]
    assert (await Caller(sim, session, None).get("/_sim/audit", user="bob"))[1]["items"] == []
    name = created["metadata"]["name"]
    await alice.call("DELETE", f"/apis/batch/v1/namespaces/team-a/jobs/{name}")
    [deleted] = sim.audit(verb="delete")
    assert (deleted["user"], deleted["impersonatedBy"], deleted["name"]) == ("alice", None,
                                                                            name)
    assert len(sim.audit()) == 2  # the forbidden create never reached the handler
    await Caller(sim, session, None).post("/_sim/audit/reset", {})
    assert sim.audit() == []


async def test_self_subject_rules_review(sim, session):
    sim.bind("User", "bob", "view", namespace="team-a")
    sim.bind("User", "bob", "gone-role", namespace="team-a")
    bob = Caller(sim, session, "t-bob")
    code, body = await bob.post(f"{AUTHZ}/selfsubjectrulesreviews",
                                {"spec": {"namespace": "team-a"}})
    assert code == 201
    status = body["status"]
    assert {"verbs": ["get", "list", "watch"], "apiGroups": ["batch"],
            "resources": ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]} in \
        status["resourceRules"]
    assert any("/api/*" in r["nonResourceURLs"] for r in status["nonResourceRules"])
    assert status["incomplete"] is True
    assert status["evaluationError"] == 'clusterrole.rbac.authorization.k8s.io "gone-role" ' \
                                        'not found'
    code, body = await bob.post(f"{AUTHZ}/selfsubjectrulesreviews",
                                {"spec": {"namespace": "team-b"}})
    assert not any("batch" in r.get("apiGroups", []) for r in body["status"]["resourceRules"])
