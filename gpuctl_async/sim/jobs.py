"""The Job controller (``job-controller``): pods for batch/v1 Jobs, and Job status.

Pods are ``<job>-<5 random>`` from the template (which the API server labelled
``job-name``, ``controller-uid``, ``batch.kubernetes.io/job-name`` and
``batch.kubernetes.io/controller-uid``). Up to ``parallelism`` run at once until
``completions`` succeeded (NonIndexed; without completions, the first success completes
the Job once no pod is active); failures beyond ``backoffLimit`` fail it and its active
pods are deleted; a failed pod is replaced after the doubling back-off. A pod that
disappears before finishing counts as failed. ``suspend`` stops creating pods.

``status``: active, ready, succeeded, failed, terminating, startTime, completionTime,
uncountedTerminatedPods and the conditions of Kubernetes 1.31 (SuccessCriteriaMet then
Complete with reason CompletionsReached; FailureTarget then Failed with reason
BackoffLimitExceeded). Events: SuccessfulCreate ("Created pod: x"), SuccessfulDelete,
FailedCreate ("Error creating: ..."), Completed ("Job completed"), BackoffLimitExceeded.
``ttlSecondsAfterFinished`` deletes the finished Job (and, in the background, its pods).
"""

from __future__ import annotations

import calendar
import time

from gpuctl_async.sim.controller import (
    Controller,
    condition_true,
    now_monotonic,
    pod_from_template,
)
from gpuctl_async.sim.history import DELETED, WatchEvent
from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import timestamp
from gpuctl_async.sim.usage import TERMINAL_PHASES

_DONE = "Reached expected number of succeeded pods"
_BACKOFF = "Job has reached the specified backoff limit"


def _is_ready(pod: dict) -> bool:
    return condition_true(pod, "Ready")


def _parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return calendar.timegm(time.strptime(value, "%Y-%m-%dT%H:%M:%SZ"))


class JobController(Controller):
    owner_kind = "Job"
    owner_resource = "jobs"
    child_resource = "pods"
    component = "job-controller"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Pod outcomes seen (a pod may be gone by the time its Job syncs) and counted.
        self._outcomes: dict[str, dict[str, str]] = {}
        self._counted: dict[str, set[str]] = {}
        self._last_failure: dict[str, float] = {}

    def child_changed(self, owner_uid: str, event: WatchEvent) -> None:
        pod = event.entry.obj
        uid = pod["metadata"]["uid"]
        outcomes = self._outcomes.setdefault(owner_uid, {})
        if uid in outcomes:
            return
        phase = (pod.get("status") or {}).get("phase")
        if phase in TERMINAL_PHASES:
            outcomes[uid] = phase
        elif event.type == DELETED:
            outcomes[uid] = "Failed"

    def owner_deleted(self, owner_uid: str) -> None:
        for table in (self._outcomes, self._counted, self._last_failure):
            table.pop(owner_uid, None)

    def sync(self, job: dict) -> float | None:
        uid = job["metadata"]["uid"]
        spec, status = job.get("spec") or {}, dict(job.get("status") or {})
        if condition_true(job, "Complete") or condition_true(job, "Failed"):
            return self._expire(job)
        counted = self._counted.setdefault(uid, set())
        succeeded, failed = status.get("succeeded", 0), status.get("failed", 0)
        for pod_uid, phase in self._outcomes.get(uid, {}).items():
            if pod_uid not in counted:
                counted.add(pod_uid)
                if phase == "Succeeded":
                    succeeded += 1
                else:
                    failed += 1
                    self._last_failure[uid] = now_monotonic()
        pods = self.children(job)
        active = [p for p in pods if (p.get("status") or {}).get("phase") not in
                  TERMINAL_PHASES and not p["metadata"].get("deletionTimestamp")]
        terminating = sum(1 for p in pods if p["metadata"].get("deletionTimestamp"))
        completions, parallelism = spec.get("completions"), spec.get("parallelism", 1)
        retry = None
        finished = None
        if failed > spec.get("backoffLimit", 6):
            finished = ("FailureTarget", "Failed", "BackoffLimitExceeded", _BACKOFF)
            for pod in active:
                self.delete_child(job, pod, deleted="Deleted pod: {name}")
            active = []
        elif (succeeded >= completions if completions is not None
              else succeeded > 0 and not active):
            finished = ("SuccessCriteriaMet", "Complete", "CompletionsReached", _DONE)
        elif not spec.get("suspend"):
            wanted = parallelism if completions is None else min(parallelism,
                                                                 completions - succeeded)
            if completions is None and succeeded:
                wanted = 0  # a work queue Job: no new pods once one has succeeded
            if len(active) < wanted:
                wait = self._failure_backoff(uid, failed)
                if wait > 0:
                    retry = wait
                else:
                    for _ in range(wanted - len(active)):
                        pod = self.create_child(job, pod_from_template(job, spec["template"]),
                                                created="Created pod: {name}",
                                                refused="Error creating: {error}")
                        if pod is None:
                            retry = self.refusal_delay(job)
                            break
                        active.append(pod)
            for pod in active[wanted:] if len(active) > wanted else ():
                self.delete_child(job, pod, deleted="Deleted pod: {name}")
        status.update(active=len(active), ready=sum(1 for p in active if _is_ready(p)),
                      succeeded=succeeded, failed=failed, terminating=terminating,
                      uncountedTerminatedPods={})
        for field in ("succeeded", "failed", "active"):
            if not status[field]:
                del status[field]
        if not spec.get("suspend"):
            status.setdefault("startTime", timestamp())
        if finished is not None:
            now = timestamp()
            target, final, reason, message = finished
            status["conditions"] = [*(status.get("conditions") or []), *(
                {"type": kind, "status": "True", "lastProbeTime": now,
                 "lastTransitionTime": now, "reason": reason, "message": message}
                for kind in (target, final))]
            if final == "Complete":
                status["completionTime"] = now
                self.events.record(job, "Normal", "Completed", "Job completed",
                                   component=self.component)
            else:
                self.events.record(job, "Warning", "BackoffLimitExceeded", _BACKOFF,
                                   component=self.component)
        self.write_status(job, status)
        return retry

    def _failure_backoff(self, uid: str, failed: int) -> float:
        last = self._last_failure.get(uid)
        if not failed or last is None:
            return 0.0
        return last + self.timing.backoff(failed) - now_monotonic()

    def _expire(self, job: dict) -> float | None:
        """ttlSecondsAfterFinished: delete the Job once its time is up."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return None
        conditions = (job.get("status") or {}).get("conditions") or []
        finished_at = max((_parse_time(c.get("lastTransitionTime")) or 0 for c in conditions
                           if c.get("type") in ("Complete", "Failed")), default=0)
        remaining = finished_at + ttl - time.time()
        if remaining > 0:
            return remaining
        meta = job["metadata"]
        try:
            self.store.delete(self.owner_rt, meta["name"], meta["namespace"],
                              propagation_policy="Background",
                              preconditions={"uid": meta["uid"]})
        except StatusError:
            pass
        return None
