"""The ``scale`` subresource of deployments, replicasets and statefulsets.

``GET|PUT|PATCH /apis/apps/v1/namespaces/{ns}/{deployments|replicasets|statefulsets}/{name}/
scale`` read and write an ``autoscaling/v1`` ``Scale``: ``spec.replicas`` is the object's,
``status.replicas`` its observed count and ``status.selector`` its pod selector as a string.
A write changes only the object's ``spec.replicas``; a ``metadata.resourceVersion`` in a PUT
body is a precondition (409 when stale), as on the real server. ``kubectl scale`` PATCHes
``{"spec":{"replicas":N}}`` here (its discovery lookup needs the ``autoscaling/v1`` group and
version that ``rest.Api`` registers with the subresource).
"""

from __future__ import annotations

import orjson

from gpuctl_async.sim import status as st
from gpuctl_async.sim.resources import ResourceType
from gpuctl_async.sim.tables import selector_string

SCALABLE = ("deployments", "replicasets", "statefulsets")
GROUP, VERSION = "autoscaling", "v1"
# Only for the Status of refused writes: 'Scale.autoscaling "web" is invalid: ...'.
_SCALE = ResourceType(GROUP, VERSION, "scale", "scale", "Scale", True)


def scale_of(obj: dict) -> dict:
    meta = obj["metadata"]
    spec: dict = {}
    if (obj.get("spec") or {}).get("replicas"):  # omitempty in autoscaling/v1
        spec["replicas"] = obj["spec"]["replicas"]
    status: dict = {"replicas": (obj.get("status") or {}).get("replicas", 0)}
    selector = selector_string((obj.get("spec") or {}).get("selector"))
    if selector:
        status["selector"] = selector
    return {"kind": "Scale", "apiVersion": f"{GROUP}/{VERSION}",
            "metadata": {key: meta[key] for key in ("name", "namespace", "uid",
                                                    "resourceVersion", "creationTimestamp")
                         if key in meta},
            "spec": spec, "status": status}


def scaled(obj: dict, scale: object) -> dict:
    """A copy of ``obj`` with the replicas ``scale`` asks for, carrying the Scale's
    resourceVersion (if any) so the store's optimistic concurrency applies."""
    name = obj["metadata"]["name"]
    if not isinstance(scale, dict):
        raise st.bad_request("the object provided is unrecognized (must be of type Scale)")
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise st.invalid(_SCALE, name, [st.FieldError.invalid(
            "spec.replicas", replicas, "must be an integer")])
    if replicas < 0:
        raise st.invalid(_SCALE, name, [st.FieldError.invalid(
            "spec.replicas", replicas, "must be greater than or equal to 0")])
    new = orjson.loads(orjson.dumps(obj))
    new.setdefault("spec", {})["replicas"] = replicas
    new["metadata"]["resourceVersion"] = (scale.get("metadata") or {}).get(
        "resourceVersion") or obj["metadata"]["resourceVersion"]
    return new
