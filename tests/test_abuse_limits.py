"""Abuse limits over HTTP and WebSocket: the per-address rate limit, CORS, and the WebSocket
Origin check."""

from __future__ import annotations

import aiohttp
import pytest

from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from gpuctl_async.ratelimit.buckets import TokenBuckets
from gpuctl_async.settings import Settings, SettingsError, load_settings
from tests.conftest import sim_settings
from tests.helpers import eventually

UI = "https://ui.example.org"
EVIL = "https://evil.example.net"
ACA = "access-control-"


@pytest.fixture
def offline_app(aiohttp_client, unreachable_settings):
    """``offline_app(**settings)``: the app with these settings and no Kubernetes behind it."""
    async def make(**changes):
        return await aiohttp_client(create_app(unreachable_settings.replace(**changes)))
    return make


def cors_headers(resp) -> dict[str, str]:
    return {k.lower(): v for k, v in resp.headers.items() if k.lower().startswith(ACA)}


# -- rate limit ---------------------------------------------------------------------------

async def test_burst_then_429_with_integer_retry_after(offline_app):
    client = await offline_app(rate_limit_per_second=0.5, rate_limit_burst=3)
    statuses = [(await client.get("/")).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    resp = await client.get("/api/v1/does-not-matter")
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "2"  # one token at 0.5/s: 2 s
    body = await resp.json()
    assert set(body) == {"error", "requestId"} and "retry in 2 s" in body["error"]


async def test_probes_are_not_limited(offline_app):
    client = await offline_app(rate_limit_per_second=0.01, rate_limit_burst=1)
    assert (await client.get("/")).status == 200
    assert (await client.get("/")).status == 429
    for _ in range(5):
        assert (await client.get("/health")).status == 200
        assert (await client.get("/ready")).status == 503  # no cluster; but never 429


async def test_a_limited_client_recovers_once_its_bucket_refills(offline_app):
    client = await offline_app(rate_limit_per_second=2, rate_limit_burst=2)
    assert [(await client.get("/")).status for _ in range(2)] == [200, 200]
    refused = await client.get("/")
    assert refused.status == 429 and refused.headers["Retry-After"] == "1"

    async def status() -> int:
        return (await client.get("/")).status

    assert await eventually(status, lambda code: code == 200, timeout=5, interval=0.05) == 200


async def test_rate_zero_disables_the_limit(offline_app):
    client = await offline_app(rate_limit_per_second=0, rate_limit_burst=0)
    assert {(await client.get("/")).status for _ in range(50)} == {200}


def test_default_limit_is_on_and_generous():
    settings = Settings()
    assert settings.rate_limit_per_second >= 50 and settings.rate_limit_burst >= 200


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_buckets_refill_at_rate_and_say_how_long_to_wait():
    clock = Clock()
    buckets = TokenBuckets(rate=4, burst=2, clock=clock)
    assert [buckets.take("a"), buckets.take("a")] == [0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.25)
    assert buckets.take("b") == 0.0  # per key
    clock.now = 0.25
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.25)


def test_idle_buckets_are_forgotten():
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=5, clock=clock)  # full again after 0.5 s
    for client in range(1000):
        buckets.take(f"10.0.{client // 256}.{client % 256}")
    assert len(buckets) == 1000
    clock.now = 0.4
    buckets.take("busy")
    assert len(buckets) == 1001  # not idle long enough yet
    clock.now = 0.6
    buckets.take("busy")
    assert len(buckets) == 1  # only the one seen within the window


def test_bucket_count_never_exceeds_the_cap():
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=1, max_clients=100, clock=clock)
    for client in range(10_000):
        buckets.take(str(client))
        assert len(buckets) <= 100
    assert buckets.take("9999") > 0  # the most recent clients keep their state


@pytest.mark.parametrize("env", [{"GPUCTL_RATE_LIMIT_PER_SECOND": "-1"},
                                 {"GPUCTL_RATE_LIMIT_BURST": "0"}])
def test_rate_limit_settings_are_checked(env):
    with pytest.raises(SettingsError, match="rate_limit"):
        load_settings(environ=env)


# -- CORS ---------------------------------------------------------------------------------

async def test_cors_is_off_by_default(offline_client):
    resp = await offline_client.get("/", headers={"Origin": UI})
    assert resp.status == 200 and cors_headers(resp) == {}
    preflight = await offline_client.options("/api/v1/jobs", headers={
        "Origin": UI, "Access-Control-Request-Method": "POST"})
    assert preflight.status == 405 and cors_headers(preflight) == {}


