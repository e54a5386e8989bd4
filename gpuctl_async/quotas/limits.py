"""From a quota document to ResourceQuota manifests: which ``spec.hard`` keys gpuctl writes.

Kubernetes only enforces the keys it knows how to count, so each gpuctl limit becomes:

- ``cpu`` → ``requests.cpu`` and ``limits.cpu`` (same value);
- ``memory`` → ``requests.memory`` and ``limits.memory`` (same value);
- ``gpu`` → ``requests.nvidia.com/gpu`` only: Kubernetes accepts quota on extended resources
  only with the ``requests.`` prefix (they cannot be overcommitted, so limits equal requests).
  The bare ``nvidia.com/gpu`` key upstream wrote is not enforced.

gpuctl pods set requests equal to limits, so both keys of a pair count a gpuctl pod alike. A
``limits.*`` key also makes Kubernetes refuse pods of that namespace that set no cpu/memory
limit; every gpuctl pod sets them. Values are reported back under ``cpu``, ``memory`` and
``nvidia.com/gpu`` (see :mod:`gpuctl_async.quotas.usage`).

One ResourceQuota per namespace, named ``<quota>-<namespace>`` and labelled
``runwhere.ai/quota=<quota>`` and ``runwhere.ai/namespace=<namespace>``; the document's
``default:`` section is the quota of namespace ``default``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpuctl_async.k8s import labels
from gpuctl_async.documents.jobs import DEFAULT_NAMESPACE

UNLIMITED = "unlimited"
# Document field → the spec.hard keys written for it.
HARD_KEYS: dict[str, tuple[str, ...]] = {
    "cpu": ("requests.cpu", "limits.cpu"),
    "memory": ("requests.memory", "limits.memory"),
    "gpu": (labels.QUOTA_GPU_RESOURCE,),
}


@dataclass(frozen=True)
class QuotaTarget:
    """One namespace of a quota document and the ResourceQuota it gets."""

    quota_name: str
    namespace: str
    limits: dict
    """The document's ``{cpu, memory, gpu}`` for this namespace (only those given)."""
    field: str
    """Where in the document the namespace is set (``namespace.team-a``, ``default``)."""

    @property
    def object_name(self) -> str:
        return f"{self.quota_name}-{self.namespace}"

    def hard(self) -> dict[str, str]:
        return {key: str(self.limits[field])
                for field, keys in HARD_KEYS.items() if field in self.limits
                for key in keys}

    def manifest(self) -> dict:
        return {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {
                "name": self.object_name,
                "namespace": self.namespace,
                "labels": {labels.QUOTA: self.quota_name, labels.NAMESPACE: self.namespace},
            },
            "spec": {"hard": self.hard()},
        }

    def summary(self, status: str) -> dict:
        """An entry of the create response's ``created`` list."""
        return {
            "name": self.quota_name,
            "namespace": self.namespace,
            "resourceQuota": self.object_name,
            **{field: str(self.limits[field]) if field in self.limits else UNLIMITED
               for field in HARD_KEYS},
            "status": status,
        }


def quota_targets(spec: dict) -> list[QuotaTarget]:
    """The namespaces a validated quota document sets: ``default:`` first, then ``namespace:``."""
    name = spec["quota"]["name"]
    targets = []
    if "default" in spec:
        targets.append(QuotaTarget(name, DEFAULT_NAMESPACE, spec["default"], "default"))
    for namespace, limits in spec["namespace"].items():
        targets.append(QuotaTarget(name, namespace, limits, f"namespace.{namespace}"))
    return targets
