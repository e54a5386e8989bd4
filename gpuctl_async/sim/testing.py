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

Authentication and RBAC (``sim.access``; none of it unless ``token``, ``token_file`` or
``users`` is given: the sim is then open, as before)::

    async with SimCluster(token="admin-token", users=[("t-alice", "alice", "u1", ["devs"])]
                          ) as sim:   # or token_file="tokens.csv" (--token-auth-file CSV)
        bob = sim.add_user("bob", groups=("devs",), uid=None)      # -> a new token
        sim.bind("User", "alice", "edit", namespace="team-a")      # RoleBinding
        sim.bind("Group", "devs", "view")                          # ClusterRoleBinding
        sim.bind("ServiceAccount", "gpuctl-system/gpuctl-async", "gpuctl-async")
        sim.unbind("User", "alice", "edit", namespace="team-a")    # -> True if it existed
        sim.ensure_namespace("team-b"); sim.secured                 # True: auth is on
        sa = sim.service_account_token("gpuctl-system", "gpuctl-async",
                                       expiration_seconds=3600)   # creates SA (+ns) if needed
        sim.apply_manifests("config/k8s/rbac.yaml")                # or a YAML string
        sim.write_kubeconfig(path, token=bob, namespace="team-a")  # kubectl as bob
        sim.audit(verb="create", resource="jobs", user="alice"); sim.reset_audit()
        sim.authorize("alice", "list", "pods", namespace="team-b",
                      groups=("devs",), api_group="", subresource="", name="")
                                                                   # -> (allowed, reason)

