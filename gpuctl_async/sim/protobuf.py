"""Request bodies in Kubernetes' protobuf encoding, for the few kinds kubectl sends that way.

kubectl's typed clients (``auth can-i``, ``auth whoami``, ``create token``, ``create
serviceaccount``, ``create rolebinding``, ``create namespace|configmap|secret|deployment|
job|quota|priorityclass``, ``run``...) post ``application/vnd.kubernetes.protobuf``
and do not retry in JSON. ``decode(raw)`` reads the envelope (``k8s\\0`` + ``runtime.Unknown``
{typeMeta, raw}) and the object inside with the field numbers of k8s.io/api's
``generated.proto``, into the JSON form the rest of the sim handles. Only the kinds below are
known (others, and malformed bodies, raise ``ValueError``); timestamps and fields the sim
ignores are skipped. Parsing is bounded by the body size (``server.MAX_BODY``).
"""

from __future__ import annotations

import base64

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

# A schema maps a field number to (json name, kind, sub-schema); kinds: "str", "int",
# "bool", "msg", "strs" (repeated string), "msgs" (repeated message), "map" (string→string),
# "extra" (string→ExtraValue{items}), "bmap" (string→bytes, base64 as in JSON), "qmap"
# (string→resource.Quantity{string}), "opt_int"/"opt_bool" (Go non-pointer fields: the
# encoder always writes them, JSON's omitempty leaves 0/false out, so do we).
Schema = dict[int, tuple[str, str, object]]

_TYPE_META: Schema = {1: ("apiVersion", "str", None), 2: ("kind", "str", None)}
_UNKNOWN: Schema = {1: ("typeMeta", "msg", _TYPE_META), 2: ("raw", "bytes", None),
                    3: ("contentEncoding", "str", None), 4: ("contentType", "str", None)}
_META: Schema = {1: ("name", "str", None), 2: ("generateName", "str", None),
                 3: ("namespace", "str", None), 6: ("resourceVersion", "str", None),
                 11: ("labels", "map", None), 12: ("annotations", "map", None),
                 14: ("finalizers", "strs", None)}
_RESOURCE_ATTRIBUTES: Schema = {
    1: ("namespace", "str", None), 2: ("verb", "str", None), 3: ("group", "str", None),
    4: ("version", "str", None), 5: ("resource", "str", None),
    6: ("subresource", "str", None), 7: ("name", "str", None)}
_NON_RESOURCE_ATTRIBUTES: Schema = {1: ("path", "str", None), 2: ("verb", "str", None)}
_SELF_ACCESS_SPEC: Schema = {1: ("resourceAttributes", "msg", _RESOURCE_ATTRIBUTES),
                             2: ("nonResourceAttributes", "msg", _NON_RESOURCE_ATTRIBUTES)}
_ACCESS_SPEC: Schema = {**_SELF_ACCESS_SPEC, 3: ("user", "str", None),
                        4: ("groups", "strs", None), 5: ("extra", "extra", None),
                        6: ("uid", "str", None)}
_BOUND_OBJECT: Schema = {1: ("kind", "str", None), 2: ("apiVersion", "str", None),
                         3: ("name", "str", None), 4: ("uid", "str", None)}
_TOKEN_REQUEST_SPEC: Schema = {1: ("audiences", "strs", None),
                               3: ("boundObjectRef", "msg", _BOUND_OBJECT),
                               4: ("expirationSeconds", "int", None)}
_TOKEN_REVIEW_SPEC: Schema = {1: ("token", "str", None), 2: ("audiences", "strs", None)}
_LOCAL_REF: Schema = {1: ("name", "str", None)}
_OBJECT_REF: Schema = {1: ("kind", "str", None), 2: ("namespace", "str", None),
                       3: ("name", "str", None)}
_SUBJECT: Schema = {1: ("kind", "str", None), 2: ("apiGroup", "str", None),
                    3: ("name", "str", None), 4: ("namespace", "str", None)}
_ROLE_REF: Schema = {1: ("apiGroup", "str", None), 2: ("kind", "str", None),
                     3: ("name", "str", None)}
_RULE: Schema = {1: ("verbs", "strs", None), 2: ("apiGroups", "strs", None),
                 3: ("resources", "strs", None), 4: ("resourceNames", "strs", None),
                 5: ("nonResourceURLs", "strs", None)}
_SELECTOR: Schema = {1: ("matchLabels", "map", None)}
_AGGREGATION: Schema = {1: ("clusterRoleSelectors", "msgs", _SELECTOR)}


def _object(**fields: tuple[int, str, object]) -> Schema:
    schema: Schema = {1: ("metadata", "msg", _META)}
    for name, (number, kind, sub) in fields.items():
        schema[number] = (name, kind, sub)
    return schema


