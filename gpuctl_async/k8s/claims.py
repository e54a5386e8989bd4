"""Name claims: the API server decides which of several racing replicas gets a name.

Several replicas check their own caches before a write, and two requests racing through two
replicas can both pass the check (a job ``x`` as a Job through one, as a Deployment through
the other: different types, so Kubernetes itself would take both). A claim is a ConfigMap
with a deterministic name (``gpuctl-job-x``) created *before* the objects it guards: creating
an object is atomic in the API server, so exactly one request gets it and every other one gets
``AlreadyExists``, which the caller turns into its 409. No lock, no lease, nothing to expire.

Lifetime:

- :meth:`NameClaims.bind` makes the claim a dependent of the object it guards
  (``ownerReferences``), so when that object goes, however it goes (gpuctl, kubectl, a Job's
  TTL), Kubernetes' garbage collector deletes the claim and the name is free again;
- a request that fails half-way deletes its claim (:meth:`NameClaims.release`, with a uid
  precondition so it can never delete someone else's);
- a claim left without an owner for :data:`ABANDONED_AFTER` seconds (its replica died between
  the claim and the bind, or its owner was deleted with ``--cascade=orphan``) is abandoned: the
  next request deletes it with uid and resourceVersion preconditions (so two takers cannot
  both win) and claims again.

Claims are platform bookkeeping made with the service's own rights (the caller was already
allowed to create the object the claim guards); see ``config/k8s/rbac.yaml``.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone

from gpuctl_async.k8s import labels
from gpuctl_async.k8s.client import KubeApiError, KubeClient
from gpuctl_async.k8s.impersonation import as_service
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.k8s.resources import Resource
from gpuctl_async.k8s.timestamps import parse_time

log = logging.getLogger(__name__)

CONFIG_MAPS = Resource("", "v1", "configmaps", "ConfigMap")
CLAIM_LABEL = labels.PREFIX + "claim"
MERGE_PATCH = "application/merge-patch+json"
ABANDONED_AFTER = 120.0
"""Seconds an unbound claim is left alone: far longer than creating a job takes (a request
times out after ``kube_request_timeout``, 30 s by default), with room for clock skew."""


def owner_reference(obj: Obj) -> dict:
    meta = obj["metadata"]
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
            "uid": meta["uid"]}


class NameClaims:
    """Claims of one purpose (``job``, ``quota``): ConfigMaps ``gpuctl-<purpose>[-<name>]``."""

    def __init__(self, kube: KubeClient, purpose: str, *,
                 abandoned_after: float = ABANDONED_AFTER):
        self.kube = kube
        self.purpose = purpose
        self.abandoned_after = abandoned_after

    def claim_name(self, name: str | None = None) -> str:
        return f"gpuctl-{self.purpose}" + (f"-{name}" if name else "")

    async def take(self, namespace: str, name: str | None = None, *,
                   holder: str = "") -> Obj | None:
        """The new claim, or None when another request holds it. ``holder`` is recorded in
        the claim for people reading the cluster (``kubectl get cm``)."""
        manifest = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": self.claim_name(name), "namespace": namespace,
                         "labels": {CLAIM_LABEL: self.purpose}},
            "data": {"holder": holder},
        }
        for _ in range(2):  # once more after taking over an abandoned claim
            try:
                with as_service():
                    return await self.kube.request("POST", CONFIG_MAPS.path(namespace),
                                                   body=manifest)
            except KubeApiError as exc:
                if not exc.is_already_exists:
                    raise
            if not await self._take_over_abandoned(namespace, manifest["metadata"]["name"]):
                return None
        return None

    async def get(self, namespace: str, name: str | None = None) -> Obj | None:
        try:
            with as_service():
                return await self.kube.request(
                    "GET", CONFIG_MAPS.path(namespace, self.claim_name(name)))
        except KubeApiError as exc:
            if exc.is_not_found:
                return None
            raise

    async def bind(self, claim: Obj, *owners: Obj) -> Obj:
        """Make ``owners`` the claim's owners (it lives as long as any of them). The claim's
        resourceVersion is a precondition: a claim changed meanwhile is a 409."""
        meta = claim["metadata"]
        body = {"metadata": {"resourceVersion": meta["resourceVersion"],
                             "ownerReferences": [owner_reference(o) for o in owners]}}
        with as_service():
            return await self.kube.request(
                "PATCH", CONFIG_MAPS.path(meta["namespace"], meta["name"]), body=body,
                content_type=MERGE_PATCH)

    async def mark(self, claim: Obj, *, holder: str) -> Obj:
        """Rewrite the claim's holder with its resourceVersion as precondition: of several
        requests that read the same claim, exactly one succeeds (the others get 409), which
        decides a race between replaces before any of them writes anything else."""
        meta = claim["metadata"]
        # A fresh marker: the write always changes the claim, so it always gets a new
        # resourceVersion (an unchanged object keeps its old one, and would not decide).
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]},
                "data": {"holder": holder, "marker": uuid.uuid4().hex}}
        with as_service():
            return await self.kube.request(
                "PATCH", CONFIG_MAPS.path(meta["namespace"], meta["name"]), body=body,
                content_type=MERGE_PATCH)

    async def release(self, claim: Obj) -> None:
        """Delete exactly this claim (uid precondition); gone already is fine."""
        meta = claim["metadata"]
        try:
            with as_service():
                await self.kube.delete(CONFIG_MAPS.path(meta["namespace"], meta["name"]),
                                       preconditions={"uid": meta["uid"]})
        except KubeApiError as exc:
            if exc.code != 409:  # 409: a newer claim of that name, not ours to delete
                raise

    async def release_owned_by(self, namespace: str, name: str | None, owner_uid: str) -> None:
        """Delete the claim if ``owner_uid`` owns it, so a deleted job's name is free at once
        rather than when the garbage collector gets to it."""
        claim = await self.get(namespace, name)
        if claim is None:
            return
        owners = {ref.get("uid") for ref in claim["metadata"].get("ownerReferences") or ()}
        if owner_uid in owners:
            await self.release(claim)

    async def _take_over_abandoned(self, namespace: str, claim_name: str) -> bool:
        """Delete the existing claim if it is abandoned; True when the name is free now."""
        try:
            with as_service():
                claim = await self.kube.request("GET", CONFIG_MAPS.path(namespace, claim_name))
        except KubeApiError as exc:
            if exc.is_not_found:
                return True  # released meanwhile
            raise
        meta = claim["metadata"]
        created = parse_time(meta.get("creationTimestamp"))
        young = created is None or datetime.now(timezone.utc) - created < timedelta(
            seconds=self.abandoned_after)
        if meta.get("ownerReferences") or young:
            return False
        try:
            with as_service():
                await self.kube.delete(
                    CONFIG_MAPS.path(namespace, claim_name),
                    preconditions={"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]})
        except KubeApiError as exc:
            if exc.code == 409:
                return False  # someone else took it over first
            raise
        log.info("Took over abandoned claim %s/%s", namespace, claim_name)
        return True
