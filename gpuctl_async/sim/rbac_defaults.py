"""The bootstrap RBAC policy a kube-apiserver creates at start-up, for the types the sim serves.

ClusterRoles ``cluster-admin``, ``admin``, ``edit``, ``view`` (the real rule sets, trimmed to
what the sim serves plus the usual names clients ask about; written out rather than
aggregated), ``system:discovery``, ``system:basic-user``, ``system:public-info-viewer`` and
``system:auth-delegator``; ClusterRoleBindings ``cluster-admin`` → group ``system:masters``
and the discovery, basic-user and public-info roles → ``system:authenticated``, so any
authenticated user can run kubectl's discovery and ``kubectl auth can-i``. Objects carry the
real ``kubernetes.io/bootstrapping: rbac-defaults`` label and autoupdate annotation.
"""

from __future__ import annotations

from gpuctl_async.sim.store import Store

_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_ALL = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict:
    return {"verbs": verbs, "apiGroups": groups, "resources": resources}


_VIEW = [
    _rule([""], ["configmaps", "endpoints", "persistentvolumeclaims",
                 "persistentvolumeclaims/status", "pods", "replicationcontrollers",
                 "replicationcontrollers/scale", "serviceaccounts", "services",
                 "services/status"], _READ),
    _rule([""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log",
                 "pods/status", "replicationcontrollers/status", "resourcequotas",
                 "resourcequotas/status"], _READ),
    _rule([""], ["namespaces"], _READ),
    _rule(["discovery.k8s.io"], ["endpointslices"], _READ),
    _rule(["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
                     "deployments/scale", "deployments/status", "replicasets",
                     "replicasets/scale", "replicasets/status", "statefulsets",
                     "statefulsets/scale", "statefulsets/status"], _READ),
    _rule(["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"],
          _READ),
    _rule(["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"], _READ),
    _rule(["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"], _READ),
    _rule(["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"], _READ),
]
_EDIT = [
    _rule([""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
                 "services/proxy"], _READ),
    _rule([""], ["serviceaccounts"], ["impersonate"]),
    _rule([""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
          _WRITE),
    _rule([""], ["pods/eviction"], ["create"]),
    _rule([""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                 "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
                 "services/proxy"], _WRITE),
    _rule([""], ["serviceaccounts/token"], ["create"]),
    _rule(["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                     "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"],
          _WRITE),
    _rule(["autoscaling"], ["horizontalpodautoscalers"], _WRITE),
    _rule(["batch"], ["cronjobs", "jobs"], _WRITE),
    _rule(["policy"], ["poddisruptionbudgets"], _WRITE),
    _rule(["networking.k8s.io"], ["ingresses", "networkpolicies"], _WRITE),
    _rule(["coordination.k8s.io"], ["leases"], _ALL),
    *_VIEW,
]
_ADMIN = [
    _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
    _rule(["rbac.authorization.k8s.io"], ["rolebindings", "roles"], _ALL),
    *_EDIT,
]
_DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                   "/openapi/*", "/readyz", "/version", "/version/"]
_PUBLIC_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]

CLUSTER_ROLES: dict[str, list[dict]] = {
    "cluster-admin": [_rule(["*"], ["*"], ["*"]), {"verbs": ["*"], "nonResourceURLs": ["*"]}],
    "admin": _ADMIN,
    "edit": _EDIT,
    "view": _VIEW,
    "system:discovery": [{"verbs": ["get"], "nonResourceURLs": _DISCOVERY_URLS}],
    "system:public-info-viewer": [{"verbs": ["get"], "nonResourceURLs": _PUBLIC_URLS}],
    "system:basic-user": [
        _rule(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
              ["create"]),
        _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"])],
    "system:auth-delegator": [_rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
                              _rule(["authorization.k8s.io"], ["subjectaccessreviews"],
                                    ["create"])],
}
# binding name → (cluster role, groups)
CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cluster-admin": ("cluster-admin", ("system:masters",)),
    "system:discovery": ("system:discovery", ("system:authenticated",)),
    "system:basic-user": ("system:basic-user", ("system:authenticated",)),
    "system:public-info-viewer": ("system:public-info-viewer",
                                  ("system:authenticated", "system:unauthenticated")),
}
_META = {"labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
         "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}}
# admin/edit/view are aggregated on a real cluster; the label tells readers where they fit.
_AGGREGATE = {"admin": "rbac.authorization.k8s.io/aggregate-to-admin",
              "edit": "rbac.authorization.k8s.io/aggregate-to-edit",
              "view": "rbac.authorization.k8s.io/aggregate-to-view"}


def _meta(name: str) -> dict:
    labels = dict(_META["labels"])
    if name in ("edit", "view"):
        labels[_AGGREGATE["admin" if name == "edit" else "edit"]] = "true"
    return {"name": name, "labels": labels, "annotations": dict(_META["annotations"])}


def bootstrap_policy(store: Store) -> None:
    """Create the default ClusterRoles and ClusterRoleBindings (once, at start)."""
    for name, rules in CLUSTER_ROLES.items():
        store.create("clusterroles", {"apiVersion": "rbac.authorization.k8s.io/v1",
                                      "kind": "ClusterRole", "metadata": _meta(name),
                                      "rules": [dict(r) for r in rules]})
    for name, (role, groups) in CLUSTER_ROLE_BINDINGS.items():
        store.create("clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": _meta(name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}
                         for g in groups]})
