"""Base routes and the error envelope, through HTTP."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from aiohttp import web

from gpuctl_async import __version__
from gpuctl_async.app import create_app
from gpuctl_async.probes import probe
from tests.helpers import without_request_id
from tests.metrics_helpers import scrape


async def test_root_names_service_and_version(offline_client):
    resp = await offline_client.get("/")
    assert resp.status == 200
    assert await resp.json() == {"message": "GPU Control API", "version": __version__}


async def test_health_is_live_without_kubernetes(offline_client):
    resp = await offline_client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "healthy"
    stamp = datetime.fromisoformat(body["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - stamp) < timedelta(minutes=1)


async def test_ready_is_503_when_kubernetes_does_not_answer(offline_client):
    resp = await offline_client.get("/ready")
    assert resp.status == 503
    body = await resp.json()
    assert "Kubernetes API server" in body["error"]


async def test_unknown_path_is_json_404(offline_client):
    resp = await offline_client.get("/no/such/path")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert without_request_id(await resp.json()) == {"error": "Not found: /no/such/path"}


async def test_wrong_method_is_json_405_with_allow(offline_client):
    resp = await offline_client.delete("/health")
    assert resp.status == 405
    assert resp.headers["Allow"] == "GET,HEAD"
    assert (await resp.json())["error"] == "Method DELETE not allowed for /health"


async def test_unhandled_exception_is_500_without_traceback(aiohttp_client, unreachable_settings,
                                                              caplog):
    app = create_app(unreachable_settings)

    async def boom(request):
        raise RuntimeError("secret internals")

    app.router.add_get("/boom", boom)
    client = await aiohttp_client(app)
    resp = await client.get("/boom")
    assert resp.status == 500
    assert without_request_id(await resp.json()) == {"error": "Internal server error"}
    assert "secret internals" in caplog.text  # logged with its traceback, not sent
    assert "Traceback" in caplog.text


async def test_body_over_limit_is_413(aiohttp_client, unreachable_settings):
    settings = unreachable_settings.replace(max_body_bytes=2048)
    app = create_app(settings)

    async def echo(request):
        return web.json_response({"size": len(await request.read())})

    app.router.add_post("/echo", echo)
    client = await aiohttp_client(app)
    assert (await client.post("/echo", data=b"x" * 100)).status == 200
    resp = await client.post("/echo", data=b"x" * 4096)
    assert resp.status == 413
    assert without_request_id(await resp.json()) == {
        "error": "Request body is larger than the limit of 2048 bytes"}


async def test_ready_once_kubernetes_answers_and_caches_synced(api):
    resp = await api.get("/ready")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready"}


async def test_probes_skip_the_inner_middlewares_but_keep_id_metrics_and_cors(
        aiohttp_client, unreachable_settings):
    ui = "https://ui.example.org"
    client = await aiohttp_client(create_app(unreachable_settings.replace(cors_origins=(ui,))))
    # A token the consistency middleware refuses elsewhere is not looked at for a probe.
    bad_token = {"X-Consistency-Token": "not a token", "Origin": ui, "X-Request-ID": "probe-1"}
    refused = await client.get("/api/v1/jobs", headers=bad_token)
    assert refused.status == 400 and "X-Consistency-Token" in (await refused.json())["error"]
    health = await client.get("/health", headers=bad_token)
    assert health.status == 200 and (await health.json())["status"] == "healthy"
    assert health.headers["X-Request-ID"] == "probe-1"
    assert health.headers["Access-Control-Allow-Origin"] == ui
    ready = await client.get("/ready", headers=bad_token)
    assert ready.status == 503 and ready.headers["X-Request-ID"] == "probe-1"
    assert "Kubernetes API server" in (await ready.json())["error"]
    metrics = await (await client.get("/metrics")).text()
    assert 'gpuctl_http_requests_total{method="GET",route="/health",status_class="2xx"} 1.0' \
        in metrics
    assert 'gpuctl_http_requests_total{method="GET",route="/ready",status_class="5xx"} 1.0' \
        in metrics


async def test_a_probe_that_fails_still_gets_the_json_envelope(aiohttp_client,
                                                                unreachable_settings, caplog):
    app = create_app(unreachable_settings)

    @probe
    async def broken_probe(request):
        raise RuntimeError("secret internals")

    app.router.add_get("/broken-probe", broken_probe)
    client = await aiohttp_client(app)
    resp = await client.get("/broken-probe", headers={"X-Request-ID": "p-2"})
    assert resp.status == 500
    assert await resp.json() == {"error": "Internal server error", "requestId": "p-2"}
    assert "Traceback" in caplog.text


async def test_every_route_is_reached_by_its_own_paths(offline_client):
    """Routes under one prefix are tried in the order they were added (the busiest first,
    see ``create_app``): none may take another's requests. Each route gets a request for
    its template with every ``{variable}`` filled in; the metrics name the route that
    answered it."""
    sent: list[tuple[str, str]] = []
    for route in offline_client.app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD" or resource.canonical == "/metrics":
            continue
        template = resource.canonical
        path = re.sub(r"\{[^}]+\}", "x1", template)
        await offline_client.request(route.method, path)
        sent.append((template, route.method))
    assert len(sent) > 30
    samples = await scrape(offline_client)
    missed = [(template, method) for template, method in sent
              if samples.total("gpuctl_http_requests_total", route=template, method=method) < 1]
    assert not missed
