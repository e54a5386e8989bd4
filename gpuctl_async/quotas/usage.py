"""A ResourceQuota as gpuctl reports it: hard limits, amounts used, and utilization.

Reported resources are ``cpu``, ``memory`` and ``nvidia.com/gpu``. Each reads the first key
present in ``spec.hard`` among the ones listed in :data:`SOURCE_KEYS` (the keys gpuctl writes
first, then the forms older quotas used), and the used amount of that same key from
``status.used``, which Kubernetes' quota controller keeps up to date. ``fraction`` is
used / hard (4 decimals) and ``percent`` the same × 100 (1 decimal); both are ``null`` when
the resource is unlimited or its limit is 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from gpuctl_async.jobs.status import format_age
from gpuctl_async.k8s import labels
from gpuctl_async.kuberules.quantity import parse_quantity
from gpuctl_async.quotas.limits import UNLIMITED

SOURCE_KEYS: dict[str, tuple[str, ...]] = {
    "cpu": ("requests.cpu", "cpu", "limits.cpu"),
    "memory": ("requests.memory", "memory", "limits.memory"),
    labels.GPU_RESOURCE: (labels.QUOTA_GPU_RESOURCE, labels.GPU_RESOURCE),
}
# Reported in ``hard`` for compatibility with the original, which listed the pods limit too.
POD_COUNT_KEY = "pods"


def is_gpuctl_quota(quota: Mapping) -> bool:
    return labels.QUOTA in quota.get("metadata", {}).get("labels", {})


def gpuctl_quotas(quotas: Iterable[Mapping]) -> list[Mapping]:
    """gpuctl's quotas among ``quotas``, by namespace then name."""
    found = [q for q in quotas if is_gpuctl_quota(q)]
    return sorted(found, key=lambda q: (q["metadata"].get("namespace", ""), q["metadata"]["name"]))


def _ratio(used: str, hard: str) -> Decimal | None:
    try:
        limit = parse_quantity(hard)
        amount = parse_quantity(used)
    except (ValueError, ArithmeticError):
        return None
    return amount / limit if limit > 0 else None


def resource_usage(hard: Mapping[str, str], used: Mapping[str, str],
                   sources: tuple[str, ...]) -> dict:
    key = next((k for k in sources if k in hard), None)
    if key is None:
        return {"hard": UNLIMITED, "used": str(used.get(sources[0], "0")),
                "fraction": None, "percent": None}
    limit, amount = str(hard[key]), str(used.get(key, "0"))
    ratio = _ratio(amount, limit)
    return {
        "hard": limit,
        "used": amount,
        "fraction": None if ratio is None else round(float(ratio), 4),
        "percent": None if ratio is None else round(float(ratio) * 100, 1),
    }


def quota_info(quota: Mapping) -> dict:
    """``{name, namespace, resourceQuota, hard, used, utilization, status, age, createdAt}``."""
    meta = quota.get("metadata", {})
    hard = quota.get("spec", {}).get("hard") or {}
    used = quota.get("status", {}).get("used") or {}
    utilization = {resource: resource_usage(hard, used, sources)
                   for resource, sources in SOURCE_KEYS.items()}
    created = meta.get("creationTimestamp")
    return {
        "name": meta.get("labels", {}).get(labels.QUOTA, meta.get("name", "")),
        "namespace": meta.get("namespace", ""),
        "resourceQuota": meta.get("name", ""),
        "hard": {**{r: u["hard"] for r, u in utilization.items()},
                 POD_COUNT_KEY: str(hard.get(POD_COUNT_KEY, UNLIMITED))},
        "used": {r: u["used"] for r, u in utilization.items()},
        "utilization": utilization,
        "status": "Active",
        "age": format_age(created),
        "createdAt": created,
    }
