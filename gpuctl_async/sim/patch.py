"""The three PATCH formats the API server accepts for built-in types.

- ``application/merge-patch+json``: RFC 7386 (maps merge, ``null`` deletes, lists replace).
- ``application/strategic-merge-patch+json``: maps merge; lists of objects with a patch
  merge key (containers, volumes and env by ``name``, container ports by ``containerPort``,
  service ports by ``port``, conditions by ``type``, ownerReferences by ``uid``...) merge
  item by item; ``metadata.finalizers`` merges as a set; the ``$patch: replace|delete``,
  ``$deleteFromPrimitiveList/<field>`` and ``$setElementOrder/<field>`` directives work.
- ``application/json-patch+json``: RFC 6902 operations with JSON pointers.

All functions take a private copy of the object (the store hands them one) and may reuse it.
``PatchError`` means the patch could not be applied (422); ``PatchDecodeError`` that it is
malformed (400).
"""

from __future__ import annotations

import copy

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

# Patch merge keys by field name; ``ports`` depends on where it is.
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "volumes": "name", "env": "name", "volumeMounts": "mountPath",
    "volumeDevices": "devicePath", "imagePullSecrets": "name", "ownerReferences": "uid",
    "conditions": "type", "taints": "key", "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey", "resourceClaims": "name",
}
# Primitive lists with patchStrategy "merge".
_SET_LISTS = {("metadata", "finalizers")}


class PatchError(Exception):
    """The patch is well formed but cannot be applied to this object."""


class PatchDecodeError(Exception):
    """The patch document itself is malformed."""


def merge_patch(target: object, patch: object) -> object:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(path: tuple[str, ...]) -> str | None:
    name = path[-1]
    if name == "ports":
        return "containerPort" if len(path) >= 2 and "ontainers" in path[-2] else "port"
    return _MERGE_KEYS.get(name)


_DELETE = object()


def strategic_merge_patch(target: object, patch: object, path: tuple[str, ...] = ()) -> object:
    if not isinstance(patch, dict):
        return patch
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return _DELETE
    if directive is not None:
        raise PatchError(f"Unknown patch type: {directive}")
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [x for x in result.get(field) or [] if x not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge_patch(result.get(key), value, path + (key,))
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, path + (key,))
        else:
            result[key] = value
    return result


def _merge_list(current: object, patch: list, path: tuple[str, ...]) -> list:
    current = list(current) if isinstance(current, list) else []
    if path[-2:] in _SET_LISTS or path in _SET_LISTS:
        return current + [x for x in patch if x not in current]
    key = _merge_key(path)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return patch
    if any(item.get("$patch") == "replace" for item in patch):
        return [item for item in patch if item.get("$patch") != "replace"]
    for item in patch:
        if item.get("$patch") == "delete":
            current = [c for c in current if not (isinstance(c, dict)
                                                   and c.get(key) == item.get(key))]
            continue
        for i, existing in enumerate(current):
            if isinstance(existing, dict) and existing.get(key) == item.get(key):
                current[i] = strategic_merge_patch(existing, item, path)
                break
        else:
            current.append(strategic_merge_patch({}, item, path))
    return current


def _pointer(path: object) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise PatchDecodeError(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _container(doc: object, parts: list[str], path: str) -> tuple[object, str]:
    node = doc
    for part in parts[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return node, parts[-1]


def _get(doc: object, path: str) -> object:
    node = doc
    for part in _pointer(path):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return node


def _add(doc: object, path: str, value: object) -> object:
    parts = _pointer(path)
    if not parts:
        return value
    parent, last = _container(doc, parts, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f"index out of bounds: {path!r}")
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def _remove(doc: object, path: str) -> object:
    parts = _pointer(path)
    if not parts:
        raise PatchError("cannot remove the whole document")
    parent, last = _container(doc, parts, path)
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError(f"unable to remove nonexistent key: {last}: missing value")


def json_patch(doc: object, operations: object) -> object:
    if not isinstance(operations, list):
        raise PatchDecodeError("json: cannot unmarshal object into Go value of type "
                               "jsonpatch.Patch")
    for op in operations:
        if not isinstance(op, dict) or "path" not in op:
            raise PatchDecodeError(f"invalid JSON patch operation: {op!r}")
        kind, path = op.get("op"), op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchDecodeError(f"missing value for {kind} operation")
        if kind == "add":
            doc = _add(doc, path, op["value"])
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            if _pointer(path):
                _remove(doc, path)
            doc = _add(doc, path, op["value"])
        elif kind == "move":
            value = _remove(doc, op.get("from"))
            doc = _add(doc, path, value)
        elif kind == "copy":
            doc = _add(doc, path, copy.deepcopy(_get(doc, op.get("from"))))
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchDecodeError(f"Unexpected kind: {kind}")
    return doc


def apply_patch(content_type: str, target: dict, patch: object) -> object:
    """Apply ``patch`` of ``content_type`` to ``target`` (a private copy)."""
    if content_type == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise PatchDecodeError("patch body must be a JSON object")
    if content_type == MERGE_PATCH:
        return merge_patch(target, patch)
    return strategic_merge_patch(target, patch)
