"""``/metrics``: requests counted under their route templates, bounded labels, the
Kubernetes client's requests, the caches' restarts and relists, readiness (and ``/ready``
naming every reason), OpenMetrics, the settings."""

from __future__ import annotations

import pytest

from gpuctl_async import __version__
from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from gpuctl_async.metrics import METRICS
from gpuctl_async.settings import SettingsError, load_settings
from tests.conftest import sim_settings
from tests.helpers import eventually, job_yaml
from tests.metrics_helpers import scrape

JOB = "/api/v1/jobs/{jobId}"


async def test_a_request_moves_its_routes_counter_and_histogram(api):
    before = await scrape(api)
    assert (await api.get("/api/v1/jobs")).status == 200
    after = await scrape(api)
    labels = {"route": "/api/v1/jobs", "method": "GET", "status_class": "2xx"}
    assert after.get_value("gpuctl_http_requests_total", **labels) == \
        before.get_value("gpuctl_http_requests_total", **labels) + 1
    count = "gpuctl_http_request_duration_seconds_count"
    assert after.get_value(count, route="/api/v1/jobs") == \
        before.get_value(count, route="/api/v1/jobs") + 1
    assert after.get_value("gpuctl_http_response_bytes_total", route="/api/v1/jobs") > \
        before.get_value("gpuctl_http_response_bytes_total", route="/api/v1/jobs")
    # the scrape in progress is the one request in flight
    assert after.get_value("gpuctl_http_requests_in_flight") == 1


async def test_a_404_counts_under_its_route_template_not_its_path(api):
    assert (await api.get("/api/v1/jobs/no-such-job")).status == 404
    assert (await api.get("/no/such/path")).status == 404
    samples = await scrape(api)
    assert samples.get_value("gpuctl_http_requests_total", route=JOB, method="GET",
                             status_class="4xx") == 1
    assert samples.get_value("gpuctl_http_requests_total", route="unmatched", method="GET",
                             status_class="4xx") == 1
    routes = samples.label_values("gpuctl_http_requests_total", "route")
    assert not any("no-such-job" in route or "/no/such" in route for route in routes)


async def test_request_bytes_add_up_per_route_and_unknown_methods_count_as_other(api):
    bodies = [b'{"yamlContent": "kind: [unclosed"}', b'{"yamlContent": "%s"}' % (b"x" * 100)]
    for body in bodies:
        response = await api.post("/api/v1/jobs", data=body,
                                  headers={"Content-Type": "application/json"})
        assert response.status == 400
    for method in ("PROPFIND", "LOCK", "PROPFIND"):
        assert (await api.request(method, "/api/v1/jobs")).status == 405
    samples = await scrape(api)
    assert samples.get_value("gpuctl_http_request_bytes_total", route="/api/v1/jobs") == \
        sum(map(len, bodies))
    methods = samples.label_values("gpuctl_http_requests_total", "method")
    assert "PROPFIND" not in methods and "LOCK" not in methods
    assert samples.total("gpuctl_http_requests_total", method="OTHER",
                         status_class="4xx") == 3


async def test_label_sets_stay_bounded_after_1000_distinct_job_names(aiohttp_client, sim,
                                                                    tmp_path):
    # One address sends it all: the per-address rate limit would answer most of it.
    api = await aiohttp_client(create_app(sim_settings(sim, tmp_path, rate_limit_per_second=0)))
    assert await api.app[CACHE].wait_synced(timeout=10)
    for i in range(1000):
        response = await api.get(f"/api/v1/jobs/job-{i}", params={"namespace": f"ns-{i}"})
        assert response.status == 404
    await api.post("/api/v1/jobs", json={"yamlContent": "kind: [unclosed"})
    samples = await scrape(api)
    names = {name for name, _ in samples}
    series = {key for key in samples if key[0].startswith("gpuctl_http_")}
    assert len(series) < 100, sorted(series)[:20]
    assert samples.get_value("gpuctl_http_requests_total", route=JOB, method="GET",
                             status_class="4xx") == 1000
    text = await (await api.get("/metrics")).text()
    assert "job-999" not in text and "ns-999" not in text
    assert "gpuctl_kubernetes_requests_total" in names


async def test_kubernetes_requests_are_counted_by_verb_resource_and_code(api, sim):
    response = await api.post("/api/v1/jobs", json={"yamlContent": job_yaml(name="train-m")})
    assert response.status == 201, await response.text()
    samples = await scrape(api)
    assert samples.get_value("gpuctl_kubernetes_requests_total", verb="create",
                             resource="jobs", code="201") == 1
    assert samples.total("gpuctl_kubernetes_requests_total", verb="list", resource="pods") >= 1
    assert samples.total("gpuctl_kubernetes_requests_total", verb="watch", resource="pods") >= 1
    # the write's way into the cache was timed (the cache lag of our own writes)
    assert samples.get_value("gpuctl_cache_write_visible_seconds_count", informer="jobs") == 1
    labels = samples.label_values("gpuctl_kubernetes_requests_total", "resource")
    assert not any("train-m" in label for label in labels)


async def test_api_server_failures_are_pushback(api, sim):
    sim.set_unavailable(30)
    try:
        response = await api.delete("/api/v1/jobs/ghost", params={"namespace": "default"})
        assert response.status in (404, 503)
        await api.get("/ready")
        samples = await scrape(api)
        assert samples.get_value("gpuctl_kubernetes_pushback_total", reason="server_error") >= 1
        assert samples.get_value("gpuctl_kubernetes_api_reachable") == 0
        assert samples.get_value("gpuctl_ready") == 0
    finally:
        sim.set_unavailable(0)


