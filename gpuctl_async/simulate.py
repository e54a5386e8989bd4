"""``serve --simulate``: run the simulated cluster in-process and point the service at it.

The simulated cluster runs workloads (controllers, scheduler, kubelets, quota, events; see
``sim.cluster``) on the default topology of ``sim.topology``: two 8 x A100 nodes in
``training-pool``, one 4 x T4 node in ``inference-pool``, one 2 x L4 node without a pool. The
service then connects through a kubeconfig file, exactly the path a real cluster takes; only
where the API server lives differs. The log says how to reach the same cluster with kubectl.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from gpuctl_async.appkeys import SETTINGS
from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.topology import default_nodes

log = logging.getLogger(__name__)

SIM = web.AppKey("simulated_cluster", SimCluster)


async def simulated_cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    """Must run before the Kubernetes client is built (earlier in ``cleanup_ctx``)."""
    settings = app[SETTINGS]
    if not settings.simulate:
        yield
        return
    workdir = Path(tempfile.mkdtemp(prefix="gpuctl-sim-"))
    try:
        async with SimCluster(workloads=True, nodes=default_nodes()) as sim:
            kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")
            app[SIM] = sim
            app[SETTINGS] = settings.replace(kubeconfig=str(kubeconfig), context=None,
                                             kube_api_url=None)
            log.info("Serving against a SIMULATED cluster at %s; reach it with: "
                     "kubectl --kubeconfig %s get pods -A", sim.url, kubeconfig)
            yield
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
