"""What the caches keep of each object: the fields some reader uses, with shared strings.

At Kubernetes' envelope (150,000 pods, 5,000 nodes) a pod kept whole costs ~10 KB of Python
objects (a real API server's ``managedFields`` add 3-5 KB more), so every cached object is
cut down on arrival to what the service reads, and its repeated strings (label keys and
values, namespaces, node names, images, phases, reasons) are interned so each exists once.

Readers, and what they need (keep this list true when a reader starts using a new field):

- job list rows (``jobs.listing``), job status (``jobs.status``): pod metadata, labels,
  ``deletionTimestamp``, ``status.phase``, ``podIP``, container statuses (state, ready,
  restartCount); controllers' ``spec.replicas`` and ``status``.
- job detail (``jobs.views``) and its ``yaml_content`` (``k8s.reverse``, from the controller,
  or from a lone pod whose controller is gone): the pod template / pod spec's main container
  (image, command, args, env values, resources, ports, liveness/readiness ``httpGet``),
  ``imagePullSecrets``, ``nodeSelector``, ``priorityClassName``, ``hostPath`` volumes,
  labels and annotations (the description), ``startTime``, ``completionTime``.
- the reverse mapping's owners (``OWNER_INDEX``): ``ownerReferences[].uid``.
- logs (``logs.pods``): container names, the default-container annotation, container and
  init-container statuses (state, lastState, restartCount), phase, nodeName.
- node and pool accounting (``pools.accounting``): every bound pod's nodeName, phase and
  container / init-container requests; nodes whole but for their image lists.
- why a pod waits (``jobs.placement``, reasons): pod conditions (type, status, reason,
  message), ``deletionGracePeriodSeconds``.

:func:`slim_gpuctl_pod` keeps that of gpuctl's pods; other pods are kept only for
accounting (:func:`slim_other_pod`). :func:`drop_server_fields` is applied to every other
type: it removes ``managedFields``, ``kubectl``'s last-applied annotation and, of nodes, the
image and volume lists (``status.images`` is often the largest part of a real Node).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_NODE_STATUS_DROPPED = ("images", "volumesInUse", "volumesAttached")
# Values unique to one object: interning them would only grow the interned table.
_UNIQUE_VALUES = frozenset({"uid", "resourceVersion", "containerID", "imageID"})
_MAX_INTERNED = 256


_sys_intern = sys.intern


def shared(value: Any, key: str = "") -> Any:
    """``value`` with every string in it interned (dict keys too), except unique ones. A
    recursive walk: for the few objects of the other types; pods intern field by field.
    Written with ``type() is`` tests and C calls: 5,000 nodes go through it at start-up."""
    kind = type(value)
    if kind is dict:
        out = {}
        for name, item in value.items():
            name = _sys_intern(name) if type(name) is str else name
            kind = type(item)
            if kind is str:
                out[name] = (item if name in _UNIQUE_VALUES or len(item) > _MAX_INTERNED
                             else _sys_intern(item))
            elif kind is dict or kind is list:
                out[name] = shared(item, name)
            else:
                out[name] = item
        return out
    if kind is list:
        return [shared(item, key) for item in value]
    if kind is str:
        return _intern(value) if key not in _UNIQUE_VALUES else value
    return value


def _intern(text: Any) -> Any:
    return _sys_intern(text) if type(text) is str and len(text) <= _MAX_INTERNED else text


def _strings(mapping: Mapping[str, Any] | None) -> Obj:
    """Labels, annotations, selectors, requests: a string map with both sides shared."""
    if not mapping:
        return {}
    try:  # string to string, as the API defines them: interned by C calls only
        return dict(zip(map(_sys_intern, mapping), map(_sys_intern, mapping.values())))
    except TypeError:  # a value that is not a string: kept as it is
        return {_intern(k): _intern(v) for k, v in mapping.items()}


def _metadata(meta: Mapping[str, Any]) -> Obj:
    kept: Obj = {key: meta[key] for key in ("name", "uid", "resourceVersion",
                                            "creationTimestamp", "deletionTimestamp",
                                            "deletionGracePeriodSeconds")
                 if key in meta}
    if "namespace" in meta:
        kept["namespace"] = _intern(meta["namespace"])
    if meta.get("labels"):
        kept["labels"] = _strings(meta["labels"])
    if meta.get("annotations"):
        kept["annotations"] = _strings({k: v for k, v in meta["annotations"].items()
                                        if k != LAST_APPLIED})
    if meta.get("ownerReferences"):
        kept["ownerReferences"] = [
            {"apiVersion": _intern(ref.get("apiVersion")), "kind": _intern(ref.get("kind")),
             **{k: ref[k] for k in ("name", "uid", "controller") if k in ref}}
            for ref in meta["ownerReferences"]]
    return kept


def _resources(container: Mapping[str, Any], *, limits: bool = True) -> Obj:
    amounts = container.get("resources") or {}
    kept = {"requests": _strings(amounts.get("requests"))}
    if limits and amounts.get("limits"):
        kept["limits"] = _strings(amounts["limits"])
    return kept


def _requests(container: Mapping[str, Any]) -> Obj:
    return {"resources": _resources(container, limits=False)}


def _probe(probe: Mapping[str, Any] | None) -> Obj | None:
    http = (probe or {}).get("httpGet")
    return {"httpGet": {k: http[k] for k in ("path", "port") if k in http}} if http else None


def _container(container: Mapping[str, Any]) -> Obj:
    kept: Obj = {"name": _intern(container.get("name")), "image": _intern(container.get("image")),
                 "resources": _resources(container)}
    for key in ("command", "args"):
        if container.get(key):
            kept[key] = [_intern(part) for part in container[key]]
    env = [{"name": _intern(var["name"]), "value": _intern(var.get("value", ""))}
           for var in container.get("env") or () if "valueFrom" not in var]
    if env:
        kept["env"] = env
    ports = [{"containerPort": p["containerPort"]} for p in container.get("ports") or ()
             if "containerPort" in p]
    if ports:
        kept["ports"] = ports
    for key in ("livenessProbe", "readinessProbe"):
        probe = _probe(container.get(key))
        if probe:
            kept[key] = probe
    return kept


def _container_status(status: Mapping[str, Any]) -> Obj:
    kept = {key: status[key] for key in ("state", "lastState", "ready", "restartCount")
            if key in status}
    kept["name"] = _intern(status.get("name"))
    return kept


def _conditions(conditions: list[Mapping[str, Any]] | None) -> list[Obj]:
    return [{**{key: _intern(c[key]) for key in ("type", "status", "reason") if key in c},
             **({"message": c["message"]} if "message" in c else {})}
            for c in conditions or ()]


def slim_gpuctl_pod(pod: Obj) -> Obj:
    """A gpuctl pod as the job views, logs, reverse mapping and accounting read it."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    kept_spec: Obj = {"containers": [_container(c) for c in spec.get("containers") or ()]}
    if spec.get("initContainers"):
        kept_spec["initContainers"] = [{"name": _intern(c.get("name")), **_requests(c)}
                                       for c in spec["initContainers"]]
    if spec.get("nodeName"):
        kept_spec["nodeName"] = _intern(spec["nodeName"])
    if spec.get("nodeSelector"):
        kept_spec["nodeSelector"] = _strings(spec["nodeSelector"])
    if spec.get("priorityClassName"):
        kept_spec["priorityClassName"] = _intern(spec["priorityClassName"])
    if spec.get("imagePullSecrets"):
        kept_spec["imagePullSecrets"] = spec["imagePullSecrets"]
    volumes = [{"name": v.get("name"), "hostPath": {"path": v["hostPath"].get("path")}}
               for v in spec.get("volumes") or () if v.get("hostPath")]
    if volumes:
        kept_spec["volumes"] = volumes
    kept_status: Obj = {key: status[key] for key in ("podIP", "startTime", "message")
                        if key in status}
    for key in ("phase", "reason"):
        if key in status:
            kept_status[key] = _intern(status[key])
    for key in ("containerStatuses", "initContainerStatuses"):
        if status.get(key):
            kept_status[key] = [_container_status(s) for s in status[key]]
    if status.get("conditions"):
        kept_status["conditions"] = _conditions(status["conditions"])
    return {"kind": "Pod", "apiVersion": _intern(pod.get("apiVersion", "v1")),
            "metadata": _metadata(pod.get("metadata") or {}),
            "spec": kept_spec, "status": kept_status}


def slim_other_pod(pod: Obj) -> Obj:
    """Any other pod: what node accounting needs (its node, phase and requests)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    kept_spec: Obj = {"nodeName": _intern(spec.get("nodeName")),
                      "containers": [_requests(c) for c in spec.get("containers") or ()]}
    if spec.get("initContainers"):
        kept_spec["initContainers"] = [_requests(c) for c in spec["initContainers"]]
    kept_meta = {key: meta[key] for key in ("name", "resourceVersion") if key in meta}
    if "namespace" in meta:
        kept_meta["namespace"] = _intern(meta["namespace"])
    return {"kind": "Pod", "metadata": kept_meta, "spec": kept_spec,
            "status": {"phase": _intern((pod.get("status") or {}).get("phase"))}}


def drop_server_fields(obj: Obj) -> Obj:
    """Any cached object without what no reader uses and servers add (see module doc)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        annotations = meta.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(LAST_APPLIED, None)
    if obj.get("kind") == "Node" and isinstance(obj.get("status"), dict):
        for key in _NODE_STATUS_DROPPED:
            obj["status"].pop(key, None)
    return shared(obj)
