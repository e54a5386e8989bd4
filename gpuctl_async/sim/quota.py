"""ResourceQuota: admission of pod creations and the quota controller's ``status``.

Usage is kept per namespace from the pod change notifications: each pod that is not in a
terminal phase counts ``pods`` (and ``count/pods``), ``requests.<r>`` and ``limits.<r>`` for
every resource it asks for (requests default to limits), and the shorthands ``cpu`` /
``memory`` / ``ephemeral-storage`` for their requests. ``status.hard`` mirrors ``spec.hard``
and ``status.used`` lists every hard key, written shortly after each change.

Admission (pod CREATE) as the API server's ResourceQuota plugin words it:

- a quota limiting ``cpu``/``memory`` requests or limits requires every container to say
  them: 403 ``failed quota: <quota>: must specify limits.cpu,requests.memory``;
- a creation that would take usage past ``hard``: 403 ``exceeded quota: <quota>, requested:
  requests.nvidia.com/gpu=8, used: requests.nvidia.com/gpu=8, limited:
  requests.nvidia.com/gpu=8`` (only the exceeded keys, sorted).

``on_freed(callback)`` calls ``callback(namespace)`` whenever usage drops in a namespace, so
controllers whose creations were refused can retry at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

from gpuctl_async.kuberules.quota import quota_usage
from gpuctl_async.kuberules.resources import Amounts, parse_amounts
from gpuctl_async.sim import status as st
from gpuctl_async.sim.history import DELETED, WatchEvent
from gpuctl_async.sim.resources import BY_KEY
from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import AdmissionRequest, Store
from gpuctl_async.sim.usage import format_quantity, is_terminal, missing_amounts

_QUOTAS = BY_KEY["resourcequotas"]
# Keys whose presence in a quota obliges pods to state the amount: (key, resource, pick).
_CONSTRAINED = {"cpu": ("cpu", 0), "requests.cpu": ("cpu", 0),
                "memory": ("memory", 0), "requests.memory": ("memory", 0),
                "limits.cpu": ("cpu", 1), "limits.memory": ("memory", 1)}


def pod_usage(pod: dict) -> Amounts:
    """What one pod counts against quota (nothing once it is terminal)."""
    return {} if is_terminal(pod) else quota_usage(pod.get("spec") or {})


def _hard(quota: dict) -> Amounts:
    return parse_amounts((quota.get("spec") or {}).get("hard"))


def _pretty(amounts: Amounts) -> str:
    return ",".join(f"{name}={format_quantity(name, amounts[name])}"
                    for name in sorted(amounts))


class QuotaController:
    def __init__(self, store: Store):
        self._store = store
        self._pods: dict[tuple[str, str], Amounts] = {}
        self._used: dict[str, Amounts] = {}
        self._dirty: set[str] = set()
        self._flush: asyncio.Handle | None = None
        self._freed: list[Callable[[str], None]] = []

    def install(self) -> None:
        self._store.add_listener("pods", self._on_pod)
        self._store.add_listener("resourcequotas", self._on_quota)
        self._store.add_admission("pods", self.admit)

    def close(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    def on_freed(self, callback: Callable[[str], None]) -> None:
        self._freed.append(callback)

    def used(self, namespace: str) -> Amounts:
        return dict(self._used.get(namespace, {}))

    # -- usage tracking -------------------------------------------------------------------

    def _on_pod(self, event: WatchEvent) -> None:
        new = {} if event.type == DELETED else pod_usage(event.entry.obj)
        old = self._pods.pop(event.key, {})
        if new:
            self._pods[event.key] = new
        if new == old:
            return
        namespace = event.key[0]
        totals = self._used.setdefault(namespace, {})
        freed = False
        for name in old.keys() | new.keys():
            delta = new.get(name, Decimal(0)) - old.get(name, Decimal(0))
            totals[name] = totals.get(name, Decimal(0)) + delta
            freed = freed or delta < 0
        self._mark(namespace)
        if freed:
            for callback in self._freed:
                callback(namespace)

    def _on_quota(self, event: WatchEvent) -> None:
        if event.type == DELETED:
            return
        previous = event.previous
        if previous is None or previous.get("spec") != event.entry.obj.get("spec"):
            self._mark(event.key[0])
            if previous is not None:  # a raised limit may let refused creations through
                for callback in self._freed:
                    callback(event.key[0])

    def _mark(self, namespace: str) -> None:
        if not self._quota_keys(namespace):
            return
        self._dirty.add(namespace)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._write_status)

    def _quota_keys(self, namespace: str) -> list[tuple[str, str]]:
        table = self._store.table(_QUOTAS)
        return [key for key in self._store.sorted_keys(_QUOTAS)
                if key[0] == namespace and key in table]

    def _write_status(self) -> None:
        self._flush = None
        dirty, self._dirty = self._dirty, set()
        for namespace in dirty:
            totals = self._used.get(namespace, {})
            for _, name in self._quota_keys(namespace):
                try:
                    quota = self._store.get(_QUOTAS, name, namespace=namespace)
                    hard = (quota.get("spec") or {}).get("hard") or {}
                    quota["status"] = {
                        "hard": dict(hard),
                        "used": {key: format_quantity(key, totals.get(key, Decimal(0)))
                                 for key in hard}}
                    self._store.update(_QUOTAS, quota, subresource="status")
                except StatusError:
                    continue  # deleted meanwhile

    # -- admission ------------------------------------------------------------------------

    def admit(self, request: AdmissionRequest) -> None:
        if request.operation != "CREATE" or request.subresource:
            return
        pod = request.obj
        namespace = pod["metadata"]["namespace"]
        name = pod["metadata"].get("name", "")
        requested = pod_usage(pod)
        used = self._used.get(namespace, {})
        for _, quota_name in self._quota_keys(namespace):
            quota = self._store.table(_QUOTAS)[(namespace, quota_name)].obj
            hard = _hard(quota)
            missing = sorted(key for key, (resource, pick) in _CONSTRAINED.items()
                             if key in hard and missing_amounts(pod, resource, pick))
            if missing:
                raise st.forbidden(request.resource, name, f"failed quota: {quota_name}: "
                                                           f"must specify {','.join(missing)}")
            exceeded = [key for key in requested if key in hard and
                        used.get(key, Decimal(0)) + requested[key] > hard[key]]
            if exceeded:
                raise st.forbidden(
                    request.resource, name,
                    f"exceeded quota: {quota_name}, "
                    f"requested: {_pretty({k: requested[k] for k in exceeded})}, "
                    f"used: {_pretty({k: used.get(k, Decimal(0)) for k in exceeded})}, "
                    f"limited: {_pretty({k: hard[k] for k in exceeded})}")