async def test_listed_origin_gets_cors_answers(offline_app):
    client = await offline_app(cors_origins=("HTTPS://UI.example.org:443/",))
    resp = await client.get("/", headers={"Origin": UI})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == UI
    assert "Retry-After" in resp.headers["Access-Control-Expose-Headers"]
    assert "Origin" in resp.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in resp.headers  # bearer tokens, no cookies

    missing = await client.get("/api/v1/nope", headers={"Origin": UI})  # errors too
    assert missing.status == 404 and missing.headers["Access-Control-Allow-Origin"] == UI


async def test_preflight_for_listed_origin_allows_authorization(offline_app):
    client = await offline_app(cors_origins=(UI,))
    resp = await client.options("/api/v1/jobs", headers={
        "Origin": UI, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == UI
    assert {m.strip() for m in resp.headers["Access-Control-Allow-Methods"].split(",")} >= {
        "GET", "POST", "DELETE", "PUT", "PATCH"}
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed >= {"authorization", "content-type"}
    assert int(resp.headers["Access-Control-Max-Age"]) > 0


async def test_unlisted_origins_get_no_cors_answers(offline_app):
    client = await offline_app(cors_origins=(UI,))
    for origin in (EVIL, "null", "https://ui.example.org:8443", "http://ui.example.org"):
        resp = await client.get("/", headers={"Origin": origin})
        assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers
        preflight = await client.options("/api/v1/jobs", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        assert preflight.status == 405
        assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_429_is_readable_by_a_listed_page(offline_app):
    client = await offline_app(cors_origins=(UI,), rate_limit_per_second=0.01,
                               rate_limit_burst=1)
    await client.get("/", headers={"Origin": UI})
    resp = await client.get("/", headers={"Origin": UI})
    assert resp.status == 429
    assert resp.headers["Access-Control-Allow-Origin"] == UI
    assert "Retry-After" in resp.headers["Access-Control-Expose-Headers"]


def test_cors_origins_setting_is_normalised_and_checked():
    settings = load_settings(environ={"GPUCTL_CORS_ORIGINS": "HTTPS://UI.example.org/, "
                                                             "http://localhost:3000"})
    assert settings.cors_origins == (UI, "http://localhost:3000")
    for bad in ("ui.example.org", "https://ui.example.org/app", "*", "null"):
        with pytest.raises(SettingsError, match="cors_origins"):
            load_settings(environ={"GPUCTL_CORS_ORIGINS": bad})


# -- WebSocket Origin ---------------------------------------------------------------------

def own_origin(client) -> str:
    return f"http://{client.server.host}:{client.server.port}"


@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1:1", UI])
async def test_websocket_from_a_foreign_origin_is_refused_before_upgrade(api, origin):
    for path in ("/api/v1/jobs-feed/ws", "/api/v1/jobs/some-job/logs/ws"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await api.ws_connect(path, headers={"Origin": origin})
        assert refused.value.status == 403
    resp = await api.get("/api/v1/jobs-feed/ws", headers={
        "Origin": origin, "Connection": "Upgrade", "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert resp.status == 403
    assert (await resp.json())["error"] == (
        f"WebSocket connections from origin '{origin}' are not allowed")


async def test_websocket_from_own_origin_or_without_origin_is_accepted(api):
    for headers in ({"Origin": own_origin(api)}, {}):
        async with api.ws_connect("/api/v1/jobs-feed/ws", headers=headers) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "snapshot"


async def test_websocket_from_a_listed_origin_is_accepted(sim, aiohttp_client, tmp_path):
    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path, cors_origins=(UI,))))
    assert await client.app[CACHE].wait_synced(timeout=10)
    async with client.ws_connect("/api/v1/jobs-feed/ws", headers={"Origin": UI}) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "snapshot"
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/api/v1/jobs-feed/ws", headers={"Origin": EVIL})
    assert refused.value.status == 403


async def test_openapi_lists_429_exactly_where_the_limit_applies(offline_client):
    from gpuctl_async.ratelimit.middleware import UNLIMITED_PATHS

    document = await (await offline_client.get("/api/docs/openapi.json")).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            listed = "429" in operation["responses"]
            assert listed == (path not in UNLIMITED_PATHS), f"{method} {path}"
