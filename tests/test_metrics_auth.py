"""With authentication on, ``/metrics`` is guarded as kube-rbac-proxy guards a component's:
a token, then a SubjectAccessReview for ``get`` on the non-resource URL ``/metrics``. The
service runs as its ServiceAccount with the shipped ClusterRole; the scraper is granted the
shipped ``gpuctl-async-metrics-reader``."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from gpuctl_async.settings import Settings
from tests.metrics_helpers import scrape

RBAC = Path(__file__).resolve().parent.parent / "config" / "k8s" / "rbac.yaml"


@pytest.fixture
async def secured_sim():
    from gpuctl_async.sim.testing import SimCluster

    async with SimCluster(token=secrets.token_urlsafe(16)) as cluster:
        yield cluster


@pytest.fixture
async def guarded(secured_sim, aiohttp_client, tmp_path):
    secured_sim.apply_manifests(RBAC)
    service = secured_sim.service_account_token("gpuctl-system", "gpuctl-async")
    kubeconfig = secured_sim.write_kubeconfig(tmp_path / "kubeconfig", token=service)
    client = await aiohttp_client(create_app(Settings(kubeconfig=str(kubeconfig),
                                                      access_log=False, auth="kubernetes",
                                                      freeze_heap=False)))
    assert await client.app[CACHE].wait_synced(timeout=10)
    return client


async def test_metrics_need_the_permission_when_auth_is_on(guarded, secured_sim):
    scraper = secured_sim.add_user("prometheus")
    secured_sim.bind("User", "prometheus", "gpuctl-async-metrics-reader")
    stranger = secured_sim.add_user("stranger")

    anonymous = await guarded.get("/metrics")
    assert anonymous.status == 401
    assert "WWW-Authenticate" in anonymous.headers

    refused = await guarded.get("/metrics", headers={"Authorization": f"Bearer {stranger}"})
    assert refused.status == 403
    assert (await refused.json())["error"] == \
        'Forbidden: User "stranger" cannot get path "/metrics"'

    samples = await scrape(guarded, Authorization=f"Bearer {scraper}")
    assert samples.get_value("gpuctl_auth_reviews_total", review="token") == 2
    assert samples.get_value("gpuctl_auth_reviews_total", review="access") == 2
    assert samples.get_value("gpuctl_auth_denials_total", review="access") == 1
    assert samples.get_value("gpuctl_auth_denials_total", review="token") == 0
    # the refusal was counted under the route template, by status class
    assert samples.get_value("gpuctl_http_requests_total", route="/metrics", method="GET",
                             status_class="4xx") == 2

    again = await scrape(guarded, Authorization=f"Bearer {scraper}")
    assert again.get_value("gpuctl_auth_reviews_total", review="access") == 2  # cached
    assert again.get_value("gpuctl_auth_cache_hits_total", review="access") >= 1
    assert again.get_value("gpuctl_auth_cache_hits_total", review="token") >= 1


async def test_a_bad_token_is_counted_as_a_token_denial(guarded, secured_sim):
    response = await guarded.get("/metrics", headers={"Authorization": "Bearer not-a-token"})
    assert response.status == 401
    reader = secured_sim.add_user("reader")
    secured_sim.bind("User", "reader", "gpuctl-async-metrics-reader")
    samples = await scrape(guarded, Authorization=f"Bearer {reader}")
    assert samples.get_value("gpuctl_auth_denials_total", review="token") == 1
    assert samples.get_value("gpuctl_auth_denials_total", review="access") == 0


async def test_writes_as_the_caller_are_counted_as_impersonated(guarded, secured_sim):
    from tests.helpers import job_yaml, node_manifest

    secured_sim.store.create("nodes", node_manifest("n1"))
    alice = secured_sim.add_user("alice")
    secured_sim.bind("User", "alice", "edit", "default")
    secured_sim.bind("User", "alice", "gpuctl-async-metrics-reader")
    response = await guarded.post("/api/v1/jobs", json={"yamlContent": job_yaml(name="t1")},
                                  headers={"Authorization": f"Bearer {alice}"})
    assert response.status == 201, await response.text()
    samples = await scrape(guarded, Authorization=f"Bearer {alice}")
    assert samples.get_value("gpuctl_kubernetes_impersonated_requests_total", verb="create") >= 1
    # the reviews themselves go with the service's own rights
    assert samples.get_value("gpuctl_kubernetes_requests_total", verb="create",
                             resource="subjectaccessreviews", code="201") >= 1
