"""The default scheduler: binds pending pods to nodes that fit, or says why none does.

Pods with no ``spec.nodeName`` whose ``schedulerName`` is ``default-scheduler`` are queued
when created. For each, every node is filtered in the real plugin order:

- ``spec.unschedulable`` → ``node(s) were unschedulable``;
- taints with effect NoSchedule/NoExecute the pod does not tolerate (a node that is not
  Ready carries ``node.kubernetes.io/not-ready``) → ``node(s) had untolerated taint {k: v}``;
- ``nodeSelector`` and required node affinity (In, NotIn, Exists, DoesNotExist, Gt, Lt;
  ``matchFields`` on metadata.name) → ``node(s) didn't match Pod's node affinity/selector``;
- requests (cpu, memory, ``nvidia.com/gpu``, any other) against allocatable minus the
  requests of the node's bound, non-terminal pods → ``Insufficient <resource>``; the pod
  count against allocatable ``pods`` → ``Too many pods``.

A fitting node is chosen by least allocated cpu/memory (then name) and the pod is bound
through the binding subresource; event ``Scheduled`` ("Successfully assigned ns/pod to
node"). Otherwise the pod gets condition PodScheduled=False (reason Unschedulable) and a
Warning ``FailedScheduling`` event worded as kube-scheduler words it, e.g. ``0/4 nodes are
available: 2 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node
affinity/selector. preemption: 0/4 nodes are available: 2 No preemption victims found for
incoming pod, 2 Preemption is not helpful for scheduling.``; it is retried whenever
capacity frees up (a pod ends or goes) or a node is added or changes, and a repeated
failure aggregates into the same event (its count grows). Retries go in the order of the real
scheduler's active queue (PrioritySort): higher ``spec.priority`` first, then the pod that
has waited longest, so a higher-priority pod takes GPUs that free up before older ones.
Preemption is not simulated: a higher-priority pod waits for capacity rather than evicting.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import orjson

from gpuctl_async.kuberules.resources import Amounts, parse_amounts, pod_requests
from gpuctl_async.kuberules.scheduling import (
    NOT_READY_TAINT,
    UNSCHEDULABLE_TAINT,
    node_ready,
    selects_node,
    tolerates,
    untolerated_taint,
)
from gpuctl_async.sim.events import EventRecorder
from gpuctl_async.sim.history import DELETED, WatchEvent
from gpuctl_async.sim.resources import BY_KEY
from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import Store, timestamp
from gpuctl_async.sim.usage import is_terminal
from gpuctl_async.sim.workqueue import WorkQueue

COMPONENT = "default-scheduler"
_PODS, _NODES = BY_KEY["pods"], BY_KEY["nodes"]
_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
_UNSCHEDULABLE = "node(s) were unschedulable"
_NOT_HELPFUL = "Preemption is not helpful for scheduling"
_NO_VICTIMS = "No preemption victims found for incoming pod"
Key = tuple[str, str]


def _blocking_taint(pod: dict, node: dict) -> dict | None:
    taints = list((node.get("spec") or {}).get("taints") or [])
    if not node_ready(node):
        taints.append(NOT_READY_TAINT)
    return untolerated_taint((pod.get("spec") or {}).get("tolerations") or [], taints)


def _allocatable(node: dict) -> Amounts:
    return parse_amounts((node.get("status") or {}).get("allocatable"))


def _queue_order(pod: dict) -> tuple:
    """PrioritySort: higher priority first, then earlier creation, then name."""
    meta = pod["metadata"]
    return (-int((pod.get("spec") or {}).get("priority") or 0),
            meta.get("creationTimestamp") or "", meta.get("namespace", ""), meta["name"])


class Scheduler:
    def __init__(self, store: Store, events: EventRecorder):
        self._store = store
        self._events = events
        self._queue = WorkQueue("scheduler", self._schedule)
        self._unschedulable: set[Key] = set()
        self._placed: dict[Key, tuple[str, Amounts]] = {}
        self._allocated: dict[str, Amounts] = {}

    def install(self) -> None:
        self._store.add_listener(_PODS, self._on_pod)
        self._store.add_listener(_NODES, self._on_node)

    def start(self) -> None:
        self._queue.start()

    async def stop(self) -> None:
        await self._queue.stop()

    # -- change notifications -------------------------------------------------------------

    def _on_pod(self, event: WatchEvent) -> None:
        pod = event.entry.obj
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        placed = None
        if event.type != DELETED and node and not is_terminal(pod):
            placed = (node, {**pod_requests(spec), "pods": Decimal(1)})
        before = self._placed.pop(event.key, None)
        if placed is not None:
            self._placed[event.key] = placed
        if before != placed:
            if before is not None:
                self._account(*before, sign=-1)
            if placed is not None:
                self._account(*placed, sign=1)
            if before is not None:
                self._retry_unschedulable()
        if event.type == DELETED:
            self._unschedulable.discard(event.key)
        elif (event.type == "ADDED" and not node and not pod["metadata"].get("deletionTimestamp")
              and spec.get("schedulerName", COMPONENT) == COMPONENT):
            self._queue.add(event.key)

    def _on_node(self, event: WatchEvent) -> None:
        if event.type != DELETED:
            self._retry_unschedulable()

    def _account(self, node: str, amounts: Amounts, sign: int) -> None:
        totals = self._allocated.setdefault(node, {})
        for name, amount in amounts.items():
            totals[name] = totals.get(name, Decimal(0)) + sign * amount

    def _retry_unschedulable(self) -> None:
        table = self._store.table(_PODS)
        waiting = [table[key].obj for key in self._unschedulable if key in table]
        for pod in sorted(waiting, key=_queue_order):
            self._queue.add((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        self._unschedulable.clear()

    # -- one scheduling attempt -----------------------------------------------------------

    def _filter(self, pod: dict, requests: Amounts, node: dict) -> list[str]:
        """Why ``pod`` cannot go to ``node`` (empty: it fits)."""
        spec = node.get("spec") or {}
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        if spec.get("unschedulable") and not tolerates(tolerations, UNSCHEDULABLE_TAINT):
            return [_UNSCHEDULABLE]
        taint = _blocking_taint(pod, node)
        if taint is not None:
            return [f"node(s) had untolerated taint {{{taint.get('key')}: "
                    f"{taint.get('value') or ''}}}"]
        if not selects_node(pod.get("spec") or {}, node):
            return [_AFFINITY]
        allocatable = _allocatable(node)
        used = self._allocated.get(node["metadata"]["name"], {})
        reasons = []
        if used.get("pods", Decimal(0)) + 1 > allocatable.get("pods", Decimal(110)):
            reasons.append("Too many pods")
        for name, amount in sorted(requests.items()):
            if amount > 0 and used.get(name, Decimal(0)) + amount > allocatable.get(
                    name, Decimal(0)):
                reasons.append(f"Insufficient {name}")
        return reasons

    def _score(self, node: dict, requests: Amounts) -> tuple:
        allocatable = _allocatable(node)
        used = self._allocated.get(node["metadata"]["name"], {})
        free = []
        for name in ("cpu", "memory"):
            total = allocatable.get(name) or Decimal(1)
            free.append((total - used.get(name, Decimal(0)) - requests.get(name, Decimal(0)))
                        / total)
        # Spread equal fits by pod count, as the real spreading scores would.
        return (-sum(free), used.get("pods", Decimal(0)), node["metadata"]["name"])

    def _schedule(self, key: Key) -> None:
        entry = self._store.table(_PODS).get(key)
        if entry is None:
            return
        pod = entry.obj
        if (pod.get("spec") or {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return
        requests = pod_requests(pod.get("spec") or {})
        nodes = [e.obj for e in self._store.table(_NODES).values()]
        feasible, reasons = [], Counter()
        unhelpful = victims = 0
        for node in nodes:
            why = self._filter(pod, requests, node)
            if not why:
                feasible.append(node)
                continue
            reasons.update(why)
            if why[0] in (_UNSCHEDULABLE, _AFFINITY) or why[0].startswith("node(s) had"):
                unhelpful += 1
            else:
                victims += 1
        if feasible:
            node = min(feasible, key=lambda n: self._score(n, requests))
            name = node["metadata"]["name"]
            try:
                bound = self._store.bind_pod(key[0], key[1], name)
            except StatusError:
                return  # deleted or bound meanwhile
            self._events.record(bound, "Normal", "Scheduled",
                                f"Successfully assigned {key[0]}/{key[1]} to {name}",
                                component=COMPONENT, action="Binding")
            return
        self._unschedulable.add(key)
        self._report_unschedulable(pod, self._message(len(nodes), reasons, unhelpful, victims))

    @staticmethod
    def _message(total: int, reasons: Counter, unhelpful: int, victims: int) -> str:
        if not total:
            return "no nodes available to schedule pods"
        listed = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
        preemption = ", ".join(sorted(f"{count} {reason}" for reason, count in
                                      ((_NOT_HELPFUL, unhelpful), (_NO_VICTIMS, victims))
                                      if count))
        return (f"0/{total} nodes are available: {listed}. preemption: 0/{total} nodes are "
                f"available: {preemption}.")

    def _report_unschedulable(self, pod: dict, message: str) -> None:
        current = orjson.loads(orjson.dumps(pod))
        conditions = [c for c in (current.setdefault("status", {}).get("conditions") or [])
                      if c.get("type") != "PodScheduled"]
        previous = next((c for c in (pod.get("status") or {}).get("conditions") or []
                         if c.get("type") == "PodScheduled"), None)
        condition = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                     "lastTransitionTime": timestamp(), "reason": "Unschedulable",
                     "message": message}
        if previous is not None and previous.get("status") == "False":
            condition["lastTransitionTime"] = previous.get("lastTransitionTime")
        current["status"]["conditions"] = [condition, *conditions]
        try:
            updated = self._store.update(_PODS, current, subresource="status")
        except StatusError:
            return
        self._events.record(updated, "Warning", "FailedScheduling", message,
                            component=COMPONENT, action="Scheduling")