async def test_throttling_is_pushback(api, sim):
    sim.set_unavailable(30, mode="429")
    try:
        response = await api.post("/api/v1/jobs", json={"yamlContent": job_yaml(name="t")})
        assert response.status == 503  # the API server's push-back, passed on
        samples = await scrape(api)
        assert samples.get_value("gpuctl_kubernetes_pushback_total", reason="throttled") >= 1
        assert samples.total("gpuctl_kubernetes_requests_total", code="429") >= 1
    finally:
        sim.set_unavailable(0)


async def test_a_dropped_watch_is_a_restart_and_compaction_a_relist(api, sim):
    cache = api.app[CACHE]
    await eventually(lambda: all(i.connected for i in cache.all), bool)
    before = await scrape(api)
    assert before.get_value("gpuctl_informer_synced", informer="pods") == 1
    assert before.get_value("gpuctl_informer_relists_total", informer="pods") == 0
    restarts = before.get_value("gpuctl_informer_watch_restarts_total", informer="pods")

    sim.close_watches()
    after = await eventually(
        lambda: scrape(api),
        lambda s: s.get_value("gpuctl_informer_watch_restarts_total", informer="pods")
        > restarts)
    assert after.get_value("gpuctl_informer_relists_total", informer="pods") == 0

    sim.store.create("pods", {"metadata": {"name": "p1", "labels": {
        "runwhere.ai/job-type": "training"}}, "spec": {"containers": [
        {"name": "main", "image": "busybox:1.36"}]}}, namespace="default")
    sim.compact()
    sim.close_watches()
    relisted = await eventually(
        lambda: scrape(api),
        lambda s: s.get_value("gpuctl_informer_relists_total", informer="pods") >= 1)
    await eventually(lambda: scrape(api),
                     lambda s: s.get_value("gpuctl_informer_objects", informer="pods") == 1)
    assert relisted.get_value("gpuctl_informer_last_event_age_seconds", informer="pods") < 60


async def test_openmetrics_when_asked_and_process_collectors(api):
    response = await api.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    text = await response.text()
    assert text.rstrip().endswith("# EOF")
    plain = await api.get("/metrics")
    assert plain.headers["Content-Type"].startswith("text/plain")
    body = await plain.text()
    assert "process_resident_memory_bytes" in body and "python_info" in body
    assert f'gpuctl_build_info{{version="{__version__}"}} 1.0' in body


async def test_every_app_has_its_own_registry(aiohttp_client, sim, tmp_path):
    first = await aiohttp_client(create_app(sim_settings(sim, tmp_path)))
    second = await aiohttp_client(create_app(sim_settings(sim, tmp_path)))
    assert first.app[METRICS].registry is not second.app[METRICS].registry
    await first.get("/health")
    assert (await scrape(second)).get_value(
        "gpuctl_http_requests_total", route="/health", method="GET", status_class="2xx") == 0


async def test_metrics_off_means_no_route_and_no_counting(aiohttp_client, sim, tmp_path):
    from gpuctl_async.requestids import REQUEST_OBSERVER

    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path, metrics=False)))
    assert METRICS not in client.app and REQUEST_OBSERVER not in client.app
    assert (await client.get("/metrics")).status == 404


async def test_ready_names_every_reason_and_the_same_facts_are_metrics(offline_client):
    response = await offline_client.get("/ready")
    assert response.status == 503
    body = await response.json()
    reasons = body["reasons"]
    assert reasons[0].startswith("Kubernetes API server is not answering: ")
    caches = [reason for reason in reasons if reason.startswith("cache of ")]
    assert {reason.split()[2] for reason in caches} >= {
        "pods", "nodes", "namespaces", "events", "resourcequotas", "priorityclasses"}
    assert len(caches) == len(offline_client.app[CACHE].all)  # every cache, not the first
    assert body["error"] == "; ".join(reasons)
    samples = await scrape(offline_client)
    assert samples.get_value("gpuctl_ready") == 0
    assert samples.get_value("gpuctl_kubernetes_api_reachable") == 0
    assert samples.get_value("gpuctl_informer_synced", informer="pods") == 0
    assert samples.get_value("gpuctl_kubernetes_pushback_total", reason="unreachable") >= 1


def test_log_format_must_be_text_or_json():
    assert load_settings(environ={"GPUCTL_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(SettingsError, match="'log_format' must be 'text' or 'json'"):
        load_settings(environ={"GPUCTL_LOG_FORMAT": "xml"})


async def test_a_silent_watch_counts_an_inactivity_restart(sim, tmp_path):
    from gpuctl_async.k8s.client import KubeClient, build_api_client
    from gpuctl_async.k8s.informer import Informer
    from gpuctl_async.k8s.resources import PRIORITY_CLASSES
    from tests.helpers import eventually

    settings = sim_settings(sim, tmp_path)
    api_client, _ = await build_api_client(settings)
    kube = KubeClient(api_client)
    # Nothing changes and the sim's bookmarks come once a minute: the stream stays silent.
    informer = Informer(kube, PRIORITY_CLASSES, inactivity_timeout=0.3)
    informer.start()
    try:
        await eventually(lambda: informer.stats.inactivity_restarts, lambda n: n >= 1)
        await eventually(lambda: informer.stats.watches, lambda n: n >= 2)  # reopened
        assert informer.stats.lists == 1  # a restart, not a relist
    finally:
        await informer.stop()
        await kube.close()
