"""The Kubernetes client's session: no worker thread per request, the proxy read once."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from gpuctl_async.k8s.client import KubeClient, build_api_client
from gpuctl_async.settings import Settings


class CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting what is handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, *args, **kwargs):
        self.submitted += 1
        return super().submit(*args, **kwargs)


async def test_requests_hand_nothing_to_a_worker_thread(sim, tmp_path):
    # aiohttp with trust_env looks up ~/.netrc and the proxy variables in a thread per request
    executor = CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    settings = Settings(kubeconfig=str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
    api_client, _ = await build_api_client(settings)
    kube = KubeClient(api_client)
    try:
        for _ in range(3):
            await kube.request("GET", "/api/v1/namespaces")
        await kube.request("POST", "/api/v1/namespaces",
                           body={"metadata": {"name": "threadless"}})
    finally:
        await kube.close()
    assert executor.submitted == 0


async def test_the_proxy_comes_from_the_environment_once(sim, tmp_path, monkeypatch):
    kubeconfig = str(sim.write_kubeconfig(tmp_path / "kubeconfig"))
    monkeypatch.setenv("HTTP_PROXY", "http://someone:secret@proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    api_client, _ = await build_api_client(Settings(kubeconfig=kubeconfig))
    try:
        cfg = api_client.configuration
        assert cfg.proxy == "http://proxy.example:3128"  # credentials go in a header instead
        assert cfg.proxy_headers == {"Proxy-Authorization": "Basic c29tZW9uZTpzZWNyZXQ="}
    finally:
        await api_client.close()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the simulated cluster's host: no proxy
    api_client, _ = await build_api_client(Settings(kubeconfig=kubeconfig))
    try:
        assert not api_client.configuration.proxy
    finally:
        await api_client.close()
