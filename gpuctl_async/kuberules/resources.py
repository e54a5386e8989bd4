"""A pod's effective requests and limits, as kube-scheduler and the quota evaluator count them.

Per container, requests default to limits when only limits are given (the API server's
defaulting); the pod's effective amount of each resource is the larger of the sum over its
containers and any single init container (init containers run one at a time, first).
Malformed quantities count as nothing: validation refuses them, and garbage is never summed.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from gpuctl_async.kuberules.quantity import QuantityError, parse_quantity

Amounts = dict[str, Decimal]


@lru_cache(maxsize=4096)
def _parsed(text: str) -> Decimal | None:
    """Quantities repeat (``8``, ``2Gi``, ``100m``): each distinct one is parsed once."""
    try:
        return parse_quantity(text)
    except QuantityError:
        return None


def parse_amount(value: object) -> Decimal | None:
    """A quantity's value, or None if it is not one."""
    if isinstance(value, str):
        return _parsed(value)
    try:
        return parse_quantity(value)  # type: ignore[arg-type]
    except QuantityError:
        return None


def parse_amounts(values: object) -> Amounts:
    """``{"cpu": "500m"}`` → ``{"cpu": Decimal("0.5")}``, leaving out what does not parse."""
    amounts: Amounts = {}
    if isinstance(values, dict):
        for name, value in values.items():
            amount = parse_amount(value)
            if amount is not None:
                amounts[name] = amount
    return amounts


def container_amounts(container: dict) -> tuple[Amounts, Amounts]:
    """(requests, limits) of one container, requests defaulted from limits."""
    resources = container.get("resources") or {}
    limits = parse_amounts(resources.get("limits"))
    requests = {**limits, **parse_amounts(resources.get("requests"))}
    return requests, limits


def _effective(pod_spec: dict, pick: int) -> Amounts:
    total: Amounts = {}
    for container in pod_spec.get("containers") or ():
        if isinstance(container, dict):
            for name, value in container_amounts(container)[pick].items():
                total[name] = total.get(name, Decimal(0)) + value
    for container in pod_spec.get("initContainers") or ():
        if isinstance(container, dict):
            for name, value in container_amounts(container)[pick].items():
                total[name] = max(total.get(name, Decimal(0)), value)
    return total


def pod_requests(pod_spec: dict) -> Amounts:
    """The effective request of every resource the pod spec names."""
    return _effective(pod_spec, 0)


def pod_limits(pod_spec: dict) -> Amounts:
    """The effective limit of every resource the pod spec names."""
    return _effective(pod_spec, 1)
