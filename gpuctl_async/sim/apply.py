"""Server-side apply (``PATCH`` with ``application/apply-patch+yaml``), as far as the sim needs.

``kubectl apply --server-side`` sends the whole intended object to
``PATCH .../NAME?fieldManager=kubectl&force=...``; the API server creates it when it does not
exist (201) and otherwise merges it in (200), recording who applied which fields in
``metadata.managedFields``. The sim does create-or-merge: the merge is the strategic merge
(lists of containers, ports... merged by their keys), and each manager's entry lists the
fields of its last applied object (``FieldsV1``). What it leaves out: conflicts between
managers (409 unless ``force``) and removing fields a manager stops applying.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from gpuctl_async.sim import status as st
from gpuctl_async.sim.history import Entry
from gpuctl_async.sim.patch import strategic_merge_patch
from gpuctl_async.sim.resources import ResourceType
from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import Store

CONTENT_TYPE = "application/apply-patch+yaml"
_SERVER_OWNED = ("status",)


def fields_v1(value: object) -> dict:
    """The ``FieldsV1`` set of an applied object: ``f:<field>`` for map keys, ``k:{...}``
    for list items with a ``name`` key (containers, ports, env), lists of scalars as leaves."""
    if isinstance(value, dict):
        return {f"f:{key}": fields_v1(item) for key, item in value.items()}
    if isinstance(value, list) and value and all(
            isinstance(item, dict) and "name" in item for item in value):
        return {f"k:{json.dumps({'name': item['name']}, separators=(',', ':'))}":
                {".": {}, **fields_v1(item)} for item in value}
    return {}


def _managed_entry(rt: ResourceType, manager: str, applied: dict) -> dict:
    meta = applied.get("metadata") or {}
    fields = {k: v for k, v in applied.items()
              if k not in ("apiVersion", "kind", "metadata", *_SERVER_OWNED)}
    owned_meta = {k: meta[k] for k in ("labels", "annotations") if k in meta}
    if owned_meta:
        fields["metadata"] = owned_meta
    return {"manager": manager, "operation": "Apply", "apiVersion": rt.api_version,
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "fieldsType": "FieldsV1", "fieldsV1": fields_v1(fields)}


def _check(rt: ResourceType, body: object, name: str, manager: str | None) -> dict:
    if not manager:
        raise StatusError(422, "Invalid", f'{rt.kind} "{name}" is invalid: '
                          f"metadata.managedFields.fieldManager: Required value: is required "
                          f"for apply patch", {"name": name, "kind": rt.plural})
    if not isinstance(body, dict):
        raise st.bad_request("error decoding YAML: the apply patch must be an object")
    if not body.get("apiVersion") or not body.get("kind"):
        raise st.bad_request("invalid object type: apiVersion and kind must be set in an "
                             "apply patch")
    meta = body.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise st.bad_request("metadata must be an object")
    if meta.get("name", name) != name:
        raise st.bad_request(f"the name of the object ({meta.get('name')}) does not match the "
                             f"name on the URL ({name})")
    meta["name"] = name
    return body


def server_side_apply(store: Store, rt: ResourceType, namespace: str | None, name: str,
                      body: object, *, manager: str | None,
                      dry_run: bool = False) -> tuple[Entry, bool]:
    """Create or merge ``body``; returns the stored entry and whether it was created."""
    applied = _check(rt, body, name, manager)
    entry = _managed_entry(rt, manager or "", applied)
    try:
        old = store.get_entry(rt, namespace, name)
    except StatusError as exc:
        if exc.code != 404:
            raise
        obj = json.loads(json.dumps(applied))
        for field in _SERVER_OWNED:
            obj.pop(field, None)
        return store.create_entry(rt, obj, namespace, dry_run=dry_run,
                                  managed_fields=[entry]), True
    current = json.loads(old.raw)
    patch = {k: v for k, v in applied.items() if k not in _SERVER_OWNED}
    patch["metadata"] = {k: v for k, v in applied["metadata"].items()
                         if k in ("labels", "annotations")}
    merged = strategic_merge_patch(current, patch)
    managed = [m for m in current["metadata"].get("managedFields") or ()
               if not (m.get("manager") == manager and m.get("operation") == "Apply")]
    return store.update_entry(rt, merged, namespace, name, dry_run=dry_run,
                              managed_fields=[*managed, entry]), False
