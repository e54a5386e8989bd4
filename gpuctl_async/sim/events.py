"""core/v1 Events as the components' event recorders write them, with aggregation.

``EventRecorder.record(obj, "Normal", "Scheduled", "Successfully assigned ...",
component="default-scheduler")`` creates an Event named ``<object>.<hex nanoseconds>`` in the
object's namespace (``default`` for cluster-scoped objects) with ``involvedObject`` (kind,
namespace, name, uid, apiVersion, resourceVersion, and ``fieldPath`` such as
``spec.containers{main}`` for container events), ``reason``, ``message``, ``type``,
``source`` {component, host}, ``reportingComponent``/``reportingInstance``,
``firstTimestamp``, ``lastTimestamp``, ``eventTime`` and ``count``.

As client-go's correlator does, a repeat of an identical event (same object, type, reason,
message, source, field path) within the cache's memory (4096 keys) updates the existing
Event instead: ``count`` grows and ``lastTimestamp`` moves on, which ``kubectl describe``
shows as ``(x3 over 10s)``.

``EventRecorder(store, series=True, instance=...)`` records as the newer events.k8s.io/v1
recorder does (kube-scheduler's since 1.19), read back through core/v1: ``eventTime``,
``action``, ``reportingComponent``/``reportingInstance`` and no ``source``, ``count``,
``firstTimestamp`` or ``lastTimestamp`` (null); a repeat sets ``series`` {``count`` (2 at
the first repeat), ``lastObservedTime``} instead. (The real recorder writes later repeats
in a periodic heartbeat; the sim writes each.)
"""

from __future__ import annotations

import time
from collections import OrderedDict

from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import Store, timestamp

_CACHE_SIZE = 4096


def micro_time(at: float | None = None) -> str:
    at = time.time() if at is None else at
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1e6):06d}Z"


def object_reference(obj: dict, field_path: str | None = None) -> dict:
    meta = obj["metadata"]
    ref = {"kind": obj.get("kind"), "namespace": meta.get("namespace"), "name": meta["name"],
           "uid": meta.get("uid"), "apiVersion": obj.get("apiVersion"),
           "resourceVersion": meta.get("resourceVersion")}
    if field_path:
        ref["fieldPath"] = field_path
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    def __init__(self, store: Store, *, series: bool = False, instance: str | None = None):
        self._store = store
        self._series = series
        self._instance = instance
        self._seen: OrderedDict[tuple, tuple[str, str]] = OrderedDict()
        self._last_ns = 0

    def record(self, obj: dict, type: str, reason: str, message: str, *, component: str,
               host: str | None = None, field_path: str | None = None,
               action: str | None = None) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        key = (meta.get("uid"), type, reason, message, component, host, field_path)
        now = time.time()
        known = self._seen.get(key)
        if known is not None:
            self._seen.move_to_end(key)
            try:
                event = self._store.get("events", known[1], namespace=known[0])
                if self._series:
                    count = int((event.get("series") or {}).get("count") or 1) + 1
                    event["series"] = {"count": count, "lastObservedTime": micro_time(now)}
                else:
                    event["count"] = int(event.get("count") or 1) + 1
                    event["lastTimestamp"] = timestamp(now)
                self._store.update("events", event)
                return
            except StatusError:
                pass  # deleted meanwhile (or namespace going): start a new one
        event = {
            "metadata": {"name": self._name(meta["name"], now), "namespace": namespace},
            "involvedObject": object_reference(obj, field_path),
            "reason": reason, "message": message, "type": type, "eventTime": micro_time(now),
            "reportingComponent": component,
            "reportingInstance": self._instance or host or "",
        }
        if self._series:
            event.update({"source": {}, "firstTimestamp": None, "lastTimestamp": None,
                          "action": action or reason})
        else:
            source = {"component": component}
            if host:
                source["host"] = host
            event.update({"source": source, "firstTimestamp": timestamp(now),
                          "lastTimestamp": timestamp(now), "count": 1})
        try:
            created = self._store.create("events", event, namespace=namespace)
        except StatusError:
            return  # e.g. the namespace is being deleted: the real recorder drops it too
        self._seen[key] = (namespace, created["metadata"]["name"])
        if len(self._seen) > _CACHE_SIZE:
            self._seen.popitem(last=False)

    def _name(self, name: str, now: float) -> str:
        # Unique, increasing nanoseconds even for events recorded in the same tick.
        ns = max(int(now * 1e9), self._last_ns + 1)
        self._last_ns = ns
        return f"{name}.{ns:x}"
