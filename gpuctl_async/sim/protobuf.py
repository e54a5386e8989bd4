"""Request bodies in Kubernetes' protobuf encoding, for the few kinds kubectl sends that way.

kubectl's typed clients (``auth can-i``, ``auth whoami``, ``create token``, ``create
serviceaccount``, ``create rolebinding``...) post ``application/vnd.kubernetes.protobuf``
and do not retry in JSON. ``decode(raw)`` reads the envelope (``k8s\\0`` + ``runtime.Unknown``
{typeMeta, raw}) and the object inside with the field numbers of k8s.io/api's
``generated.proto``, into the JSON form the rest of the sim handles. Only the kinds below are
known (others, and malformed bodies, raise ``ValueError``); timestamps and fields the sim
ignores are skipped. Parsing is bounded by the body size (``server.MAX_BODY``).
"""

from __future__ import annotations

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

# A schema maps a field number to (json name, kind, sub-schema); kinds: "str", "int",
# "bool", "msg", "strs" (repeated string), "msgs" (repeated message), "map" (string→string),
# "extra" (string→ExtraValue{items}).
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


def _message(data: bytes, schema: Schema) -> dict:
    out: dict = {}
    for number, wire, value in _fields(data):
        known = schema.get(number)
        if known is None:
            continue
        name, kind, sub = known
        if (kind in ("int", "bool")) != (wire == 0) or (wire != 0 and wire != 2):
            raise ValueError(f"{name}: unexpected wire type {wire}")
        if kind == "str":
            out[name] = _text(value)
        elif kind == "bytes":
            out[name] = value
        elif kind in ("int", "bool"):
            number_value = int(value)  # type: ignore[arg-type]
            if kind == "int" and number_value >= 1 << 63:
                number_value -= 1 << 64
            out[name] = bool(number_value) if kind == "bool" else number_value
        elif kind == "strs":
            out.setdefault(name, []).append(_text(value))
        elif kind == "msg":
            out[name] = _message(value, sub)  # type: ignore[arg-type]
        elif kind == "msgs":
            out.setdefault(name, []).append(_message(value, sub))  # type: ignore[arg-type]
        elif kind in ("map", "extra"):
            entry = {n: v for n, _, v in _fields(value)}  # type: ignore[arg-type]
            key = _text(entry.get(1, b""))
            if kind == "map":
                out.setdefault(name, {})[key] = _text(entry.get(2, b""))
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
