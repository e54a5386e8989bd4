"""Object validation as the API server's strategies do it, reported as field errors.

Covers what clients of this project can trip over: metadata (name syntax per type, label and
annotation keys and values, owner references), pod specs and pod templates (containers,
images, restart policy, resource quantities, requests <= limits), workload selectors that
must match their template, Job restart policy, Service ports and types, ResourceQuota
quantities, PriorityClass value, and immutable fields on update. ``unknown_fields`` backs the
``fieldValidation`` parameter for top-level and metadata fields.
"""

from __future__ import annotations

from gpuctl_async.kuberules.naming import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_key_errors,
    label_value_errors,
)
from gpuctl_async.kuberules.quantity import QuantityError, parse_quantity
from gpuctl_async.sim.resources import ResourceType
from gpuctl_async.sim.selectors import from_label_selector
from gpuctl_async.sim.status import FieldError

# Types whose names are DNS-1123 labels rather than subdomains.
_LABEL_NAMED = {"namespaces", "services"}
_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields"})
_RBAC = "rbac.authorization.k8s.io"
_SUBJECT_KINDS = ["ServiceAccount", "User", "Group"]
_QUANTITY_MESSAGE = "must match the regex ^([+-]?[0-9.]+)([eEinumkKMGTPE]*[-+]?[0-9]*)$"


def unknown_fields(rt: ResourceType, obj: dict) -> list[str]:
    """Paths of top-level and metadata fields the type does not declare."""
    known = rt.top_fields | {"apiVersion", "kind", "metadata"}
    unknown = [key for key in obj if key not in known]
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        unknown += [f"metadata.{key}" for key in meta if key not in _META_FIELDS]
    return unknown


def validate_metadata(rt: ResourceType, meta: dict) -> list[FieldError]:
    errors: list[FieldError] = []
    name = meta.get("name") or ""
    name_errors = dns1123_label_errors if rt.plural in _LABEL_NAMED else (
        _path_segment_errors if rt.group == _RBAC else dns1123_subdomain_errors)
    for problem in name_errors(name):
        errors.append(FieldError.invalid("metadata.name", name, problem))
    labels = meta.get("labels") or {}
    if not isinstance(labels, dict):
        errors.append(FieldError.invalid("metadata.labels", labels, "must be a map"))
        labels = {}
    for key, value in labels.items():
        for problem in label_key_errors(key):
            errors.append(FieldError.invalid("metadata.labels", key, problem))
        if not isinstance(value, str):
            errors.append(FieldError.invalid(f"metadata.labels[{key}]", value,
                                             "must be a string"))
            continue
        for problem in label_value_errors(value):
            errors.append(FieldError.invalid("metadata.labels", value, problem))
    annotations = meta.get("annotations") or {}
    for key, value in (annotations.items() if isinstance(annotations, dict) else ()):
        for problem in label_key_errors(key.lower()):
            errors.append(FieldError.invalid("metadata.annotations", key, problem))
        if not isinstance(value, str):
            errors.append(FieldError.invalid(f"metadata.annotations[{key}]", value,
                                             "must be a string"))
    controllers = 0
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        path = f"metadata.ownerReferences[{i}]"
        for field in ("apiVersion", "kind", "name", "uid"):
            if not (isinstance(ref, dict) and ref.get(field)):
                errors.append(FieldError.required(f"{path}.{field}", f"{field} must not be empty"))
        controllers += bool(isinstance(ref, dict) and ref.get("controller"))
    if controllers > 1:
        errors.append(FieldError.invalid("metadata.ownerReferences", meta["ownerReferences"],
                                         "Only one reference can have Controller set to true"))
    return errors


def _quantities(path: str, values: object) -> list[FieldError]:
    errors = []
    for name, value in (values.items() if isinstance(values, dict) else ()):
        try:
            parse_quantity(value)
        except QuantityError:
            errors.append(FieldError.invalid(f"{path}[{name}]", value, _QUANTITY_MESSAGE))
    return errors


def _containers(path: str, containers: object, required: bool) -> list[FieldError]:
    if not containers:
        return [FieldError.required(path)] if required else []
    if not isinstance(containers, list):
        return [FieldError.invalid(path, containers, "must be a list")]
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, container in enumerate(containers):
        at = f"{path}[{i}]"
        if not isinstance(container, dict):
            errors.append(FieldError.invalid(at, container, "must be an object"))
            continue
        name = container.get("name")
        if not name:
            errors.append(FieldError.required(f"{at}.name"))
        else:
            errors += [FieldError.invalid(f"{at}.name", name, p)
                       for p in dns1123_label_errors(name)]
            if name in seen:
                errors.append(FieldError.duplicate(f"{at}.name", name))
            seen.add(name)
        if not container.get("image"):
            errors.append(FieldError.required(f"{at}.image"))
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        errors += _quantities(f"{at}.resources.limits", limits)
        errors += _quantities(f"{at}.resources.requests", requests)
        for resource, request in (requests.items() if isinstance(requests, dict) else ()):
            if not isinstance(limits, dict) or resource not in limits:
                continue
            try:
                if parse_quantity(request) > parse_quantity(limits[resource]):
                    errors.append(FieldError.invalid(
                        f"{at}.resources.requests", request,
                        f"must be less than or equal to {resource} limit of {limits[resource]}"))
            except QuantityError:
                pass  # already reported above
    return errors


