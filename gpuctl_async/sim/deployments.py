"""The Deployment controller (``deployment-controller``): a ReplicaSet per pod template.

The ReplicaSet of the current template is ``<deployment>-<hash>``, the hash being the
controller's (FNV-32a of the template, its decimal digits encoded with the safe alphabet)
and added as label ``pod-template-hash`` to its selector, template and so its pods. Scaling
the Deployment scales that ReplicaSet; a new template gets a new ReplicaSet and the old ones
are scaled to zero (the rollout is not paced). Events ScalingReplicaSet ("Scaled up replica
set web-5d4f8c6b7 from 0 to 2"). ``status``: replicas, updatedReplicas, readyReplicas,
availableReplicas, unavailableReplicas, observedGeneration and conditions Available
(MinimumReplicasAvailable / MinimumReplicasUnavailable) and Progressing
(NewReplicaSetCreated / ReplicaSetUpdated / NewReplicaSetAvailable).
"""

from __future__ import annotations

import math

import orjson

from gpuctl_async.sim.controller import Controller, copy, owner_reference
from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import timestamp

HASH_LABEL = "pod-template-hash"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: dict, collisions: int = 0) -> str:
    """As ``controller.ComputeHash``: FNV-32a, then ``rand.SafeEncodeString`` of its digits."""
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collisions:
        data += str(collisions).encode()
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    # SafeEncodeString maps each character's code point (not the digit's value).
    return "".join(_SAFE[ord(digit) % len(_SAFE)] for digit in str(value))


def _max_unavailable(spec: dict, replicas: int) -> int:
    value = ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable",
                                                                           "25%")
    if isinstance(value, str) and value.endswith("%"):
        return math.floor(replicas * int(value[:-1]) / 100)
    return int(value)


class DeploymentController(Controller):
    owner_kind = "Deployment"
    owner_resource = "deployments"
    child_resource = "replicasets"
    component = "deployment-controller"

    def sync(self, deployment: dict) -> float | None:
        spec = deployment.get("spec") or {}
        replicas = spec.get("replicas", 1)
        template = spec.get("template") or {}
        pod_hash = template_hash(template)
        sets = self.children(deployment)
        current = next((rs for rs in sets if (rs["metadata"].get("labels") or {}).get(
            HASH_LABEL) == pod_hash), None)
        created = False
        if current is None:
            current = self._create_replicaset(deployment, pod_hash, len(sets) + 1)
            created = current is not None
        elif (current.get("spec") or {}).get("replicas") != replicas:
            current = self._scale(deployment, current, replicas)
        for rs in sets:
            if rs is not current and (rs.get("spec") or {}).get("replicas", 0) > 0:
                self._scale(deployment, rs, 0)
        self._write_status(deployment, self.children(deployment), current, created)
        return None

    def _create_replicaset(self, deployment: dict, pod_hash: str, revision: int) -> dict | None:
        spec = deployment["spec"]
        template = copy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
        selector = copy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
        replicas = spec.get("replicas", 1)
        name = f"{deployment['metadata']['name']}-{pod_hash}"
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": name, "labels": template["metadata"]["labels"],
                           "annotations": {
                               "deployment.kubernetes.io/desired-replicas": str(replicas),
                               "deployment.kubernetes.io/max-replicas": str(replicas),
                               "deployment.kubernetes.io/revision": str(revision)},
                           "ownerReferences": [owner_reference(deployment)]},
              "spec": {"replicas": replicas, "selector": selector, "template": template}}
        created = self.create_child(deployment, rs, created="", refused="Failed to create "
                                    "new replica set \"{name}\": {error}")
        if created is not None:
            self._scaled_event(deployment, name, 0, replicas)
        return created

    def _scale(self, deployment: dict, rs: dict, replicas: int) -> dict:
        before = (rs.get("spec") or {}).get("replicas", 0)
        updated = copy(rs)
        updated["spec"]["replicas"] = replicas
        annotations = updated["metadata"].setdefault("annotations", {})
        annotations["deployment.kubernetes.io/desired-replicas"] = str(
            deployment["spec"].get("replicas", 1))
        try:
            rs = self.store.update(self.child_rt, updated)
        except StatusError:
            return rs  # changed meanwhile: that change queued another sync
        self._scaled_event(deployment, rs["metadata"]["name"], before, replicas)
        return rs

    def _scaled_event(self, deployment: dict, name: str, before: int, after: int) -> None:
        direction = "up" if after > before else "down"
        self.events.record(deployment, "Normal", "ScalingReplicaSet",
                           f"Scaled {direction} replica set {name} from {before} to {after}",
                           component=self.component)

    def _write_status(self, deployment: dict, sets: list[dict], current: dict | None,
                      created: bool) -> None:
        spec = deployment.get("spec") or {}
        replicas = spec.get("replicas", 1)

        def total(field: str, among: list[dict]) -> int:
            return sum((rs.get("status") or {}).get(field, 0) for rs in among)

        available = total("availableReplicas", sets)
        updated = total("replicas", [current]) if current is not None else 0
        status: dict = {"observedGeneration": deployment["metadata"].get("generation", 1),
                        "replicas": total("replicas", sets), "updatedReplicas": updated,
                        "readyReplicas": total("readyReplicas", sets),
                        "availableReplicas": available,
                        "unavailableReplicas": max(0, replicas - available)}
        for field in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
                      "unavailableReplicas"):
            if not status[field]:
                del status[field]
        old = {c["type"]: c for c in (deployment.get("status") or {}).get("conditions") or []}
        minimum = available >= replicas - _max_unavailable(spec, replicas)
        conditions = [self._condition(old, "Available", minimum,
                                      "MinimumReplicasAvailable" if minimum else
                                      "MinimumReplicasUnavailable",
                                      "Deployment has minimum availability." if minimum else
                                      "Deployment does not have minimum availability.")]
        if current is not None:
            rs_name = current["metadata"]["name"]
            done = (total("availableReplicas", [current]) >= replicas
                    and status.get("replicas", 0) == replicas)
            if created:
                reason, message = "NewReplicaSetCreated", f'Created new replica set "{rs_name}"'
            elif done:
                reason, message = ("NewReplicaSetAvailable",
                                   f'ReplicaSet "{rs_name}" has successfully progressed.')
            else:
                reason, message = "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.'
            conditions.append(self._condition(old, "Progressing", True, reason, message))
        status["conditions"] = conditions
        self.write_status(deployment, status)

    @staticmethod
    def _condition(old: dict, type: str, value: bool, reason: str, message: str) -> dict:
        wanted = "True" if value else "False"
        previous = old.get(type) or {}
        now = timestamp()
        same = previous.get("status") == wanted
        unchanged = same and previous.get("reason") == reason and \
            previous.get("message") == message
        return {"type": type, "status": wanted,
                "lastUpdateTime": previous.get("lastUpdateTime") if unchanged else now,
                "lastTransitionTime": previous.get("lastTransitionTime") if same else now,
                "reason": reason, "message": message}