KINDS: dict[tuple[str, str], Schema] = {
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"):
        _object(spec=(2, "msg", _SELF_ACCESS_SPEC)),
    ("authorization.k8s.io/v1", "SubjectAccessReview"): _object(spec=(2, "msg", _ACCESS_SPEC)),
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"):
        _object(spec=(2, "msg", {1: ("namespace", "str", None)})),
    ("authorization.k8s.io/v1", "LocalSubjectAccessReview"):
        _object(spec=(2, "msg", _ACCESS_SPEC)),
    ("authentication.k8s.io/v1", "SelfSubjectReview"): _object(),
    ("authentication.k8s.io/v1", "TokenReview"): _object(spec=(2, "msg", _TOKEN_REVIEW_SPEC)),
    ("authentication.k8s.io/v1", "TokenRequest"): _object(spec=(2, "msg", _TOKEN_REQUEST_SPEC)),
    ("v1", "ServiceAccount"): _object(secrets=(2, "msgs", _OBJECT_REF),
                                      imagePullSecrets=(3, "msgs", _LOCAL_REF),
                                      automountServiceAccountToken=(4, "bool", None)),
    ("v1", "Namespace"): _object(),
    ("rbac.authorization.k8s.io/v1", "Role"): _object(rules=(2, "msgs", _RULE)),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"):
        _object(rules=(2, "msgs", _RULE), aggregationRule=(3, "msg", _AGGREGATION)),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"):
        _object(subjects=(2, "msgs", _SUBJECT), roleRef=(3, "msg", _ROLE_REF)),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"):
        _object(subjects=(2, "msgs", _SUBJECT), roleRef=(3, "msg", _ROLE_REF)),
}


# What kubectl's imperative commands send (``create configmap|secret|deployment|job|quota|
# priorityclass``, ``run``), from k8s.io/api core/v1, apps/v1, batch/v1 and scheduling/v1
# ``generated.proto``; only the fields those commands (and simple manifests) set.
_LABEL_SELECTOR: Schema = {
    1: ("matchLabels", "map", None),
    2: ("matchExpressions", "msgs", {1: ("key", "str", None), 2: ("operator", "str", None),
                                     3: ("values", "strs", None)})}
_RESOURCES: Schema = {1: ("limits", "qmap", None), 2: ("requests", "qmap", None)}
_CONTAINER_PORT: Schema = {1: ("name", "str", None), 2: ("hostPort", "opt_int", None),
                           3: ("containerPort", "int", None), 4: ("protocol", "str", None),
                           5: ("hostIP", "str", None)}
_ENV_VAR: Schema = {1: ("name", "str", None), 2: ("value", "str", None)}
_CONTAINER: Schema = {
    1: ("name", "str", None), 2: ("image", "str", None), 3: ("command", "strs", None),
    4: ("args", "strs", None), 5: ("workingDir", "str", None),
    6: ("ports", "msgs", _CONTAINER_PORT), 7: ("env", "msgs", _ENV_VAR),
    8: ("resources", "msg", _RESOURCES), 13: ("terminationMessagePath", "str", None),
    14: ("imagePullPolicy", "str", None), 16: ("stdin", "opt_bool", None),
    17: ("stdinOnce", "opt_bool", None), 18: ("tty", "opt_bool", None),
    20: ("terminationMessagePolicy", "str", None)}
_TOLERATION: Schema = {1: ("key", "str", None), 2: ("operator", "str", None),
                       3: ("value", "str", None), 4: ("effect", "str", None),
                       5: ("tolerationSeconds", "int", None)}
_POD_SPEC: Schema = {
    2: ("containers", "msgs", _CONTAINER), 3: ("restartPolicy", "str", None),
    4: ("terminationGracePeriodSeconds", "int", None),
    5: ("activeDeadlineSeconds", "int", None), 6: ("dnsPolicy", "str", None),
    7: ("nodeSelector", "map", None), 8: ("serviceAccountName", "str", None),
    10: ("nodeName", "str", None), 15: ("imagePullSecrets", "msgs", _LOCAL_REF),
    19: ("schedulerName", "str", None), 20: ("initContainers", "msgs", _CONTAINER),
    22: ("tolerations", "msgs", _TOLERATION), 24: ("priorityClassName", "str", None),
    25: ("priority", "int", None)}
_POD_TEMPLATE: Schema = {1: ("metadata", "msg", _META), 2: ("spec", "msg", _POD_SPEC)}
_DEPLOYMENT_SPEC: Schema = {
    1: ("replicas", "int", None), 2: ("selector", "msg", _LABEL_SELECTOR),
    3: ("template", "msg", _POD_TEMPLATE), 4: ("strategy", "msg", {1: ("type", "str", None)}),
    5: ("minReadySeconds", "opt_int", None), 6: ("revisionHistoryLimit", "int", None),
    7: ("paused", "opt_bool", None), 9: ("progressDeadlineSeconds", "int", None)}
