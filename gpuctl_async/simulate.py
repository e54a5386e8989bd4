"""``serve --simulate``: run the simulated cluster in-process and point the service at it.

The simulated cluster runs workloads (controllers, scheduler, kubelets, quota, events; see
``sim.cluster``) on the default topology of ``sim.topology``: two 8 x A100 nodes in
``training-pool``, one 4 x T4 node in ``inference-pool``, one 2 x L4 node without a pool. The
service then connects through a kubeconfig file, exactly the path a real cluster takes; only
where the API server lives differs. The log says how to reach the same cluster with kubectl.

With ``auth: kubernetes`` (``serve --simulate --auth kubernetes``) the simulated cluster
authenticates and authorizes as a real one does, with demo identities for trying it by hand
(:func:`install_demo_identities`): an ``admin`` (``system:masters``), and tenants ``alice``
and ``bob`` bound to the ``edit`` ClusterRole in ``team-a`` and ``team-b``. The service runs
as the ``gpuctl-async`` ServiceAccount bound to the ClusterRole shipped in
``config/k8s/rbac.yaml`` alone, as in a real deployment. The tokens are printed once on
stdout at start-up, never logged.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gpuctl_async.appkeys import SETTINGS
from gpuctl_async.k8s import labels
from gpuctl_async.sim.testing import SimCluster
from gpuctl_async.sim.topology import default_nodes

log = logging.getLogger(__name__)

SIM = web.AppKey("simulated_cluster", SimCluster)
SERVICE_RBAC = Path(__file__).resolve().parent.parent / "config" / "k8s" / "rbac.yaml"
SERVICE_ACCOUNT = ("gpuctl-system", "gpuctl-async")
TENANTS = (("alice", "team-a"), ("bob", "team-b"))


@dataclass(frozen=True)
class DemoIdentities:
    admin: str
    tenants: dict[str, tuple[str, str]]  # user -> (namespace, token)
    service: str


def install_service_role(sim: SimCluster, path: Path = SERVICE_RBAC) -> str:
    """Apply ``config/k8s/rbac.yaml`` (ServiceAccount, ClusterRole, binding) to ``sim`` and
    return a token of that ServiceAccount."""
    sim.apply_manifests(path)
    return sim.service_account_token(*SERVICE_ACCOUNT)


def create_tenant_namespace(sim: SimCluster, namespace: str) -> None:
    """A namespace marked as gpuctl's, as the service would create it."""
    sim.store.create("namespaces", {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": namespace, "labels": {labels.NAMESPACE: labels.NAMESPACE_MARKER}}})


def install_demo_identities(sim: SimCluster) -> DemoIdentities:
    tenants = {}
    for user, namespace in TENANTS:
        create_tenant_namespace(sim, namespace)
        token = sim.add_user(user, groups=("tenants",))
        sim.bind("User", user, "edit", namespace=namespace)
        tenants[user] = (namespace, token)
    return DemoIdentities(admin=sim.token or "", tenants=tenants,
                          service=install_service_role(sim))


def _print_identities(demo: DemoIdentities, url: str) -> None:
    lines = ["", "Simulated cluster with authentication on. Demo identities (shown once):",
             f"  admin (system:masters)         {demo.admin}"]
    for user, (namespace, token) in demo.tenants.items():
        lines.append(f"  {user} (edit in {namespace}){' ' * (17 - len(user) - len(namespace))}"
                     f"{token}")
    lines += ["Call the API with:  curl -H 'Authorization: Bearer <token>' "
              f"{url}/api/v1/jobs", ""]
    print("\n".join(lines), flush=True)


async def simulated_cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    """Must run before the Kubernetes client is built (earlier in ``cleanup_ctx``)."""
    settings = app[SETTINGS]
    if not settings.simulate:
        yield
        return
    auth = settings.auth == "kubernetes"
    workdir = Path(tempfile.mkdtemp(prefix="gpuctl-sim-"))
    try:
        async with SimCluster(workloads=True, nodes=default_nodes(),
                              token=secrets.token_urlsafe(24) if auth else None) as sim:
            service_token = None
            if auth:
                demo = install_demo_identities(sim)
                service_token = demo.service
            kubeconfig = sim.write_kubeconfig(workdir / "kubeconfig")  # kubectl: the admin
            service_kubeconfig = (sim.write_kubeconfig(workdir / "service.kubeconfig",
                                                       token=service_token)
                                  if auth else kubeconfig)
            app[SIM] = sim
            app[SETTINGS] = settings.replace(kubeconfig=str(service_kubeconfig), context=None,
                                             kube_api_url=None)
            log.info("Serving against a SIMULATED cluster at %s; reach it with: "
                     "kubectl --kubeconfig %s get pods -A", sim.url, kubeconfig)
            if auth:
                _print_identities(demo, f"http://{settings.host}:{settings.port}")
            yield
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
