"""The API server stores quantities in canonical form; what the service writes and reads back
settles on that form (read-your-writes compares quantities, not strings)."""

from __future__ import annotations

from tests.helpers import add_nodes, node_manifest


async def test_quota_written_as_given_reads_back_canonical(api, sim):
    quota = ("kind: quota\nquota: {name: q}\nnamespace:\n"
             "  team-a: {cpu: 1.5, memory: 1024Mi, gpu: 2}\n")
    resp = await api.post("/api/v1/quotas", json={"yamlContent": quota})
    assert resp.status == 201, await resp.text()
    (created,) = (await resp.json())["created"]
    assert (created["cpu"], created["memory"], created["gpu"]) == ("1500m", "1Gi", "2")
    stored = sim.store.get("resourcequotas", "q-team-a", namespace="team-a")["spec"]["hard"]
    assert stored["requests.cpu"] == "1500m" and stored["limits.memory"] == "1Gi"


async def test_node_memory_in_kibibytes_is_shown_as_the_server_stores_it(api, sim):
    node = node_manifest("big-mem", pool="training-pool")
    node["status"]["capacity"]["memory"] = node["status"]["allocatable"]["memory"] = \
        "1073217536Ki"
    await add_nodes(api, sim, node)
    resp = await api.get("/api/v1/nodes/big-mem")
    assert resp.status == 200, await resp.text()
    assert sim.store.get("nodes", "big-mem")["status"]["capacity"]["memory"] == "1048064Mi"
    detail = await resp.json()
    assert detail["resources"]["memoryTotal"] == "1048064Mi"
    assert detail["capacity"]["memory"] == "1048064Mi"