_JOB_SPEC: Schema = {
    1: ("parallelism", "int", None), 2: ("completions", "int", None),
    3: ("activeDeadlineSeconds", "int", None), 4: ("selector", "msg", _LABEL_SELECTOR),
    5: ("manualSelector", "bool", None), 6: ("template", "msg", _POD_TEMPLATE),
    7: ("backoffLimit", "int", None), 8: ("ttlSecondsAfterFinished", "int", None),
    9: ("completionMode", "str", None), 10: ("suspend", "bool", None)}

KINDS.update({
    ("v1", "ConfigMap"): _object(data=(2, "map", None), binaryData=(3, "bmap", None),
                                 immutable=(4, "bool", None)),
    ("v1", "Secret"): _object(data=(2, "bmap", None), type=(3, "str", None),
                              stringData=(4, "map", None), immutable=(5, "bool", None)),
    ("v1", "ResourceQuota"): _object(spec=(2, "msg", {1: ("hard", "qmap", None),
                                                      2: ("scopes", "strs", None)})),
    ("v1", "Pod"): _object(spec=(2, "msg", _POD_SPEC)),
    ("apps/v1", "Deployment"): _object(spec=(2, "msg", _DEPLOYMENT_SPEC)),
    ("batch/v1", "Job"): _object(spec=(2, "msg", _JOB_SPEC)),
    ("scheduling.k8s.io/v1", "PriorityClass"): _object(
        value=(2, "int", None), globalDefault=(3, "opt_bool", None),
        description=(4, "str", None), preemptionPolicy=(5, "str", None)),
})


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes):
    """(field number, wire type, value) of each field; values are ints or bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _text(value: object) -> str:
    if not isinstance(value, bytes):
        raise ValueError("expected a length-delimited field")
    return value.decode("utf-8")


_VARINTS = ("int", "bool", "opt_int", "opt_bool")


def _message(data: bytes, schema: Schema) -> dict:
    out: dict = {}
    for number, wire, value in _fields(data):
        known = schema.get(number)
        if known is None:
            continue
        name, kind, sub = known
        if (kind in _VARINTS) != (wire == 0) or (wire != 0 and wire != 2):
            raise ValueError(f"{name}: unexpected wire type {wire}")
        if kind == "str":
            text = _text(value)
            if text:  # Go writes empty strings; JSON's omitempty leaves them out
                out[name] = text
        elif kind == "bytes":
            out[name] = value
        elif kind in _VARINTS:
            number_value = int(value)  # type: ignore[arg-type]
            if kind.endswith("int") and number_value >= 1 << 63:
                number_value -= 1 << 64
            if kind.startswith("opt_") and not number_value:
                continue
            out[name] = bool(number_value) if kind.endswith("bool") else number_value
        elif kind == "strs":
            out.setdefault(name, []).append(_text(value))
        elif kind == "msg":
            out[name] = _message(value, sub)  # type: ignore[arg-type]
        elif kind == "msgs":
            out.setdefault(name, []).append(_message(value, sub))  # type: ignore[arg-type]
        elif kind in ("map", "extra", "bmap", "qmap"):
            entry = {n: v for n, _, v in _fields(value)}  # type: ignore[arg-type]
            key = _text(entry.get(1, b""))
            if kind == "map":
                out.setdefault(name, {})[key] = _text(entry.get(2, b""))
            elif kind == "bmap":
                raw = entry.get(2, b"")
                if not isinstance(raw, bytes):
                    raise ValueError(f"{name}: expected a length-delimited value")
                out.setdefault(name, {})[key] = base64.b64encode(raw).decode()
            elif kind == "qmap":
                raw = entry.get(2, b"")
                if not isinstance(raw, bytes):
                    raise ValueError(f"{name}: expected a length-delimited value")
                quantity = {n: v for n, _, v in _fields(raw)}
                out.setdefault(name, {})[key] = _text(quantity.get(1, b""))
            else:
                values = entry.get(2, b"")
                if not isinstance(values, bytes):
                    raise ValueError(f"{name}: expected a length-delimited value")
                items = [_text(v) for n, _, v in _fields(values) if n == 1]
                out.setdefault(name, {})[key] = items
    return out


def decode(raw: bytes) -> dict:
    """The JSON form of a protobuf-encoded object (``ValueError`` if unknown or malformed)."""
    if not raw.startswith(_MAGIC):
        raise ValueError("missing the k8s protobuf envelope")
    try:
        unknown = _message(raw[len(_MAGIC):], _UNKNOWN)
        meta = unknown.get("typeMeta") or {}
        key = (meta.get("apiVersion", ""), meta.get("kind", ""))
        schema = KINDS.get(key)
        if schema is None:
            raise ValueError(f"no protobuf decoding for {key[0]} {key[1]} in the simulated "
                             f"cluster; send JSON")
        obj = _message(unknown.get("raw") or b"", schema)
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid UTF-8 in a string field: {exc}") from None
    return {"apiVersion": key[0], "kind": key[1], **obj}
