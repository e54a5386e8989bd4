"""The Priority admission plugin: resolve ``priorityClassName`` when a pod is created.

A pod naming a PriorityClass that does not exist is refused with 403 ``pods "<name>" is
forbidden: no PriorityClass with name <class> was found``; otherwise ``spec.priority`` and
``spec.preemptionPolicy`` are filled from the class (system classes built in; without a
name, the globalDefault class or priority 0). A pod that brings its own ``spec.priority``
differing from the class's is refused as the API server does.
"""

from __future__ import annotations

from gpuctl_async.sim import status as st
from gpuctl_async.sim.resources import BY_KEY
from gpuctl_async.sim.store import AdmissionRequest

SYSTEM_CLASSES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
_CLASSES = BY_KEY["priorityclasses.scheduling.k8s.io"]


def admit_pod_priority(request: AdmissionRequest) -> None:
    if request.operation != "CREATE" or request.subresource:
        return
    pod = request.obj
    spec = pod.setdefault("spec", {})
    name = spec.get("priorityClassName")
    table = request.store.table(_CLASSES)
    policy = "PreemptLowerPriority"
    if not name:
        defaults = [e.obj for e in table.values() if e.obj.get("globalDefault")]
        if defaults:
            chosen = min(defaults, key=lambda pc: pc.get("value", 0))
            name, priority = chosen["metadata"]["name"], chosen.get("value", 0)
            policy = chosen.get("preemptionPolicy") or policy
            spec["priorityClassName"] = name
        else:
            priority = 0
    elif name in SYSTEM_CLASSES:
        priority = SYSTEM_CLASSES[name]
    else:
        entry = table.get(("", name))
        if entry is None:
            raise st.forbidden(request.resource, pod["metadata"].get("name", ""),
                               f"no PriorityClass with name {name} was found")
        priority = entry.obj.get("value", 0)
        policy = entry.obj.get("preemptionPolicy") or policy
    given = spec.get("priority")
    if given is not None and given != priority:
        raise st.forbidden(request.resource, pod["metadata"].get("name", ""),
                           f"the integer value of priority ({given}) must not be provided in "
                           f"pod spec; priority admission controller computed {priority} "
                           f"from the given PriorityClass name")
    spec["priority"] = priority
    spec.setdefault("preemptionPolicy", policy)
