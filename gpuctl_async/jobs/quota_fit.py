"""How one pod counts against its namespace's ResourceQuotas, and what it would exceed.

As the API server's quota evaluator counts a pod: ``pods`` and ``count/pods`` 1,
``requests.<r>`` and ``limits.<r>`` for every resource (requests default to limits), and the
shorthands ``cpu``/``memory``/``ephemeral-storage`` for requests. ``used`` is the quota's
``status.used`` as the quota controller last wrote it; everything comes from the quota cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.jobs.placement import show_amount
from gpuctl_async.pools.accounting import CPU, MEMORY
from gpuctl_async.kuberules.quantity import QuantityError, parse_quantity

Amounts = dict[str, Decimal]
_SHORTHANDS = ("cpu", "memory", "ephemeral-storage")
# Which resource a quota key limits (messages and submit-time field names use it).
_KEY_RESOURCE = {"pods": "pods", "count/pods": "pods", "cpu": CPU, "memory": MEMORY}


def key_resource(key: str) -> str:
    """``requests.nvidia.com/gpu`` → ``nvidia.com/gpu``; ``pods`` → ``pods``."""
    return _KEY_RESOURCE.get(key) or key.split(".", 1)[-1]


def _parse(values: object) -> Amounts:
    amounts: Amounts = {}
    if isinstance(values, dict):
        for name, value in values.items():
            try:
                amounts[name] = parse_quantity(value)
            except QuantityError:
                continue
    return amounts


def pod_usage(pod_spec: Obj) -> Amounts:
    requests: Amounts = {}
    limits: Amounts = {}
    for container in pod_spec.get("containers") or ():
        resources = container.get("resources") or {}
        own_limits = _parse(resources.get("limits"))
        own_requests = {**own_limits, **_parse(resources.get("requests"))}
        for name, amount in own_requests.items():
            requests[name] = requests.get(name, Decimal(0)) + amount
        for name, amount in own_limits.items():
            limits[name] = limits.get(name, Decimal(0)) + amount
    usage: Amounts = {"pods": Decimal(1), "count/pods": Decimal(1)}
    for name, amount in requests.items():
        usage[f"requests.{name}"] = amount
        if name in _SHORTHANDS:
            usage[name] = amount
    for name, amount in limits.items():
        usage[f"limits.{name}"] = amount
    return usage


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
        hard = _parse((quota.get("spec") or {}).get("hard")
                      or (quota.get("status") or {}).get("hard"))
        used = _parse((quota.get("status") or {}).get("used"))
        for key in sorted(hard):
            if key in usage and used.get(key, Decimal(0)) + usage[key] * pods > hard[key]:
                blocks.append(QuotaBlock(quota["metadata"]["name"], key, hard[key],
                                         used.get(key, Decimal(0)), usage[key] * pods))
    return blocks
