"""What a pod asks for: effective requests and limits, as the scheduler and quota count them.

Requests default to limits when only limits are given (the API server's defaulting); the pod's
effective amount of each resource is the larger of the sum over its containers and any single
init container. ``format_quantity`` renders sums back the way the API server prints them.
"""

from __future__ import annotations

from decimal import Decimal

from gpuctl_async.quantity import QuantityError, format_bytes, format_cpu, parse_quantity

Amounts = dict[str, Decimal]
TERMINAL_PHASES = ("Succeeded", "Failed")


def _container_amounts(container: dict) -> tuple[Amounts, Amounts]:
    resources = container.get("resources") or {}
    limits = _parse(resources.get("limits"))
    requests = {**limits, **_parse(resources.get("requests"))}
    return requests, limits


def _parse(values: object) -> Amounts:
    amounts: Amounts = {}
    if isinstance(values, dict):
        for name, value in values.items():
            try:
                amounts[name] = parse_quantity(value)
            except QuantityError:
                continue  # validation refuses these; never count garbage
    return amounts


def _effective(spec: dict, pick: int) -> Amounts:
    total: Amounts = {}
    for container in spec.get("containers") or []:
        if isinstance(container, dict):
            for name, value in _container_amounts(container)[pick].items():
                total[name] = total.get(name, Decimal(0)) + value
    for container in spec.get("initContainers") or []:
        if isinstance(container, dict):
            for name, value in _container_amounts(container)[pick].items():
                total[name] = max(total.get(name, Decimal(0)), value)
    return total


def pod_requests(pod: dict) -> Amounts:
    return _effective(pod.get("spec") or {}, 0)


def pod_limits(pod: dict) -> Amounts:
    return _effective(pod.get("spec") or {}, 1)


def missing_amounts(pod: dict, resource: str, pick: int) -> list[str]:
    """Names of the containers that do not specify ``resource`` (request or limit)."""
    return [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []
            if isinstance(c, dict) and resource not in _container_amounts(c)[pick]]


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