kubectl sends tokens only over TLS: ``SimCluster(tls=True)`` serves HTTPS with a throwaway
self-signed certificate (``sim.tls``; ``sim.url`` is ``https://...``) that ``write_kubeconfig``
embeds, so the real kubectl can act as a user. Python clients work either way.

``bind`` names its binding ``sim:<role>:<kind>:<subject>`` (``:`` for ``/``;
``SimCluster.binding_name``) so ``unbind`` finds it, returns the binding and creates the
namespace if needed; ``role_kind="Role"`` binds a namespaced Role. ServiceAccount subjects are
``"ns/name"`` or ``"system:serviceaccount:ns:name"``. ``authorize`` asks the authorizer
directly (no HTTP), adding ``system:authenticated`` to ``groups``. ``service_account_token``
may mint tokens shorter than the 10 minutes the HTTP TokenRequest allows (even 0 or less:
expired at once), for expiry tests.

Options: ``token`` (one ``system:masters`` token, user ``admin``), ``token_file``, ``users``
(``(token, user, uid, groups)`` tuples, ``{"token", "user", "uid", "groups"}`` dicts, or a
``{token: authn.UserInfo}`` mapping), ``tls`` (serve HTTPS, see above), ``history_window``
(events kept per resource for watch resumption), ``watch_timing`` (``sim.watch.WatchTiming``:
bookmarks, watch length without ``timeoutSeconds``, timed compaction; default
kube-apiserver's, ``WatchTiming.quick(0.2)`` for bookmarks every 0.2 s and no timed
compaction), ``max_grace_seconds`` (how long graceful pod deletion takes; None leaves it to
a simulated kubelet), ``namespace_finalize_seconds`` (how long a deleted namespace stays
Terminating at least; default 3 s, as a real one takes seconds), ``log_lines_per_second`` and ``log_buffer_lines`` (what every running container
logs, see ``sim.logs``), ``host``, ``port`` (0: ephemeral), ``workloads`` (run controllers,
scheduler, kubelets, quota and events: ``sim.cluster``; default False, a bare API server),
``nodes`` (Node objects to register, e.g. ``sim.topology.default_nodes()``) and ``timing``
(``sim.timing.Timing``; with workloads). Leaving the block ends every watch and log stream,
stops the server and the store's deferred work: no tasks remain.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

import yaml
from aiohttp import web

from gpuctl_async.sim.authn import UserInfo, parse_token_file

from gpuctl_async.sim.cluster import Workloads
from gpuctl_async.sim.kubeconfig import write_kubeconfig
from gpuctl_async.sim.resources import BY_KIND
from gpuctl_async.sim.rest import RequestInfo
from gpuctl_async.sim.server import (
    ACCESS_KEY,
    API_KEY,
    FAULTS_KEY,
    LOGS_KEY,
    REVIEWS_KEY,
    create_app,
)
from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import Store
from gpuctl_async.sim.timing import Timing
from gpuctl_async.sim.tls import ServingCertificate
from gpuctl_async.sim.topology import seed_nodes
from gpuctl_async.sim.watch import WatchTiming

__all__ = ["SimCluster", "API_KEY"]

_DEFAULT = object()
_RBAC_VERSION = "rbac.authorization.k8s.io/v1"


def _users(users: Iterable | None) -> dict[str, UserInfo]:
    if isinstance(users, dict):
        return dict(users)
    tokens: dict[str, UserInfo] = {}
    for user in users or ():
        if isinstance(user, dict):
            token, name = user["token"], user["user"]
            uid, groups = user.get("uid") or "", user.get("groups") or ()
        else:
            token, name, *rest = user
            uid = rest[0] if rest else ""
            groups = rest[1] if len(rest) > 1 else ()
        tokens[token] = UserInfo(name, uid or "", tuple(groups or ()))
    return tokens


class SimCluster:
    def __init__(self, *, token: str | None = None, token_file: str | os.PathLike | None = None,
                 users: Iterable | None = None, history_window: int = 20_000,
                 watch_timing: WatchTiming | None = None,
                 max_grace_seconds: float | None = 1.0, namespace_finalize_seconds: float = 3.0,
                 log_lines_per_second: float = 2.0,
                 log_buffer_lines: int = 10_000, host: str = "127.0.0.1", port: int = 0,
                 workloads: bool = False, nodes: list[dict] | None = None,
                 timing: Timing | None = None, tls: bool = False):
        self.token = token
        self._users: dict[str, UserInfo] | None = None
        if token_file is not None or users is not None:
            self._users = parse_token_file(token_file) if token_file is not None else {}
            self._users.update(_users(users))
        self._workloads, self._nodes, self._timing = workloads, nodes, timing
        self.workloads: Workloads | None = None
        self._options = {"history_window": history_window,
                         "max_grace_seconds": max_grace_seconds,
                         "namespace_finalize_seconds": namespace_finalize_seconds}
        self._app_options = {"watch_timing": watch_timing,
                             "log_lines_per_second": log_lines_per_second,
                             "log_buffer_lines": log_buffer_lines}
        self._host, self._port = host, port
        self._tls = tls
        self.certificate: ServingCertificate | None = None
        self._runner: web.AppRunner | None = None
        self.store: Store
        self.app: web.Application
        self.url = ""

    async def start(self) -> SimCluster:
        self.store = Store(**self._options)
        self.app = create_app(self.store, token=self.token, users=self._users,
                              **self._app_options)
        if self._workloads:
            self.workloads = Workloads(self.store, timing=self._timing, nodes=self._nodes)
            self.app.add_routes(self.workloads.routes())
            self.workloads.start()
        elif self._nodes:
            seed_nodes(self.store, self._nodes)
        # Watches and log streams are ended on shutdown (server.py); what is left are idle
        # keep-alive connections, and one accepted just before the listener closed waits out
        # the whole timeout in aiohttp before its handler is cancelled: keep it short.
        self._runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        context = None
        if self._tls:
            self.certificate = await ServingCertificate.create(self._host)
            context = self.certificate.ssl_context()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=context)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"{'https' if self._tls else 'http'}://{host}:{port}"
        return self

    async def stop(self) -> None:
        if self.workloads is not None:
            await self.workloads.stop()
            self.workloads = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.store.close()
        if self.certificate is not None:
            self.certificate.cleanup()
            self.certificate = None

    async def __aenter__(self) -> SimCluster:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def write_kubeconfig(self, path: str | os.PathLike,
                         token: str | None = _DEFAULT,  # type: ignore[assignment]
                         namespace: str = "default") -> Path:
        """A kubeconfig for ``token`` (default: the ``token`` option; None: no credentials)."""
        return write_kubeconfig(path, self.url, token=self.token if token is _DEFAULT else token,
                                namespace=namespace,
                                ca_pem=self.certificate.pem() if self.certificate else None)

    # -- identities and RBAC ------------------------------------------------------------------

    @property
    def secured(self) -> bool:
        return bool(self.token) or self._users is not None

    def add_user(self, user: str, groups: Iterable[str] = (), uid: str | None = None, *,
                 token: str | None = None) -> str:
        """Register a static token for ``user`` (as a token-file line would); returns it."""
        token = token or secrets.token_urlsafe(24)
        self.app[ACCESS_KEY].authenticator.add_static(token, UserInfo(user, uid or user,
                                                                      tuple(groups)))
        return token

    @staticmethod
    def _subject(kind: str, name: str) -> dict:
        if kind == "ServiceAccount":
            if name.startswith("system:serviceaccount:"):
                namespace, _, account = name[len("system:serviceaccount:"):].partition(":")
            else:
                namespace, _, account = name.partition("/")
            if not namespace or not account:
                raise ValueError(f"ServiceAccount subject {name!r}: want 'namespace/name'")
            return {"kind": "ServiceAccount", "name": account, "namespace": namespace}
        if kind not in ("User", "Group"):
            raise ValueError(f"subject kind {kind!r}: want User, Group or ServiceAccount")
        return {"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": name}

    @staticmethod
    def binding_name(subject_kind: str, subject_name: str, role: str) -> str:
        return f"sim:{role}:{subject_kind.lower()}:{subject_name.replace('/', ':')}"

    def bind(self, subject_kind: str, subject_name: str, role: str,
             namespace: str | None = None, *, role_kind: str = "ClusterRole") -> dict:
        """Grant ``role`` to a subject: a RoleBinding in ``namespace`` (created if missing),
        else a ClusterRoleBinding. Returns the binding; binding twice is a no-op."""
        name = self.binding_name(subject_kind, subject_name, role)
        body = {"apiVersion": _RBAC_VERSION, "metadata": {"name": name},
                "subjects": [self._subject(subject_kind, subject_name)],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                            "name": role}}
        if namespace:
            self.ensure_namespace(namespace)
            resource, body["kind"] = "rolebindings", "RoleBinding"
        else:
            resource, body["kind"] = "clusterrolebindings", "ClusterRoleBinding"
        try:
            return self.store.create(resource, body, namespace=namespace)
        except StatusError as error:
            if error.code != 409:
                raise
            return self.store.get(resource, name, namespace=namespace)

    def unbind(self, subject_kind: str, subject_name: str, role: str,
               namespace: str | None = None) -> bool:
        """Remove what ``bind`` created; False if there was no such binding."""
        name = self.binding_name(subject_kind, subject_name, role)
        resource = "rolebindings" if namespace else "clusterrolebindings"
        try:
            self.store.delete(resource, name, namespace=namespace)
        except StatusError as error:
            if error.code != 404:
                raise
            return False
        return True

    def ensure_namespace(self, namespace: str) -> None:
        try:
            self.store.create("namespaces", {"metadata": {"name": namespace}})
        except StatusError as error:
            if error.code != 409:
                raise

    def service_account_token(self, namespace: str, name: str, *,
                              expiration_seconds: float = 3600) -> str:
        """A token for ServiceAccount ``namespace/name`` (both created if missing), as
        TokenRequest issues them, but with any lifetime."""
        self.ensure_namespace(namespace)
        try:
            self.store.create("serviceaccounts", {"metadata": {"name": name}},
                              namespace=namespace)
        except StatusError as error:
            if error.code != 409:
                raise
        return self.app[REVIEWS_KEY].issue(namespace, name, expiration_seconds)[0]

    def apply_manifests(self, source: str | os.PathLike) -> list[dict]:
        """Create (or replace) every object of a YAML file or string, as an administrator
        would with ``kubectl apply``; namespaces they name are created. Returns them."""
        text = Path(source).read_text() if isinstance(source, os.PathLike) or (
            "\n" not in str(source) and Path(str(source)).is_file()) else str(source)
        applied = []
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            if not isinstance(doc, dict):
                raise ValueError(f"{str(source)[:80]!r} is neither a file nor YAML objects")
            rt = BY_KIND.get((doc.get("apiVersion"), doc.get("kind")))
            if rt is None:
                raise ValueError(f"the simulated cluster does not serve "
                                 f"{doc.get('apiVersion')} {doc.get('kind')}")
            meta = doc.setdefault("metadata", {})
            namespace = (meta.get("namespace") or "default") if rt.namespaced else None
            if namespace:
                self.ensure_namespace(namespace)
            try:
                applied.append(self.store.create(rt, doc, namespace=namespace))
            except StatusError as error:
                if error.code != 409:
                    raise
                current = self.store.get(rt, meta["name"], namespace=namespace)
                meta["resourceVersion"] = current["metadata"]["resourceVersion"]
                applied.append(self.store.update(rt, doc))
        return applied

    def authorize(self, user: str, verb: str, resource: str, namespace: str | None = None, *,
                  groups: Iterable[str] = (), api_group: str = "", subresource: str = "",
                  name: str = "") -> tuple[bool, str]:
        """What the authorizer decides for ``user`` (its groups given, plus
        ``system:authenticated``), as a SubjectAccessReview would answer."""
        groups = tuple(groups)
        if "system:authenticated" not in groups:
            groups += ("system:authenticated",)
        attrs = RequestInfo(True, verb, "", api_group, "", namespace or "", resource,
                            subresource, name)
        return self.app[ACCESS_KEY].authorizer.authorize(UserInfo(user, "", groups), attrs)

    def audit(self, **filters: object) -> list[dict]:
        """Audit records (``sim.audit``) matching every filter, e.g. ``verb="create"``."""
        return self.app[ACCESS_KEY].audit.records(**{k: str(v) for k, v in filters.items()})

    def reset_audit(self) -> None:
        self.app[ACCESS_KEY].audit.reset()

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
