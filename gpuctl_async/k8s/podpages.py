"""Decoding list pages of pods without building what the pod cache drops.

At Kubernetes' envelope two pods in three are not gpuctl's (100,000 of 150,000), and of those
the cache keeps only the node, phase and requests (``k8s.slim.slim_other_pod``). Decoding
each of them whole with orjson, then slimming, was the largest part of the service's start-up:
a pod of the sim's is ~1.9 KB of JSON and ~150 Python objects, of which ~15 survive. Here a
page is split into its items' raw JSON (msgspec, no objects built), each item is first decoded
into a small typed head (labels, node, phase, requests: msgspec skips every other field
without building it), and only a gpuctl pod is decoded whole (orjson) and slimmed as before.

The result is exactly what ``keep_pod`` + ``shape_pod`` make of the whole pod; an item that
does not fit the head's types (a server sending something unusual) is decoded whole and goes
the usual way, so nothing is refused here that the generic path would take.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from gpuctl_async.k8s import labels
from gpuctl_async.k8s.slim import _intern, _strings

Obj = dict[str, Any]
_FINISHED = ("Succeeded", "Failed")
_JOB_TYPE = f'"{labels.JOB_TYPE}"'.encode()


class _Meta(msgspec.Struct):
    name: str | None = None
    namespace: str | None = None
    resourceVersion: str | None = None
    labels: dict[str, str] | None = None


class _Amounts(msgspec.Struct):
    requests: dict[str, str] | None = None


class _Container(msgspec.Struct):
    resources: _Amounts | None = None


class _Spec(msgspec.Struct):
    nodeName: str | None = None
    containers: list[_Container] | None = None
    initContainers: list[_Container] | None = None


class _Status(msgspec.Struct):
    phase: str | None = None


class _Head(msgspec.Struct):
    metadata: _Meta | None = None
    spec: _Spec | None = None
    status: _Status | None = None


class _ListMeta(msgspec.Struct):
    resourceVersion: str | None = None
    # "continue" is a Python keyword: the field is renamed.
    next: str | None = msgspec.field(default=None, name="continue")


class _Page(msgspec.Struct):
    metadata: _ListMeta | None = None
    items: list[msgspec.Raw] | None = None


_page = msgspec.json.Decoder(_Page)
_head = msgspec.json.Decoder(_Head)


def split_page(raw: bytes) -> tuple[Obj, list[Any]]:
    """A PodList page: its list metadata (``resourceVersion``, ``continue``) and its items
    as raw JSON, for :func:`take_pod`. A body that is not of that shape is decoded whole and
    its items go the generic way."""
    try:
        page = _page.decode(raw)
    except msgspec.DecodeError:  # includes ValidationError: an odd page, taken whole
        whole = orjson.loads(raw)
        return whole.get("metadata") or {}, list(whole.get("items") or ())
    meta: Obj = {}
    if page.metadata is not None:
        if page.metadata.resourceVersion is not None:
            meta["resourceVersion"] = page.metadata.resourceVersion
        if page.metadata.next:
            meta["continue"] = page.metadata.next
    return meta, page.items or []


def take_pod(item: Any, keep: Any, shape: Any) -> Obj | None:
    """What the pod cache keeps of one listed item (raw JSON, or a dict when the page was
    taken whole), or None when it keeps nothing: gpuctl's pods decoded whole and shaped by
    ``shape``, any other pod built from its head as ``slim_other_pod`` builds it, if
    ``keep`` (it holds node resources)."""
    if isinstance(item, msgspec.Raw):
        text = bytes(item)
        # The label's key in the text: gpuctl's (or at worst a pod that mentions it), decoded
        # whole at once. Without it the head tells (JSON may escape a key's characters).
        if _JOB_TYPE not in text:
            try:
                head = _head.decode(text)
            except msgspec.DecodeError:
                head = None
            if head is not None and labels.JOB_TYPE not in (
                    (head.metadata and head.metadata.labels) or ()):
                return _other_pod(head)
        item = orjson.loads(text)
    if not keep(item):
        return None
    item.setdefault("kind", "Pod")
    item.setdefault("apiVersion", "v1")
    return shape(item)


def _other_pod(head: _Head) -> Obj | None:
    """``slim_other_pod`` of a pod holding node resources, from its head; None otherwise."""
    spec = head.spec or _Spec()
    phase = head.status.phase if head.status is not None else None
    if not spec.nodeName or phase in _FINISHED:
        return None
    meta = head.metadata or _Meta()
    kept_meta: Obj = {}
    if meta.name is not None:
        kept_meta["name"] = meta.name
    if meta.resourceVersion is not None:
        kept_meta["resourceVersion"] = meta.resourceVersion
    if meta.namespace is not None:
        kept_meta["namespace"] = _intern(meta.namespace)
    kept_spec: Obj = {"nodeName": _intern(spec.nodeName),
                      "containers": [_requests(c) for c in spec.containers or ()]}
    if spec.initContainers:
        kept_spec["initContainers"] = [_requests(c) for c in spec.initContainers]
    return {"kind": "Pod", "metadata": kept_meta, "spec": kept_spec,
            "status": {"phase": _intern(phase)}}


def _requests(container: _Container) -> Obj:
    amounts = container.resources
    return {"resources": {"requests": _strings(amounts.requests if amounts else None)}}
