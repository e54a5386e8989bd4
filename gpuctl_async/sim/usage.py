"""Pod facts the sim's scheduler and quota share, beyond :mod:`gpuctl_async.kuberules`.

Which containers leave a resource unsaid (quota admission), whether a pod has finished, and
``format_quantity``, which renders sums back the way the API server prints them.
"""

from __future__ import annotations

from decimal import Decimal

from gpuctl_async.kuberules.quantity import format_bytes, format_cpu
from gpuctl_async.kuberules.resources import container_amounts

TERMINAL_PHASES = ("Succeeded", "Failed")


def missing_amounts(pod: dict, resource: str, pick: int) -> list[str]:
    """Names of the containers that do not specify ``resource`` (request or limit)."""
    return [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []
            if isinstance(c, dict) and resource not in container_amounts(c)[pick]]


def is_terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def format_quantity(resource: str, amount: Decimal) -> str:
    """Render ``amount`` of ``resource`` as the API server would (``500m``, ``32Gi``)."""
    if resource.endswith("memory") or resource.endswith("storage"):
        if amount == amount.to_integral_value() and int(amount) % 1024 == 0:
            return format_bytes(amount)
        value = int(amount)
        for suffix, unit in (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9),
                             ("M", 10**6), ("k", 10**3)):
            if value and value % unit == 0:
                return f"{value // unit}{suffix}"
        return str(value)
    return format_cpu(amount)