def _pod_spec(path: str, spec: object, restart_policies: list[str]) -> list[FieldError]:
    if not isinstance(spec, dict):
        return [FieldError.required(path)]
    errors = _containers(f"{path}.containers", spec.get("containers"), True)
    errors += _containers(f"{path}.initContainers", spec.get("initContainers"), False)
    policy = spec.get("restartPolicy")
    if policy not in restart_policies:
        errors.append(FieldError.not_supported(f"{path}.restartPolicy", policy, restart_policies))
    return errors


def _workload(spec: dict, restart_policies: list[str], needs_selector: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    template = spec.get("template")
    if not isinstance(template, dict):
        return [FieldError.required("spec.template")]
    labels = (template.get("metadata") or {}).get("labels") or {}
    selector = spec.get("selector")
    if needs_selector and selector is None:
        errors.append(FieldError.required("spec.selector"))
    elif selector is not None:
        try:
            matcher = from_label_selector(selector)
        except ValueError as exc:
            errors.append(FieldError.invalid("spec.selector", selector, str(exc)))
        else:
            if not matcher:
                errors.append(FieldError.invalid("spec.selector", selector,
                                                 "empty selector is invalid for deployment"))
            elif not matcher.matches({"metadata": {"labels": labels}}):
                errors.append(FieldError.invalid("spec.template.metadata.labels", labels,
                                                 "`selector` does not match template `labels`"))
    for field in ("replicas", "parallelism", "completions", "backoffLimit"):
        value = spec.get(field)
        if isinstance(value, int) and value < 0:
            errors.append(FieldError.invalid(f"spec.{field}", value,
                                             "must be greater than or equal to 0"))
    return errors + _pod_spec("spec.template.spec", template.get("spec"), restart_policies)


def _service(obj: dict, old: dict | None) -> list[FieldError]:
    spec = obj.get("spec") or {}
    errors: list[FieldError] = []
    kind = spec.get("type")
    types = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
    if kind not in types:
        return [FieldError.not_supported("spec.type", kind, types)]
    ports = spec.get("ports") or []
    if kind != "ExternalName" and not ports:
        errors.append(FieldError.required("spec.ports"))
    for i, port in enumerate(ports):
        number = port.get("port") if isinstance(port, dict) else None
        if not isinstance(number, int) or not 1 <= number <= 65535:
            errors.append(FieldError.invalid(f"spec.ports[{i}].port", number,
                                             "must be between 1 and 65535, inclusive"))
        if len(ports) > 1 and isinstance(port, dict) and not port.get("name"):
            errors.append(FieldError.required(f"spec.ports[{i}].name"))
        if isinstance(port, dict) and port.get("nodePort") and kind == "ClusterIP":
            errors.append(FieldError.forbidden(f"spec.ports[{i}].nodePort",
                                               "may not be used when `type` is 'ClusterIP'"))
    if old is not None:
        was = (old.get("spec") or {}).get("clusterIP")
        if was and spec.get("clusterIP") not in (None, "", was) and kind != "ExternalName":
            errors.append(FieldError.invalid("spec.clusterIPs[0]", spec.get("clusterIP"),
                                             "may not change once set"))
    return errors


def _immutable(obj: dict, old: dict, path: str) -> list[FieldError]:
    def at(o: dict) -> object:
        for key in path.split("."):
            o = o.get(key) if isinstance(o, dict) else None  # type: ignore[assignment]
        return o

    if at(obj) != at(old):
        return [FieldError.invalid(path, at(obj), "field is immutable")]
    return []


def _path_segment_errors(name: str) -> list[str]:
    """RBAC objects are named like path segments (``system:discovery`` is fine)."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def _rbac(rt: ResourceType, obj: dict, old: dict | None) -> list[FieldError]:
    errors: list[FieldError] = []
    if rt.plural in ("roles", "clusterroles"):
        rules = obj.get("rules") or []
        if not isinstance(rules, list):
            return [FieldError.invalid("rules", rules, "must be a list")]
        for i, rule in enumerate(rules):
            if not isinstance(rule, dict):
                errors.append(FieldError.invalid(f"rules[{i}]", rule, "must be an object"))
                continue
            if not rule.get("verbs"):
                errors.append(FieldError.required(f"rules[{i}].verbs",
                                                  "verbs must contain at least one value"))
            if rule.get("nonResourceURLs"):
                if rt.plural == "roles":
                    errors.append(FieldError.invalid(
                        f"rules[{i}].nonResourceURLs", rule["nonResourceURLs"],
                        "namespaced rules cannot apply to non-resource URLs"))
                if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                    errors.append(FieldError.invalid(
                        f"rules[{i}].nonResourceURLs", rule["nonResourceURLs"],
                        "rules cannot apply to both regular resources and non-resource URLs"))
            elif not rule.get("apiGroups"):
                errors.append(FieldError.required(
                    f"rules[{i}].apiGroups", "resource rules must supply at least one api "
                                             "group"))
            elif not rule.get("resources"):
                errors.append(FieldError.required(
                    f"rules[{i}].resources", "resource rules must supply at least one "
                                             "resource"))
        return errors
    ref = obj.get("roleRef")
    kinds = ["Role", "ClusterRole"] if rt.plural == "rolebindings" else ["ClusterRole"]
    if not isinstance(ref, dict) or not ref.get("name"):
        errors.append(FieldError.required("roleRef.name"))
    elif ref.get("kind") not in kinds:
        errors.append(FieldError.not_supported("roleRef.kind", ref.get("kind") or "", kinds))
    if isinstance(ref, dict) and ref.get("apiGroup", _RBAC) != _RBAC:
        errors.append(FieldError.not_supported("roleRef.apiGroup", ref.get("apiGroup"),
                                               [_RBAC]))
    if old is not None and old.get("roleRef") != ref:
        errors.append(FieldError.invalid("roleRef", ref, "cannot change roleRef"))
    subjects = obj.get("subjects") or []
    if not isinstance(subjects, list):
        return errors + [FieldError.invalid("subjects", subjects, "must be a list")]
    for i, subject in enumerate(subjects):
        if not isinstance(subject, dict):
            errors.append(FieldError.invalid(f"subjects[{i}]", subject, "must be an object"))
            continue
        if not subject.get("name"):
            errors.append(FieldError.required(f"subjects[{i}].name"))
        if subject.get("kind") not in _SUBJECT_KINDS:
            errors.append(FieldError.not_supported(f"subjects[{i}].kind",
                                                   subject.get("kind") or "", _SUBJECT_KINDS))
        elif subject["kind"] == "ServiceAccount" and rt.plural == "clusterrolebindings" and \
                not subject.get("namespace"):
            errors.append(FieldError.required(f"subjects[{i}].namespace"))
    return errors


def validate(rt: ResourceType, obj: dict, old: dict | None = None) -> list[FieldError]:
    """All field errors of ``obj`` (an update when ``old`` is given)."""
    errors = validate_metadata(rt, obj.get("metadata") or {})
    spec = obj.get("spec")
    key = rt.key
    if key == "pods":
        errors += _pod_spec("spec", spec, ["Always", "OnFailure", "Never"])
        if old is not None and _mutable_pod_spec(spec) != _mutable_pod_spec(old.get("spec")):
            errors.append(FieldError.forbidden("spec", _POD_UPDATE_MESSAGE))
    elif key in ("deployments.apps", "replicasets.apps", "statefulsets.apps"):
        errors += _workload(spec or {}, ["Always"], True)
        if old is not None:
            errors += _immutable(obj, old, "spec.selector")
    elif key == "jobs.batch":
        errors += _workload(spec or {}, ["OnFailure", "Never"], False)
        if old is not None:
            errors += _immutable(obj, old, "spec.selector")
            errors += _immutable(obj, old, "spec.completions")
    elif key == "services":
        errors += _service(obj, old)
    elif rt.group == _RBAC:
        errors += _rbac(rt, obj, old)
    elif key == "resourcequotas":
        errors += _quantities("spec.hard", (spec or {}).get("hard"))
    elif key == "priorityclasses.scheduling.k8s.io":
        value = obj.get("value")
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(FieldError.required("value"))
        elif value > 1_000_000_000 and not obj["metadata"]["name"].startswith("system-"):
            errors.append(FieldError.forbidden(
                "value", "maximum allowed value of a user defined priority is 1000000000"))
        if old is not None:
            errors += _immutable(obj, old, "value")
    return errors


_POD_UPDATE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
    "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
    "set to 1 if it was previously negative)")


def _mutable_pod_spec(spec: object) -> object:
    """The pod spec minus what updates may change (images, deadline, tolerations, grace);
    ``nodeName`` is set through the ``binding`` subresource, not by updates."""
    if not isinstance(spec, dict):
        return spec
    rest = {k: v for k, v in spec.items()
            if k not in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")}
    for key in ("containers", "initContainers"):
        if isinstance(rest.get(key), list):
            rest[key] = [{**c, "image": None} if isinstance(c, dict) else c for c in rest[key]]
    return rest
