"""Request ids round-trip (header, error bodies, log lines), and JSON logs parse line by line
with the request's id, route, status and duration, and no token or env value."""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestServer

from gpuctl_async.api.paths import JOB_FEED_PATH
from gpuctl_async.app import create_app
from gpuctl_async.appkeys import CACHE
from gpuctl_async.logsetup import AccessLogger, configure_logging
from tests.conftest import sim_settings
from tests.logs.helpers import add_pod, create_job

HEX_ID = re.compile(r"[0-9a-f]{32}")
SECRET = "s3cr3t-env-value-7f3a"
TOKEN = "tok-9c1d-not-for-logs"
JOB = f"""kind: training
job:
  name: train-secret
environment:
  image: busybox:1.36
  command: [sleep, '60']
  env:
    API_KEY: {SECRET}
resources:
  cpu: 1
  memory: 256Mi
"""


async def test_an_incoming_id_is_kept_and_echoed(api):
    response = await api.get("/health", headers={"X-Request-ID": "bug-1234.a_b:c"})
    assert response.headers["X-Request-ID"] == "bug-1234.a_b:c"


@pytest.mark.parametrize("incoming", [None, "", "x" * 129, "has space", "new\nline", "ünï"])
async def test_a_missing_or_unsafe_id_is_replaced(api, incoming):
    headers = {"X-Request-ID": incoming} if incoming is not None else {}
    try:
        response = await api.get("/health", headers=headers)
    except ValueError:  # the client refuses to send a header with a newline: nothing to test
        assert "\n" in (incoming or "")
        return
    assert HEX_ID.fullmatch(response.headers["X-Request-ID"])


async def test_error_bodies_carry_the_id_of_the_header(api):
    for response in (await api.get("/api/v1/jobs/nope"),
                     await api.get("/no/such/path"),
                     await api.post("/api/v1/jobs", json={"yamlContent": "kind: nonsense"}),
                     await api.get("/api/v1/jobs/nope", headers={"X-Request-ID": "r-1"})):
        body = await response.json()
        assert response.status >= 400 and "error" in body
        assert body["requestId"] == response.headers["X-Request-ID"]
    assert body["requestId"] == "r-1"
    ok = await (await api.get("/health")).json()
    assert "requestId" not in ok  # success bodies are left as they are


