"""The ServiceAccount controller's one visible duty: a ``default`` ServiceAccount in every
namespace (created just after the namespace, as on a real cluster; recreated if deleted)."""

from __future__ import annotations

from gpuctl_async.sim.history import ADDED, DELETED, WatchEvent
from gpuctl_async.sim.resources import BY_KEY
from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import Store

_ACCOUNTS = BY_KEY["serviceaccounts"]
_NAMESPACES = BY_KEY["namespaces"]


class DefaultServiceAccounts:
    def __init__(self, store: Store):
        self._store = store

    def install(self) -> None:
        self._store.add_listener(_NAMESPACES, self._namespace_changed)
        self._store.add_listener(_ACCOUNTS, self._account_changed)
        for (_, name) in list(self._store.table(_NAMESPACES)):
            self._ensure(name)

    def _namespace_changed(self, event: WatchEvent) -> None:
        if event.type == ADDED:
            self._store.call_later(0, lambda: self._ensure(event.key[1]))

    def _account_changed(self, event: WatchEvent) -> None:
        if event.type == DELETED and event.key[1] == "default":
            self._store.call_later(0, lambda: self._ensure(event.key[0]))

    def _ensure(self, namespace: str) -> None:
        ns = self._store.table(_NAMESPACES).get(("", namespace))
        if ns is None or ns.obj["metadata"].get("deletionTimestamp"):
            return
        if (namespace, "default") in self._store.table(_ACCOUNTS):
            return
        try:
            self._store.create(_ACCOUNTS, {"metadata": {"name": "default"}},
                               namespace=namespace)
        except StatusError:  # the namespace went away or is terminating meanwhile
            pass
