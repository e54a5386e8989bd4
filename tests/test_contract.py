"""Contract test: Schemathesis drives every HTTP operation of the OpenAPI document against
``gpuctl-async serve --simulate`` (the default topology, as a user first meets it).

Checks on every generated request: no 5xx, the status code is one the operation documents,
the body matches the documented schema, and the content type is the documented one. The
number of examples per operation is bounded so the whole run stays well under two minutes on
a 2-core CI machine. The streaming routes are excluded: the WebSockets, as Schemathesis
speaks plain HTTP (``tests/test_hostile_input.py`` checks their 400 for a plain GET), and the
log event stream, whose answer to a job that exists does not end while the job runs
(``tests/logs/test_events.py`` checks its refusals and its stream).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES_PER_OPERATION = 40
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance,
          content_type_conformance]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve --simulate exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)  # polling for a condition, with a deadline
    raise TimeoutError(f"{url}/ready did not answer 200 within {timeout} s")


@pytest.fixture(scope="module")
def served_url(tmp_path_factory):
    """``gpuctl-async serve --simulate`` as a user runs it, on a free port."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gpuctl_async", "serve", "--simulate", "--port", str(port),
         "--no-access-log", "--log-level", "ERROR"],
        cwd=tmp_path_factory.mktemp("contract"), stdout=subprocess.DEVNULL,
        # One client sends every request: the per-address rate limit would answer most 429.
        env={**os.environ, "GPUCTL_CONFIG": os.devnull, "GPUCTL_RATE_LIMIT_PER_SECOND": "0"})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _document() -> dict:
    """The OpenAPI document as the app builds it (at collection time, so that pytest sees one
    test per operation; ``schemathesis.pytest.from_fixture`` would defer this, but it does not
    work with pytest 9.2's node ids)."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from gpuctl_async.app import create_app
    from gpuctl_async.settings import Settings

    async def fetch() -> dict:
        # Building the document needs no cluster: nobody listens at this address.
        app = create_app(Settings(kube_api_url=f"http://127.0.0.1:{_free_port()}",
                                  access_log=False))
        async with TestClient(TestServer(app)) as client:
            return await (await client.get("/api/docs/openapi.json")).json()

    return asyncio.run(fetch())


schema = schemathesis.openapi.from_dict(_document()).exclude(
    path_regex=r".*/ws$|^/api/v1/stream$|.*/logs/stream$")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_contract(case, served_url):
    case.call_and_validate(base_url=served_url, checks=CHECKS, timeout=30)