async def test_a_browser_page_may_send_and_read_the_id(aiohttp_client, sim, tmp_path):
    ui = "https://ui.example.org"
    client = await aiohttp_client(create_app(sim_settings(sim, tmp_path, cors_origins=(ui,))))
    preflight = await client.options("/api/v1/jobs", headers={
        "Origin": ui, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-request-id"})
    assert "X-Request-ID" in preflight.headers["Access-Control-Allow-Headers"]
    response = await client.get("/api/v1/jobs/nope", headers={"Origin": ui,
                                                               "X-Request-ID": "ui-1"})
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]
    assert response.headers["X-Request-ID"] == "ui-1"


async def test_answers_a_handler_sends_itself_carry_the_id(api, sim):
    """WebSocket upgrades and the event stream are sent before the middleware sees them."""
    job = await create_job(api, sim, "train")
    await add_pod(api, sim, job, "aaaaa")
    for n, path in enumerate((JOB_FEED_PATH, "/api/v1/stream", "/api/v1/jobs/train/logs/ws")):
        async with api.ws_connect(path, headers={"X-Request-ID": f"ws-{n}"}) as ws:
            assert ws._response.headers["X-Request-ID"] == f"ws-{n}", path
    for method in ("GET", "HEAD"):
        async with api.request(method, "/api/v1/jobs/train/logs/stream",
                               headers={"X-Request-ID": f"sse-{method}"}) as response:
            assert response.status == 200
            assert response.headers["X-Request-ID"] == f"sse-{method}"


@pytest.fixture
def json_logs():
    """Root logging as ``serve --log-format json --log-level DEBUG`` sets it, into a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    configure_logging("DEBUG", "json", stream=buffer)
    try:
        yield buffer
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


async def test_json_logs_parse_carry_the_id_and_leak_nothing(aiohttp_client, sim, tmp_path,
                                                             json_logs):
    server = TestServer(create_app(sim_settings(sim, tmp_path)))
    await server.start_server(access_log_class=AccessLogger)  # as serve's run_app does
    client = await aiohttp_client(server)
    assert await client.app[CACHE].wait_synced(timeout=10)
    headers = {"X-Request-ID": "create-42", "Authorization": f"Bearer {TOKEN}"}
    response = await client.post("/api/v1/jobs?dryRun=false", json={"yamlContent": JOB},
                                 headers=headers)
    assert response.status == 201, await response.text()
    failed = await client.get("/api/v1/jobs/ghost", headers={"X-Request-ID": "missing-43",
                                                             "Authorization": f"Bearer {TOKEN}"})
    assert failed.status == 404
    forged = await client.get("/api/v1/jobs/x%0A2026-01-01 INFO forged")
    assert forged.status == 404
    await client.close()  # the access log line is written once the connection is done

    text = json_logs.getvalue()
    assert SECRET not in text and TOKEN not in text
    lines = [orjson.loads(line) for line in text.splitlines()]  # every line is one object
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    created = [line for line in lines if line.get("requestId") == "create-42"]
    # the service's own line about the job and the access line, both under the id
    assert any(line["logger"] == "gpuctl_async.jobs.create" for line in created), created
    access = [line for line in created if line["logger"] == "aiohttp.access"]
    assert access and access[0]["route"] == "/api/v1/jobs" and access[0]["status"] == 201
    assert access[0]["durationMs"] > 0
    missing = [line for line in lines if line.get("requestId") == "missing-43"
               and line["logger"] == "aiohttp.access"]
    assert missing[0]["route"] == "/api/v1/jobs/{jobId}" and missing[0]["status"] == 404
    forged_line = next(line for line in lines if "forged" in line["message"])
    assert "\n" not in forged_line["message"]  # the path is logged as sent, encoded
    # lines outside any request (the informers) carry no id
    assert any("requestId" not in line for line in lines)


def test_text_logs_carry_the_id():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()
    try:
        configure_logging("INFO", "text", stream=buffer)
        logging.getLogger("gpuctl_async.test").info("outside")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert re.search(r" INFO gpuctl_async\.test \[-\]: outside$", buffer.getvalue().strip())


async def test_json_logs_at_debug_with_auth_on_carry_no_token(aiohttp_client, tmp_path,
                                                              json_logs):
    """The service's own token, a caller's token (accepted or not) and a job's env value
    never reach a line, whatever the level."""
    import secrets

    from gpuctl_async.settings import Settings
    from gpuctl_async.sim.testing import SimCluster
    from tests.helpers import node_manifest

    async with SimCluster(token=secrets.token_urlsafe(16)) as sim:
        sim.apply_manifests(Path(__file__).resolve().parent.parent / "config/k8s/rbac.yaml")
        service = sim.service_account_token("gpuctl-system", "gpuctl-async")
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig", token=service)
        sim.store.create("nodes", node_manifest("n1"))
        alice = sim.add_user("alice")
        sim.bind("User", "alice", "edit", "default")
        server = TestServer(create_app(Settings(kubeconfig=str(kubeconfig), auth="kubernetes",
                                                freeze_heap=False)))
        await server.start_server(access_log_class=AccessLogger)
        client = await aiohttp_client(server)
        assert await client.app[CACHE].wait_synced(timeout=10)
        created = await client.post("/api/v1/jobs", json={"yamlContent": JOB},
                                    headers={"Authorization": f"Bearer {alice}"})
        assert created.status == 201, await created.text()
        refused = await client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
        assert refused.status == 401
        await client.close()
    text = json_logs.getvalue()
    assert text  # DEBUG and the access log wrote plenty
    for secret in (service, alice, TOKEN, SECRET, sim.token):
        assert secret not in text
