"""RBAC in the simulated cluster: the real rule semantics, bindings, defaults and 403 wording."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from gpuctl_async.sim.testing import SimCluster

from .auth_helpers import ADMIN, Caller, pod, role

ALICE, BOB = "t-alice", "t-bob"


@pytest.fixture
async def sim():
    users = [(ALICE, "alice", "uid-alice", ["devs"]), (BOB, "bob", "uid-bob", [])]
    async with SimCluster(token=ADMIN, users=users, max_grace_seconds=0) as cluster:
        for namespace in ("team-a", "team-b"):
            cluster.ensure_namespace(namespace)
        yield cluster


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


def as_(sim, session, token):
    return Caller(sim, session, token)


async def test_forbidden_wording_namespaced_cluster_named_and_subresource(sim, session):
    alice = as_(sim, session, ALICE)
    code, body = await alice.get("/api/v1/namespaces/team-b/pods")
    assert code == 403
    assert body["message"] == ('pods is forbidden: User "alice" cannot list resource "pods" in '
                               'API group "" in the namespace "team-b"')
    assert body["reason"] == "Forbidden" and body["details"] == {"kind": "pods"}
    code, body = await alice.get("/apis/batch/v1/jobs")
    assert body["message"] == ('jobs.batch is forbidden: User "alice" cannot list resource '
                               '"jobs" in API group "batch" at the cluster scope')
    assert body["details"] == {"group": "batch", "kind": "jobs"}
    code, body = await alice.get("/api/v1/namespaces/team-b/pods/p1/log")
    assert code == 403
    assert body["message"] == ('pods "p1" is forbidden: User "alice" cannot get resource '
                               '"pods/log" in API group "" in the namespace "team-b"')
    assert body["details"] == {"name": "p1", "kind": "pods"}
    code, body = await alice.get("/api/v1/nodes/n1")
    assert body["message"] == ('nodes "n1" is forbidden: User "alice" cannot get resource '
                               '"nodes" in API group "" at the cluster scope')
    code, body = await alice.call("DELETE", "/api/v1/namespaces/team-b")
    assert body["message"] == ('namespaces "team-b" is forbidden: User "alice" cannot delete '
                               'resource "namespaces" in API group "" in the namespace '
                               '"team-b"')
    code, body = await alice.get("/metrics")
    assert (code, body["message"]) == (403, 'forbidden: User "alice" cannot get path '
                                            '"/metrics"')


async def test_forbidden_before_not_found_and_watch_verb(sim, session):
    alice = as_(sim, session, ALICE)
    code, body = await alice.get("/api/v1/namespaces/team-b/pods", watch="true")
    assert "cannot watch resource" in body["message"]
    code, body = await alice.get("/api/v1/namespaces/team-b/pods",
                                 fieldSelector="metadata.name=p1")
    assert body["message"].startswith('pods "p1" is forbidden: User "alice" cannot list')


async def test_edit_in_one_namespace_only(sim, session):
    sim.bind("User", "alice", "edit", namespace="team-a")
    alice = as_(sim, session, ALICE)
    code, created = await alice.post("/api/v1/namespaces/team-a/pods", pod("p1"))
    assert code == 201, created
    assert (await alice.get("/api/v1/namespaces/team-a/pods/p1"))[0] == 200
    assert (await alice.get("/api/v1/namespaces/team-a/pods/p1/log"))[0] == 200
    assert (await alice.post("/api/v1/namespaces/team-b/pods", pod("p1")))[0] == 403
    assert (await alice.get("/api/v1/namespaces/team-a/resourcequotas"))[0] == 200
    assert (await alice.post("/api/v1/namespaces/team-a/resourcequotas",
                             {"metadata": {"name": "q"}, "spec": {}}))[0] == 403
    # The namespace object of team-a is readable through the RoleBinding; others are not.
    assert (await alice.get("/api/v1/namespaces/team-a"))[0] == 200
    assert (await alice.get("/api/v1/namespaces/team-b"))[0] == 403
    assert (await alice.get("/api/v1/namespaces"))[0] == 403
    assert (await alice.call("DELETE", "/api/v1/namespaces/team-a/pods/p1"))[0] == 200
    assert sim.unbind("User", "alice", "edit", namespace="team-a")
    assert (await alice.get("/api/v1/namespaces/team-a/pods"))[0] == 403
    assert not sim.unbind("User", "alice", "edit", namespace="team-a")


async def test_resource_names_subresources_and_wildcards(sim, session):
    sim.store.create("clusterroles", role("narrow", [
        {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["allowed"],
         "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]},
        {"apiGroups": ["batch"], "resources": ["*"], "verbs": ["list"]},
        {"apiGroups": ["*"], "resources": ["deployments/scale"], "verbs": ["*"]},
    ]))
    sim.bind("User", "bob", "narrow", namespace="team-a")
    for name in ("allowed", "other"):
        sim.store.create("pods", pod(name), namespace="team-a")
    bob = as_(sim, session, BOB)
    assert (await bob.get("/api/v1/namespaces/team-a/pods/allowed"))[0] == 200
    assert (await bob.get("/api/v1/namespaces/team-a/pods/other"))[0] == 403
    # resourceNames never match a list (the request has no name) ...
    assert (await bob.get("/api/v1/namespaces/team-a/pods"))[0] == 403
    # ... but a list narrowed to that name by fieldSelector does, as on a real server.
    assert (await bob.get("/api/v1/namespaces/team-a/pods",
                          fieldSelector="metadata.name=allowed"))[0] == 200
    assert (await bob.get("/api/v1/namespaces/team-a/pods/other/status"))[0] == 200
    assert (await bob.get("/api/v1/namespaces/team-a/pods/other/log"))[0] == 403
    # "*" covers subresources too; "pods" alone does not cover "pods/log".
    assert (await bob.get("/apis/batch/v1/namespaces/team-a/jobs"))[0] == 200
    assert (await bob.call("PATCH", "/apis/apps/v1/namespaces/team-a/deployments/d/scale",
                           {}))[0] == 404  # allowed, then not found
    assert (await bob.get("/apis/apps/v1/namespaces/team-a/deployments/d"))[0] == 403


async def test_role_vs_clusterrole_refs_groups_and_missing_roles(sim, session):
    sim.store.create("roles", role("reader", [{"apiGroups": [""], "resources": ["pods"],
                                               "verbs": ["list"]}], "team-b"),
                     namespace="team-b")
    sim.bind("Group", "devs", "reader", namespace="team-b", role_kind="Role")
    alice, bob = as_(sim, session, ALICE), as_(sim, session, BOB)
    assert (await alice.get("/api/v1/namespaces/team-b/pods"))[0] == 200
    assert (await bob.get("/api/v1/namespaces/team-b/pods"))[0] == 403
    # A Role in one namespace grants nothing elsewhere, even bound there by name.
    sim.bind("User", "bob", "reader", namespace="team-a", role_kind="Role")
    code, body = await bob.get("/api/v1/namespaces/team-a/pods")
    assert code == 403
    assert body["message"].endswith(': RBAC: role.rbac.authorization.k8s.io "reader" not '
                                    'found')
    sim.bind("User", "bob", "no-such-role")
    code, body = await bob.get("/api/v1/nodes")
    assert body["message"] == ('nodes is forbidden: User "bob" cannot list resource "nodes" in '
                               'API group "" at the cluster scope: RBAC: clusterrole.rbac.'
                               'authorization.k8s.io "no-such-role" not found')


async def test_service_account_subjects(sim, session):
    token = sim.service_account_token("team-a", "robot")
    robot = as_(sim, session, token)
    assert (await robot.get("/api/v1/namespaces/team-a/pods"))[0] == 403
    # A RoleBinding's ServiceAccount subject without namespace means the binding's own.
    sim.store.create("rolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "robot-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "robot"}]}, namespace="team-a")
    assert (await robot.get("/api/v1/namespaces/team-a/pods"))[0] == 200
    assert (await robot.get("/api/v1/namespaces/team-b/pods"))[0] == 403
    sim.bind("ServiceAccount", "team-a/robot", "view")
    assert (await robot.get("/api/v1/namespaces/team-b/pods"))[0] == 200
    # The group of all service accounts of a namespace is a subject too.
    other = as_(sim, session, sim.service_account_token("team-a", "other"))
    assert (await other.get("/apis/batch/v1/namespaces/team-b/jobs"))[0] == 403
    sim.bind("Group", "system:serviceaccounts:team-a", "view", namespace="team-b")
    assert (await other.get("/apis/batch/v1/namespaces/team-b/jobs"))[0] == 200


async def test_masters_bypass_and_authenticated_group(sim, session):
    admin = as_(sim, session, ADMIN)
    assert (await admin.get("/api/v1/nodes"))[0] == 200
    # system:masters needs no binding: delete them all and it still works.
    for binding in sim.store.list("clusterrolebindings"):
        sim.store.delete("clusterrolebindings", binding["metadata"]["name"])
    assert (await admin.get("/api/v1/nodes"))[0] == 200
    bob = as_(sim, session, BOB)
    assert (await bob.get("/api"))[0] == 403  # discovery went with its binding
    sim.bind("Group", "system:authenticated", "view")
    assert (await bob.get("/api/v1/namespaces/team-b/pods"))[0] == 200


async def test_defaults_let_anyone_authenticated_discover(sim, session):
    bob = as_(sim, session, BOB)
    for path in ("/api", "/api/v1", "/apis", "/apis/batch/v1", "/version", "/openapi/v3"):
        assert (await bob.get(path))[0] == 200, path
    names = {r["metadata"]["name"] for r in sim.store.list("clusterroles")}
    assert {"cluster-admin", "admin", "edit", "view", "system:discovery",
            "system:basic-user", "system:auth-delegator"} <= names
    binding = sim.store.get("clusterrolebindings", "cluster-admin")
    assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                                    "name": "system:masters"}]
    assert sim.authorize("bob", "list", "secrets", "team-a") == (False, "")
    sim.bind("User", "bob", "view", namespace="team-a")
    assert sim.authorize("bob", "list", "secrets", "team-a")[0] is False  # view: no secrets
    sim.bind("User", "bob", "admin", namespace="team-a")
    assert sim.authorize("bob", "create", "rolebindings", "team-a",
                         api_group="rbac.authorization.k8s.io")[0]


async def test_rbac_objects_validated(sim, session):
    admin = as_(sim, session, ADMIN)
    code, body = await admin.post("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
        "metadata": {"name": "x"}, "roleRef": {"kind": "Role", "name": "r",
                                               "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [{"kind": "Robot", "name": "r2"}]})
    assert code == 422
    assert 'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"' in \
        body["message"]
    assert 'subjects[0].kind: Unsupported value: "Robot"' in body["message"]
    code, body = await admin.post("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
        "metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]})
    assert code == 422 and "rules[0].verbs: Required value" in body["message"]
    sim.bind("User", "bob", "view", namespace="team-a")
    name = sim.binding_name("User", "bob", "view")
    path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/{name}"
    code, body = await admin.call("PATCH", path, {"roleRef": {"name": "edit"}},
                                  headers={"Content-Type": "application/merge-patch+json"})
    assert code == 422 and "cannot change roleRef" in body["message"]


async def test_decisions_follow_binding_changes(sim, session):
    bob = as_(sim, session, BOB)
    assert (await bob.get("/api/v1/namespaces/team-a/pods"))[0] == 403
    sim.bind("User", "bob", "view", namespace="team-a")
    assert (await bob.get("/api/v1/namespaces/team-a/pods"))[0] == 200
    sim.store.delete("clusterroles", "view")
    assert (await bob.get("/api/v1/namespaces/team-a/pods"))[0] == 403


async def test_apply_manifests_and_the_shipped_cluster_role(sim, session):
    applied = sim.apply_manifests("""\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: lister, namespace: team-c}
