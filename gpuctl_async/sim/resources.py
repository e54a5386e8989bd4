"""The resource types the simulated API server serves, as discovery and the store see them.

One ``ResourceType`` per REST resource: where it lives (group/version), its kind and plural,
whether it is namespaced, which field selectors it supports and how each field is read, and
the few per-type behaviours of the real registry that clients can observe (status
subresource, ``generation``, what DELETE returns, the default garbage-collection policy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


def _path(*keys: str) -> Callable[[dict], str]:
    """A field-selector getter: the value at ``keys`` rendered as the API server does."""

    def get(obj: dict) -> str:
        value: object = obj
        for key in keys:
            if not isinstance(value, dict):
                return ""
            value = value.get(key)
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return get


def _unschedulable(obj: dict) -> str:
    return "true" if (obj.get("spec") or {}).get("unschedulable") else "false"


def _event_source(obj: dict) -> str:
    return (obj.get("source") or {}).get("component") or ""


_META_FIELDS = {"metadata.name": _path("metadata", "name"),
                "metadata.namespace": _path("metadata", "namespace")}


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # Resources whose status is only written through the ``status`` subresource.
    has_status: bool = False
    # Resources whose metadata.generation counts spec changes.
    has_generation: bool = False
    # Pods and services answer DELETE with the object; the rest with a Success Status.
    delete_returns_object: bool = False
    # batch/v1 Jobs orphan their pods unless the client asks otherwise (kept for
    # backwards compatibility by the real API server); everything else cascades.
    default_propagation: str = "Background"
    extra_fields: dict[str, Callable[[dict], str]] = field(default_factory=dict)
    # Top-level fields besides apiVersion/kind/metadata (for fieldValidation).
    top_fields: frozenset[str] = frozenset({"spec", "status"})
    # Create-only review types (TokenReview, SubjectAccessReview...) answer and store nothing.
    verbs: tuple[str, ...] = ("create", "delete", "deletecollection", "get", "list", "patch",
                              "update", "watch")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Unique name inside the sim: ``pods``, ``deployments.apps``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def field_getters(self) -> dict[str, Callable[[dict], str]]:
        return {**_META_FIELDS, **self.extra_fields}


_RBAC = "rbac.authorization.k8s.io"
_CREATE_ONLY = ("create",)

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",),
                 has_status=True, delete_returns_object=True,
                 extra_fields={"status.phase": _path("status", "phase")}),
    ResourceType("", "v1", "nodes", "node", "Node", False, ("no",), has_status=True,
                 extra_fields={"spec.unschedulable": _unschedulable}),
    ResourceType("", "v1", "pods", "pod", "Pod", True, ("po",), ("all",), has_status=True,
                 has_generation=True, delete_returns_object=True,
                 extra_fields={
                     "spec.nodeName": _path("spec", "nodeName"),
                     "spec.restartPolicy": _path("spec", "restartPolicy"),
                     "spec.schedulerName": _path("spec", "schedulerName"),
                     "spec.serviceAccountName": _path("spec", "serviceAccountName"),
                     "spec.hostNetwork": _path("spec", "hostNetwork"),
                     "status.phase": _path("status", "phase"),
                     "status.podIP": _path("status", "podIP"),
                     "status.nominatedNodeName": _path("status", "nominatedNodeName"),
                 }),
    ResourceType("", "v1", "services", "service", "Service", True, ("svc",), ("all",),
                 has_status=True, delete_returns_object=True),
    ResourceType("", "v1", "events", "event", "Event", True, ("ev",),
                 extra_fields={
                     "involvedObject.kind": _path("involvedObject", "kind"),
                     "involvedObject.namespace": _path("involvedObject", "namespace"),
                     "involvedObject.name": _path("involvedObject", "name"),
                     "involvedObject.uid": _path("involvedObject", "uid"),
                     "involvedObject.apiVersion": _path("involvedObject", "apiVersion"),
                     "involvedObject.resourceVersion":
                         _path("involvedObject", "resourceVersion"),
                     "involvedObject.fieldPath": _path("involvedObject", "fieldPath"),
                     "reason": _path("reason"),
                     "reportingComponent": _path("reportingComponent"),
                     "source": _event_source,
                     "type": _path("type"),
                 },
                 top_fields=frozenset({
                     "involvedObject", "reason", "message", "source", "firstTimestamp",
                     "lastTimestamp", "count", "type", "eventTime", "series", "action",
                     "related", "reportingComponent", "reportingInstance"})),
    ResourceType("", "v1", "resourcequotas", "resourcequota", "ResourceQuota", True,
                 ("quota",), has_status=True),
    ResourceType("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",),
                 top_fields=frozenset({"data", "binaryData", "immutable"})),
    ResourceType("", "v1", "secrets", "secret", "Secret", True,
                 top_fields=frozenset({"data", "stringData", "type", "immutable"})),
    ResourceType("apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",),
                 ("all",), has_status=True, has_generation=True),
    ResourceType("apps", "v1", "replicasets", "replicaset", "ReplicaSet", True, ("rs",),
                 ("all",), has_status=True, has_generation=True,
                 extra_fields={"status.replicas": _path("status", "replicas")}),
    ResourceType("apps", "v1", "statefulsets", "statefulset", "StatefulSet", True, ("sts",),
                 ("all",), has_status=True, has_generation=True),
    ResourceType("batch", "v1", "jobs", "job", "Job", True, (), ("all",), has_status=True,
                 has_generation=True, default_propagation="Orphan",
                 extra_fields={"status.successful": _path("status", "succeeded")}),
    ResourceType("scheduling.k8s.io", "v1", "priorityclasses", "priorityclass",
                 "PriorityClass", False, ("pc",),
                 top_fields=frozenset({"value", "globalDefault", "description",
                                       "preemptionPolicy"})),
    ResourceType("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True,
                 ("sa",), top_fields=frozenset({"secrets", "imagePullSecrets",
                                                "automountServiceAccountToken"})),
    ResourceType(_RBAC, "v1", "roles", "role", "Role", True,
                 top_fields=frozenset({"rules"})),
    ResourceType(_RBAC, "v1", "clusterroles", "clusterrole", "ClusterRole", False,
                 top_fields=frozenset({"rules", "aggregationRule"})),
    ResourceType(_RBAC, "v1", "rolebindings", "rolebinding", "RoleBinding", True,
                 top_fields=frozenset({"subjects", "roleRef"})),
    ResourceType(_RBAC, "v1", "clusterrolebindings", "clusterrolebinding",
                 "ClusterRoleBinding", False, top_fields=frozenset({"subjects", "roleRef"})),
    ResourceType("authentication.k8s.io", "v1", "tokenreviews", "tokenreview", "TokenReview",
                 False, verbs=_CREATE_ONLY),
    ResourceType("authentication.k8s.io", "v1", "selfsubjectreviews", "selfsubjectreview",
                 "SelfSubjectReview", False, verbs=_CREATE_ONLY),
    ResourceType("authorization.k8s.io", "v1", "subjectaccessreviews", "subjectaccessreview",
                 "SubjectAccessReview", False, verbs=_CREATE_ONLY),
    ResourceType("authorization.k8s.io", "v1", "selfsubjectaccessreviews",
                 "selfsubjectaccessreview", "SelfSubjectAccessReview", False,
                 verbs=_CREATE_ONLY),
    ResourceType("authorization.k8s.io", "v1", "selfsubjectrulesreviews",
                 "selfsubjectrulesreview", "SelfSubjectRulesReview", False, verbs=_CREATE_ONLY),
    ResourceType("authorization.k8s.io", "v1", "localsubjectaccessreviews",
                 "localsubjectaccessreview", "LocalSubjectAccessReview", True,
                 verbs=_CREATE_ONLY),
)

BY_KEY: dict[str, ResourceType] = {rt.key: rt for rt in RESOURCES}
BY_GROUP_VERSION: dict[tuple[str, str], dict[str, ResourceType]] = {}
for _rt in RESOURCES:
    BY_GROUP_VERSION.setdefault((_rt.group, _rt.version), {})[_rt.plural] = _rt
BY_KIND: dict[tuple[str, str], ResourceType] = {(rt.api_version, rt.kind): rt for rt in RESOURCES}
# Plurals are unique across the groups served, so python callers may say just "deployments".
_BY_NAME: dict[str, ResourceType] = {**{rt.plural: rt for rt in RESOURCES}, **BY_KEY}


def resource(name: str | ResourceType) -> ResourceType:
    """Look a resource type up by plural (``pods``) or key (``deployments.apps``)."""
    if isinstance(name, ResourceType):
        return name
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"the simulated cluster does not serve {name!r}") from None
