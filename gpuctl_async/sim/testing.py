"""``SimCluster``: a simulated Kubernetes API server in the current event loop, for tests.

::

    async with SimCluster(token=None, history_window=1000) as sim:
        sim.url                        # http://127.0.0.1:<ephemeral port>
        sim.write_kubeconfig(path)     # for kubernetes_asyncio load_kube_config and kubectl
        sim.store.create("pods", {...}, namespace="default")   # in-process seeding
        sim.app[API_KEY].register_subresource(...)             # extensions (part 2)
        sim.close_watches(); sim.compact(); sim.set_unavailable(5); sim.set_latency(0.1)
        sim.set_watch_delay(0.5); sim.silence_watches(5); sim.forbid("log")
        sim.refuse("list", "nodes")
        sim.close_log_streams("eof" | "reset"); sim.open_log_streams("ns/pod")
        sim.counters(); sim.request_count("list", "pods"); sim.reset_counters()
        sim.seed("pods", 10_000, namespace="bench")

    async with SimCluster(workloads=True, nodes=default_nodes(), timing=Timing.fast()) as sim:
        sim.workloads.scheduler / .kubelet / .quota / .events / .controllers
        sim.seed_running_jobs(jobs=1000, pods_per_job=10, namespaces=10)

Options: ``token``, ``history_window`` (events kept per resource for watch resumption),
``watch_timing`` (``sim.watch.WatchTiming``: bookmarks, watch length without
``timeoutSeconds``, timed compaction; default kube-apiserver's, ``WatchTiming.quick(0.2)``
for bookmarks every 0.2 s and no timed compaction), ``max_grace_seconds`` (how long graceful pod deletion takes;
None leaves it to a simulated kubelet), ``log_lines_per_second`` and ``log_buffer_lines``
(what every running container logs, see ``sim.logs``), ``host``, ``port`` (0: ephemeral),
``workloads`` (run controllers, scheduler, kubelets, quota and events: ``sim.cluster``;
default False, a bare API server), ``nodes`` (Node objects to register, e.g.
``sim.topology.default_nodes()``) and ``timing`` (``sim.timing.Timing``; with workloads).
Leaving the block ends every watch and log stream, stops the server and the store's deferred
work: no tasks remain.
"""

from __future__ import annotations

import os
from pathlib import Path

from aiohttp import web

from gpuctl_async.sim.cluster import Workloads
from gpuctl_async.sim.kubeconfig import write_kubeconfig
from gpuctl_async.sim.server import API_KEY, FAULTS_KEY, LOGS_KEY, create_app
from gpuctl_async.sim.store import Store
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.topology import seed_nodes
from gpuctl_async.sim.watch import WatchTiming

__all__ = ["SimCluster", "API_KEY"]


class SimCluster:
    def __init__(self, *, token: str | None = None, history_window: int = 20_000,
                 watch_timing: WatchTiming | None = None,
                 max_grace_seconds: float | None = 1.0, log_lines_per_second: float = 2.0,
                 log_buffer_lines: int = 10_000, host: str = "127.0.0.1", port: int = 0,
                 workloads: bool = False, nodes: list[dict] | None = None,
                 timing: Timing | None = None):
        self.token = token
        self._workloads, self._nodes, self._timing = workloads, nodes, timing
        self.workloads: Workloads | None = None
        self._options = {"history_window": history_window,
                         "max_grace_seconds": max_grace_seconds}
        self._app_options = {"watch_timing": watch_timing,
                             "log_lines_per_second": log_lines_per_second,
                             "log_buffer_lines": log_buffer_lines}
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.store: Store
        self.app: web.Application
        self.url = ""

    async def start(self) -> SimCluster:
        self.store = Store(**self._options)
        self.app = create_app(self.store, token=self.token, **self._app_options)
        if self._workloads:
            self.workloads = Workloads(self.store, timing=self._timing, nodes=self._nodes)
            self.app.add_routes(self.workloads.routes())
            self.workloads.start()
        elif self._nodes:
            seed_nodes(self.store, self._nodes)
        self._runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None,
                                     shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self.workloads is not None:
            await self.workloads.stop()
            self.workloads = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.store.close()

    async def __aenter__(self) -> SimCluster:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def write_kubeconfig(self, path: str | os.PathLike) -> Path:
        return write_kubeconfig(path, self.url, token=self.token)

    # -- mirrors of /_sim -------------------------------------------------------------------

    @property
    def _faults(self):
        return self.app[FAULTS_KEY]

    def close_watches(self) -> int:
        return self._faults.close_watches()

    def compact(self) -> int:
        return self._faults.compact()

    def set_unavailable(self, seconds: float, mode: str = "503") -> None:
        self._faults.set_unavailable(seconds, mode)

    def set_latency(self, seconds: float) -> None:
        self._faults.latency = seconds

    def set_watch_delay(self, seconds: float) -> None:
        self._faults.watches.delay = seconds

    def silence_watches(self, seconds: float) -> None:
        """Open watches send nothing for ``seconds``, as over a stalled connection."""
        self._faults.watches.silence(seconds)

    def refuse(self, verb: str | None, resource: str | None = None) -> None:
        """Answer 403 (as RBAC words it) to ``verb`` on ``resource`` (a plural such as
        ``nodes``); ``refuse(None)`` lifts it."""
        self._faults.set_refused(verb, resource)

    def forbid(self, subresource: str | None) -> None:
        """Answer 403 (as RBAC words it) to requests for ``subresource``; None lifts it."""
        self._faults.forbidden_subresource = subresource

    def counters(self) -> dict:
        return self._faults.counters()

    def request_count(self, verb: str, resource: str) -> int:
        return self._faults.counters()["requests"].get(verb, {}).get(resource, 0)

    def open_watches(self, resource: str | None = None) -> int:
        counts = self._faults.counters()["watches"]["open"]
        return counts.get(resource, 0) if resource else sum(counts.values())

    def close_log_streams(self, mode: str = "eof") -> int:
        return self.app[LOGS_KEY].cut(mode)

    def open_log_streams(self, pod: str | None = None) -> int:
        """Open ``follow`` log streams, of one pod (``"<ns>/<name>"``) or in all."""
        counts = self.app[LOGS_KEY].open_streams()
        return counts.get(pod, 0) if pod else sum(counts.values())

    def reset_counters(self) -> None:
        self._faults.reset_counters()

    def seed(self, resource: str, count: int, *, namespace: str = "default",
             template: dict | None = None, name_prefix: str | None = None) -> int:
        return self.store.seed(resource, count, namespace=namespace, template=template,
                               name_prefix=name_prefix)

    def seed_running_jobs(self, **options: object) -> dict:
        """Bulk Running gpuctl training jobs (``sim.seeding``); needs ``workloads=True``."""
        if self.workloads is None:
            raise RuntimeError("seed_running_jobs needs SimCluster(workloads=True)")
        return self.workloads.seed_running_jobs(**options)  # type: ignore[arg-type]
