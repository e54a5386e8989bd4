"""What one pod counts against its namespace's ResourceQuotas, as the quota evaluator counts.

``pods`` and ``count/pods`` 1, ``requests.<r>`` and ``limits.<r>`` for every resource of the
pod's effective requests and limits, and the shorthands ``cpu``/``memory``/
``ephemeral-storage`` for their requests.
"""

from __future__ import annotations

from decimal import Decimal

from gpuctl_async.kuberules.resources import Amounts, pod_limits, pod_requests

SHORTHANDS = ("cpu", "memory", "ephemeral-storage")


def quota_usage(pod_spec: dict) -> Amounts:
    """The quota keys one pod with ``pod_spec`` takes, and how much of each."""
    usage: Amounts = {"pods": Decimal(1), "count/pods": Decimal(1)}
    for name, amount in pod_requests(pod_spec).items():
        usage[f"requests.{name}"] = amount
        if name in SHORTHANDS:
            usage[name] = amount
    for name, amount in pod_limits(pod_spec).items():
        usage[f"limits.{name}"] = amount
    return usage
