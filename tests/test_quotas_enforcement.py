"""A job that a quota refuses outright: the create answers 403 with Kubernetes' message and
leaves nothing behind. (Refusals that come later, when a controller's pods are refused, need
the simulated cluster's quota admission and controllers.)"""

from __future__ import annotations

from gpuctl_async.sim import status as st

QUOTA = "kind: quota\nquota: {name: q}\nnamespace: {team-a: {cpu: 1, memory: 1Gi}}\n"
INFERENCE = ("kind: inference\njob: {name: web, namespace: team-a}\n"
             "environment: {image: nginx}\nservice: {port: 80}\n"
             "resources: {cpu: 1, memory: 1Gi}\n")
REFUSAL = ("exceeded quota: q-team-a, requested: count/deployments.apps=1, "
           "used: count/deployments.apps=1, limited: count/deployments.apps=1")


async def test_job_refused_at_once_is_403_with_the_quota_message(api, sim):
    assert (await api.post("/api/v1/quotas", json={"yamlContent": QUOTA})).status == 201

    def quota_admission(request):  # what Kubernetes' quota admission answers
        if request.obj["metadata"].get("namespace") == "team-a":
            raise st.forbidden(request.resource, request.obj["metadata"]["name"], REFUSAL)
    sim.store.add_admission("deployments", quota_admission)

    resp = await api.post("/api/v1/jobs", json={"yamlContent": INFERENCE})
    assert resp.status == 403
    assert REFUSAL in (await resp.json())["error"]
    assert sim.store.list("deployments", namespace="team-a") == []
    assert sim.store.list("services", namespace="team-a") == []
