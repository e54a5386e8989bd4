"""How one pod counts against its namespace's ResourceQuotas, and what it would exceed.

A pod counts as the API server's quota evaluator counts it (``kuberules.quota.quota_usage``).
``used`` is the quota's ``status.used`` as the quota controller last wrote it; everything comes
from the quota cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.jobs.placement import show_amount
from gpuctl_async.kuberules.resources import Amounts, parse_amounts
from gpuctl_async.pools.accounting import CPU, MEMORY

# Which resource a quota key limits (messages and submit-time field names use it).
_KEY_RESOURCE = {"pods": "pods", "count/pods": "pods", "cpu": CPU, "memory": MEMORY}


def key_resource(key: str) -> str:
    """``requests.nvidia.com/gpu`` → ``nvidia.com/gpu``; ``pods`` → ``pods``."""
    return _KEY_RESOURCE.get(key) or key.split(".", 1)[-1]


@dataclass(frozen=True)
class QuotaBlock:
    quota: str
    key: str
    hard: Decimal
    used: Decimal
    requested: Decimal

    @property
    def resource(self) -> str:
        return key_resource(self.key)

    @property
    def never(self) -> bool:
        """The pod asks for more than the quota allows at all."""
        return self.requested > self.hard

    def as_dict(self) -> dict:
        return {"quota": self.quota, "resource": self.key, "hard": self.show(self.hard),
                "used": self.show(self.used), "requested": self.show(self.requested)}

    def show(self, amount: Decimal) -> str:
        return show_amount(self.resource, amount)


def quota_blocks(cache: ClusterCache, namespace: str, usage: Amounts, *,
                 pods: int = 1) -> list[QuotaBlock]:
    """Quota keys that ``pods`` more pods with ``usage`` each would take past ``hard``."""
    blocks = []
    quotas = [q for q in cache.quotas.peek_items()
              if q.get("metadata", {}).get("namespace") == namespace]
    for quota in sorted(quotas, key=lambda q: q["metadata"]["name"]):
        hard = parse_amounts((quota.get("spec") or {}).get("hard")
                             or (quota.get("status") or {}).get("hard"))
        used = parse_amounts((quota.get("status") or {}).get("used"))
        for key in sorted(hard):
            if key in usage and used.get(key, Decimal(0)) + usage[key] * pods > hard[key]:
                blocks.append(QuotaBlock(quota["metadata"]["name"], key, hard[key],
                                         used.get(key, Decimal(0)), usage[key] * pods))
    return blocks
