"""The one table of what each route needs: the Kubernetes permission it exercises, and where
the namespace of the check comes from.

``where``:

- ``open``: no token needed (liveness, readiness, the API docs);
- ``authenticated``: any valid token;
- ``cluster``: checked by the middleware, without a namespace (nodes, namespaces);
- ``path``: checked by the middleware in the namespace named by the path;
- ``view``: the namespace comes from the query, the body or the job found, so the view
  checks it (``gpuctl_async.auth.guard``); a search without a namespace only looks where the
  caller holds the permission.

Routes that act on a job's controller need the verb on the job kind's resource
(Job, Deployment, StatefulSet): their permission here is the ``pods`` one only for reads.
README's permission table and each OpenAPI operation's description are generated from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpuctl_async.k8s.resources import BY_KIND, Resource


@dataclass(frozen=True)
class Permission:
    """One Kubernetes authorization attribute set, as a SubjectAccessReview asks it."""

    verb: str
    resource: str
    group: str = ""
    subresource: str = ""
    path: str = ""
    """A non-resource URL (``/metrics``) instead of a resource: RBAC's ``nonResourceURLs``."""

    def __str__(self) -> str:
        """``list pods``, ``get pods/log``, ``create jobs.batch``, ``get /metrics``:
        kubectl's spelling."""
        if self.path:
            return f"{self.verb} {self.path}"
        name = self.resource + (f"/{self.subresource}" if self.subresource else "")
        return f"{self.verb} {name}" + (f".{self.group}" if self.group else "")

    @classmethod
    def on(cls, verb: str, resource: Resource) -> Permission:
        return cls(verb, resource.plural, resource.group)


@dataclass(frozen=True)
class Rule:
    where: str
    permission: Permission | None = None
    by_kind: str | None = None
    """Verb needed on the job's controller resource (create/delete jobs)."""
    path_key: str | None = None
    scope: str = ""
    """For ``view`` rules: which namespaces the check covers, for the docs."""

    def describe(self) -> str:
        if self.where == "open":
            return "none (open without a token)"
        if self.where == "authenticated":
            return "any authenticated caller" + (f" {self.scope}" if self.scope else "")
        if self.by_kind:
            return (f"`{self.by_kind}` on the job kind's controller (`jobs.batch` for training, "
                    "`deployments.apps` for inference and compute, `statefulsets.apps` for "
                    f"notebooks) {self.scope}")
        if self.permission is not None and self.permission.path:
            return f"`{self.permission}` (a non-resource URL)"
        scope = {"cluster": "cluster-wide",
                 "path": "in the namespace of the path"}.get(self.where, self.scope)
        return f"`{self.permission}` {scope}"


def controller_permission(verb: str, kind: str) -> Permission:
    """``verb`` on the resource of a controller kind (Job, Deployment, StatefulSet)."""
    return Permission.on(verb, BY_KIND[kind])


LIST_PODS = Permission("list", "pods")
GET_PODS = Permission("get", "pods")
GET_LOGS = Permission("get", "pods", subresource="log")
DELETE_PODS = Permission("delete", "pods")
LIST_NODES = Permission("list", "nodes")
PATCH_NODES = Permission("patch", "nodes")
LIST_QUOTAS = Permission("list", "resourcequotas")
CREATE_QUOTAS = Permission("create", "resourcequotas")
DELETE_QUOTAS = Permission("delete", "resourcequotas")
LIST_NAMESPACES = Permission("list", "namespaces")
DELETE_NAMESPACES = Permission("delete", "namespaces")
GET_METRICS = Permission("get", "", path="/metrics")

_LISTED = ("in each namespace shown (one cluster-wide check first; a `namespace` filter the "
           "caller may not read is a 403)")
_AT_OPEN = ", checked again before each batch of changes (4403 for a denied `namespace`)"
_FOUND = ("in the job's namespace; without `namespace`, only namespaces where the caller holds "
          "it are searched (404, never another tenant's job)")
_DOCUMENT = "in the document's namespace"
_PER_SUBSCRIPTION = ("to open it; then each subscription needs what its own route needs (`get "
                     "pods/log` for logs, `list pods` for the job feed, checked again before "
                     "each batch of changes), and a denied one gets an error frame")
_OPEN = Rule("open")
_NODES_READ = Rule("cluster", LIST_NODES)
_NODES_WRITE = Rule("cluster", PATCH_NODES)

