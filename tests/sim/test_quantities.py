"""Quantities are stored in the API server's canonical form, as kubectl and clients read them."""

from __future__ import annotations

import pytest

from gpuctl_async.sim.quantities import canonical

from .helpers import pod


@pytest.mark.parametrize(("given", "stored"), [
    ("1073217536Ki", "1048064Mi"),  # seen on a real node
    ("1.5Gi", "1536Mi"), ("1Ki", "1Ki"), ("2048Ki", "2Mi"), ("0.5Ki", "512"),
    ("1024", "1024"), ("1000m", "1"), ("1500m", "1500m"), ("0.5", "500m"), ("2000", "2k"),
    ("1.5k", "1500"), ("0.0001", "100u"), ("0.1n", "1n"), ("12e6", "12e6"), ("0", "0"),
    ("-1500m", "-1500m"), ("110", "110"), ("not-a-quantity", "not-a-quantity"),
])
def test_canonical_form(given, stored):
    assert canonical(given) == stored


async def test_stored_objects_carry_canonical_quantities(sim):
    body = pod("sized")
    body["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "0.5", "memory": "1073217536Ki"},
        "limits": {"cpu": "1000m", "memory": "2097152Mi", "nvidia.com/gpu": "1"}}
    created = sim.store.create("pods", body, namespace="default")
    assert created["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "1048064Mi"},
        "limits": {"cpu": "1", "memory": "2Ti", "nvidia.com/gpu": "1"}}
    node = sim.store.create("nodes", {"metadata": {"name": "n"}, "status": {
        "capacity": {"memory": "1073217536Ki", "cpu": "64000m"}}})
    assert node["status"]["capacity"] == {"memory": "1048064Mi", "cpu": "64"}
    quota = sim.store.create("resourcequotas", {"metadata": {"name": "q"},
                                                "spec": {"hard": {"requests.memory": "1024Mi"}}},
                             namespace="default")
    assert quota["spec"]["hard"] == {"requests.memory": "1Gi"}