rules: [{apiGroups: [""], resources: [pods], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bob-lists, namespace: team-c}
subjects: [{kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: Role, name: lister, apiGroup: rbac.authorization.k8s.io}
""")
    assert [o["kind"] for o in applied] == ["Role", "RoleBinding"]
    bob = as_(sim, session, BOB)
    assert (await bob.get("/api/v1/namespaces/team-c/pods"))[0] == 200
    with pytest.raises(ValueError, match="neither a file nor YAML objects"):
        sim.apply_manifests("no/such/file.yaml")
    # The service's own manifests load as they are, and their ServiceAccount may review.
    kinds = {o["kind"] for o in sim.apply_manifests(Path("config/k8s/rbac.yaml"))}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} <= kinds
    token = sim.service_account_token("gpuctl-system", "gpuctl-async")
    code, body = await as_(sim, session, token).post(
        "/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": ALICE}})
    assert code == 201 and body["status"]["user"]["username"] == "alice"


def binding(name: str, role_name: str, user: str, role_kind: str = "ClusterRole") -> dict:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                        "name": role_name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                          "name": user}]}


async def test_no_escalation_through_roles_or_bindings(sim, session):
    sim.bind("User", "alice", "admin", namespace="team-a")
    alice = as_(sim, session, ALICE)
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a"
    # Granting what she holds is fine ...
    code, body = await alice.post(f"{rbac}/rolebindings", binding("bob-edits", "edit", "bob"))
    assert code == 201, body
    code, body = await alice.post(f"{rbac}/roles", role("secret-reader", [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}], "team-a"))
    assert code == 201, body
    # ... more than she holds is not.
    code, body = await alice.post(f"{rbac}/rolebindings", binding("bob-all", "cluster-admin",
                                                                  "bob"))
    assert code == 403
    assert body["message"] == (
        'rolebindings.rbac.authorization.k8s.io "bob-all" is forbidden: user "alice" '
        '(groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not '
        'currently held:\n{APIGroups:["*"], Resources:["*"], Verbs:["*"]}\n'
        '{NonResourceURLs:["*"], Verbs:["*"]}')
    code, body = await alice.post(f"{rbac}/roles", role("node-lister", [
        {"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list", "watch"]}],
        "team-a"))
    assert code == 403 and body["message"].endswith(
        'not currently held:\n{APIGroups:[""], Resources:["nodes"], Verbs:["list" "watch"]}')
    code, body = await alice.post(f"{rbac}/rolebindings", binding("x", "ghost", "bob", "Role"))
    assert (code, body["message"]) == (404, 'role.rbac.authorization.k8s.io "ghost" not found')
    # The bind verb on that role, or escalate on roles, lifts the check, as on a real server.
    sim.store.create("clusterroles", role("binder", [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
         "resourceNames": ["cluster-admin"], "verbs": ["bind"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
         "verbs": ["escalate"]}]))
    sim.bind("User", "alice", "binder", namespace="team-a")
    assert (await alice.post(f"{rbac}/rolebindings", binding("bob-all", "cluster-admin",
                                                             "bob")))[0] == 201
    assert (await alice.post(f"{rbac}/roles", role("node-lister", [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}], "team-a")))[0] == 201
    # system:masters and in-process writes are never checked.
    assert (await as_(sim, session, ADMIN).post(f"{rbac}/rolebindings", binding(
        "carol-all", "cluster-admin", "carol")))[0] == 201