ROUTES: dict[tuple[str, str], Rule] = {
    ("GET", "/"): Rule("authenticated"),
    ("GET", "/health"): _OPEN,
    ("GET", "/ready"): _OPEN,
    # As kube-rbac-proxy guards a component's metrics (bind the metrics-reader ClusterRole).
    ("GET", "/metrics"): Rule("cluster", GET_METRICS),
    # jobs
    ("GET", "/api/v1/jobs"): Rule("view", LIST_PODS, scope=_LISTED),
    ("GET", "/api/v1/jobs-feed/ws"): Rule("view", LIST_PODS, scope=_LISTED + _AT_OPEN),
    ("GET", "/api/v1/jobs/{jobId}"): Rule("view", GET_PODS, scope=_FOUND),
    ("GET", "/api/v1/jobs/{jobId}/logs"): Rule("view", GET_LOGS, scope=_FOUND),
    ("GET", "/api/v1/jobs/{jobId}/logs/ws"): Rule("view", GET_LOGS, scope=_FOUND),
    ("GET", "/api/v1/jobs/{jobId}/logs/stream"): Rule("view", GET_LOGS, scope=_FOUND),
    # the multiplexed socket: each subscription is checked on its own, as its route would be
    ("GET", "/api/v1/stream"): Rule("authenticated", scope=_PER_SUBSCRIPTION),
    ("POST", "/api/v1/jobs"): Rule("view", by_kind="create", scope=_DOCUMENT),
    ("POST", "/api/v1/jobs/batch"): Rule("view", by_kind="create",
                                         scope=_DOCUMENT + ", per document"),
    ("DELETE", "/api/v1/jobs/{jobId}"): Rule(
        "view", by_kind="delete",
        scope="in the job's namespace, found as for the detail (`get pods`)"),
    # nodes, pools, labels: node objects
    ("GET", "/api/v1/nodes"): _NODES_READ,
    ("GET", "/api/v1/nodes/gpu-detail"): _NODES_READ,
    ("GET", "/api/v1/nodes/{nodeName}"): _NODES_READ,
    ("POST", "/api/v1/nodes/{nodeName}/pools"): _NODES_WRITE,
    ("DELETE", "/api/v1/nodes/{nodeName}/pools/{poolName}"): _NODES_WRITE,
    ("GET", "/api/v1/pools"): _NODES_READ,
    ("GET", "/api/v1/pools/{poolName}"): _NODES_READ,
    ("POST", "/api/v1/pools"): _NODES_WRITE,
    ("PUT", "/api/v1/pools/{poolName}"): _NODES_WRITE,
    ("DELETE", "/api/v1/pools/{poolName}"): _NODES_WRITE,
    ("GET", "/api/v1/labels"): _NODES_READ,
    ("GET", "/api/v1/nodes/labels"): _NODES_READ,
    ("GET", "/api/v1/nodes/labels/all"): _NODES_READ,
    ("POST", "/api/v1/nodes/labels/batch"): _NODES_WRITE,
    ("GET", "/api/v1/nodes/{nodeName}/labels"): _NODES_READ,
    ("POST", "/api/v1/nodes/{nodeName}/labels"): _NODES_WRITE,
    ("GET", "/api/v1/nodes/{nodeName}/labels/{key}"): _NODES_READ,
    ("PUT", "/api/v1/nodes/{nodeName}/labels/{key}"): _NODES_WRITE,
    ("DELETE", "/api/v1/nodes/{nodeName}/labels/{key}"): _NODES_WRITE,
    # quotas
    ("POST", "/api/v1/quotas"): Rule("view", CREATE_QUOTAS,
                                     scope="in every namespace of the document"),
    ("GET", "/api/v1/quotas"): Rule("view", LIST_QUOTAS, scope=_LISTED),
    ("GET", "/api/v1/quotas/{namespaceName}"): Rule("path", LIST_QUOTAS, path_key="namespaceName"),
    ("DELETE", "/api/v1/quotas/{namespaceName}"): Rule("path", DELETE_QUOTAS,
                                                       path_key="namespaceName"),
    # namespaces
    ("GET", "/api/v1/namespaces"): Rule("cluster", LIST_NAMESPACES),
    ("GET", "/api/v1/namespaces/{namespaceName}"): Rule("cluster", LIST_NAMESPACES),
    ("DELETE", "/api/v1/namespaces/{namespaceName}"): Rule("cluster", DELETE_NAMESPACES),
}
"""(method, route pattern) → rule. Every route of the app must be here (checked at start-up);
the docs routes (``/docs``, its assets, the OpenAPI document) are open and added by
``setup_auth`` itself."""


def rule_for(method: str, pattern: str) -> Rule | None:
    return ROUTES.get((method, pattern))


def markdown_table() -> str:
    """The README's route → permission table (a test keeps the README equal to this)."""
    lines = ["| route | permission checked |", "|---|---|"]
    for (method, pattern), rule in ROUTES.items():
        lines.append(f"| `{method} {pattern}` | {rule.describe()} |")
    return "\n".join(lines) + "\n"
