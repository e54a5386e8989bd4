"""``Workloads``: what turns the simulated API server into a cluster that runs things.

Wires, on one ``Store``: the Priority and ResourceQuota admission plugins (in the API
server's order), the quota controller, the scheduler, the kubelets, the Job, ReplicaSet,
Deployment and StatefulSet controllers, and the event recorder they share; registers the
given nodes; and adds ``POST /_sim/seed/running-jobs`` (JSON ``{"jobs": 1000,
"podsPerJob": 10, "namespaces": 10, "prefix": "bench", "pool": "training-pool",
"gpusPerPod": 0}`` → counts and seconds) for benchmarks against a separate process.

The store stops finishing graceful pod deletions itself (``max_grace_seconds=None``): the
kubelets do, after stopping the containers. ``start()`` needs the running loop; ``stop()``
cancels every task and timer the components own.
"""

from __future__ import annotations

import orjson
from aiohttp import web

from gpuctl_async.sim.deployments import DeploymentController
from gpuctl_async.sim.events import EventRecorder
from gpuctl_async.sim.faults import SIM_PREFIX
from gpuctl_async.sim.jobs import JobController
from gpuctl_async.sim.kubelet import Kubelet
from gpuctl_async.sim.priority import admit_pod_priority
from gpuctl_async.sim.quota import QuotaController
from gpuctl_async.sim.replicasets import ReplicaSetController
from gpuctl_async.sim.scheduler import Scheduler
from gpuctl_async.sim.seeding import seed_running_jobs
from gpuctl_async.sim.statefulsets import StatefulSetController
from gpuctl_async.sim.store import Store
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.topology import seed_nodes


class Workloads:
    def __init__(self, store: Store, *, timing: Timing | None = None,
                 nodes: list[dict] | None = None):
        self.store = store
        self.timing = timing or Timing()
        self._nodes = nodes or []
        self.events = EventRecorder(store)
        self.quota = QuotaController(store)
        # kube-scheduler records through events.k8s.io/v1 (series, no count); the rest core/v1.
        self.scheduler = Scheduler(store, EventRecorder(
            store, series=True, instance="default-scheduler-sim-control-plane"))
        self.kubelet = Kubelet(store, self.events, self.timing)
        self.controllers = [cls(store, self.events, self.timing, self.quota) for cls in
                            (JobController, ReplicaSetController, DeploymentController,
                             StatefulSetController)]

    def start(self) -> None:
        self.store.max_grace_seconds = None
        self.store.add_admission("pods", admit_pod_priority)
        self.quota.install()
        self.scheduler.install()
        self.kubelet.install()
        for controller in self.controllers:
            controller.install()
        seed_nodes(self.store, self._nodes)
        self.scheduler.start()
        for controller in self.controllers:
            controller.start()

    async def stop(self) -> None:
        for controller in self.controllers:
            await controller.stop()
        await self.scheduler.stop()
        await self.kubelet.stop()
        self.quota.close()

    def seed_running_jobs(self, *, jobs: int = 1000, pods_per_job: int = 10,
                          namespaces: int = 10, prefix: str = "bench",
                          pool: str = "training-pool", gpus_per_pod: int = 0) -> dict:
        return seed_running_jobs(self.store, self.kubelet, jobs=jobs,
                                 pods_per_job=pods_per_job, namespaces=namespaces,
                                 prefix=prefix, pool=pool, gpus_per_pod=gpus_per_pod)

    def routes(self) -> list[web.RouteDef]:
        return [web.post(f"{SIM_PREFIX}/seed/running-jobs", self._seed_running_jobs)]

    async def _seed_running_jobs(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read() or b"{}")
            result = self.seed_running_jobs(
                jobs=int(body.get("jobs", 1000)), pods_per_job=int(body.get("podsPerJob", 10)),
                namespaces=int(body.get("namespaces", 10)),
                prefix=str(body.get("prefix", "bench")),
                pool=str(body.get("pool", "training-pool")),
                gpus_per_pod=int(body.get("gpusPerPod", 0)))
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
            raise web.HTTPBadRequest(text=f"bad seed request: {exc!r}") from None
        return web.Response(body=orjson.dumps(result), content_type="application/json")
