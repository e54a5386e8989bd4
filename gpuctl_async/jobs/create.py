"""Submitting gpuctl job documents: validate, prepare the namespace, create, undo on failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from gpuctl_async.errors import Conflict, GpuctlError, ValidationFailed
from gpuctl_async.jobs.feasibility import assess
from gpuctl_async.jobs.reasons import Explainer
from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.claims import NameClaims
from gpuctl_async.k8s.client import KubeApiError, KubeClient
from gpuctl_async.k8s.impersonation import as_service
from gpuctl_async.k8s.manifests import build_manifests
from gpuctl_async.k8s.namespaces import create_marked_namespace
from gpuctl_async.k8s.resources import PRIORITY_CLASSES, resource_for
from gpuctl_async.documents import JOB_KINDS, ParsedDocument, parse_document
from gpuctl_async.documents.hostpaths import SYSTEM_DIRECTORIES_ONLY, HostPathPolicy

if TYPE_CHECKING:
    from gpuctl_async.parsing import DocumentParser

log = logging.getLogger(__name__)

Authorize = Callable[[str, str], Awaitable[None]]

SUBMITTED_MESSAGE = "Job submitted to resource pool"
# A dry run in a namespace that does not exist yet is checked against ``default``: the API
# server validates the objects the same way, and nothing is stored either way.
DRY_RUN_FALLBACK_NAMESPACE = "default"


def job_claims(kube: KubeClient) -> NameClaims:
    """``gpuctl-job-<name>`` claims: one job name per namespace, whatever the kinds, across
    replicas (see :mod:`gpuctl_async.k8s.claims`)."""
    return NameClaims(kube, "job")


class JobSubmitter:
    """Creates jobs. One per app: it remembers nothing but a lock for PriorityClasses."""

    def __init__(self, kube: KubeClient, cache: ClusterCache, explainer: Explainer, *,
                 settle_timeout: float = 5.0,
                 host_paths: HostPathPolicy = SYSTEM_DIRECTORIES_ONLY,
                 parser: DocumentParser | None = None, refuse_infeasible: bool = True):
        self.kube = kube
        self.cache = cache
        self.explainer = explainer
        self.settle_timeout = settle_timeout
        self.host_paths = host_paths
        self.parser = parser  # None: parse in line (tests of the submitter alone)
        self.refuse_infeasible = refuse_infeasible
        self.claims = job_claims(kube)
        self._priority_lock = asyncio.Lock()

    async def parse(self, yaml_text: str) -> ParsedDocument:
        if self.parser is None:
            return parse_document(yaml_text, allowed_kinds=JOB_KINDS, host_paths=self.host_paths)
        return await self.parser.parse(yaml_text, allowed_kinds=JOB_KINDS,
                                       host_paths=self.host_paths)

    async def submit(self, yaml_text: str, *, dry_run: bool = False,
                     authorize: Authorize | None = None) -> dict[str, Any]:
        """``authorize(controller kind, namespace)`` raises unless the caller may create the
        job: it runs before any check that would reveal what the namespace holds, and
        before the service writes anything with its own rights (PriorityClasses)."""
        document = await self.parse(yaml_text)
        manifests = build_manifests(document.spec)
        namespace, name = document.namespace, document.name
        if authorize is not None:
            await authorize(manifests[0]["kind"], namespace)
        warnings = self._check_feasible(document, manifests[0])
        self._check_name_free(namespace, name)
        if dry_run:
            return {**await self._dry_run(document, manifests), "warnings": warnings}
        await self._ensure_namespace(namespace)
        await self._ensure_priority_classes()
        await self._create_claimed(manifests, namespace=namespace, name=name)
        controller = manifests[0]
        informer = self.cache.controller_informer(controller["kind"])
        written = asyncio.get_running_loop().time()
        if await informer.wait_for(lambda: informer.get(namespace, name) is not None,
                                   self.settle_timeout):
            informer.stats.observe_write_lag(asyncio.get_running_loop().time() - written)
        log.info("Created %s job %s/%s", document.kind, namespace, name)
        return {**self._response(document), "warnings": warnings}

    def _response(self, document: ParsedDocument) -> dict[str, Any]:
        return {
            "jobId": document.name,
            "name": document.name,
            "kind": document.kind,
            "status": "pending",
            "createdAt": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "message": SUBMITTED_MESSAGE,
            "namespace": document.namespace,
        }

    def _check_feasible(self, document: ParsedDocument, controller: dict) -> list[str]:
        """Refuse a job that can never run (unless told to only warn); the warnings of one
        that can run later."""
        found = assess(self.explainer, controller, document.spec["resources"]["pool"])
        if found.refusals and self.refuse_infeasible:
            first = found.refusals[0].message
            more = len(found.refusals) - 1
            raise ValidationFailed(
                f"The job can never run here: {first}" + (f" (and {more} more)" if more else ""),
                details=found.details())
        return [f"{r.message}: the job would never run as the cluster is now"
                for r in found.refusals] + found.warnings

    def _check_name_free(self, namespace: str, name: str) -> None:
        for informer in self.cache.controllers():
            if informer.get(namespace, name) is not None:
                raise Conflict(f"Job '{name}' already exists in namespace '{namespace}'")

    async def _ensure_namespace(self, namespace: str) -> None:
        existing = self.cache.namespaces.get("", namespace)
        if existing is not None:
            # Kubernetes would refuse each object (403); deletion takes seconds: say so.
            if existing["metadata"].get("deletionTimestamp"):
                raise Conflict(f"Namespace '{namespace}' is being deleted; wait until it is "
                               f"gone or use another namespace")
            return
        if await create_marked_namespace(self.kube, namespace):
            log.info("Created namespace %s", namespace)

    async def _ensure_priority_classes(self) -> None:
        """Create gpuctl-high/-medium/-low when missing; a lock keeps a burst of submissions
        from all trying at once, and the cache makes the check free afterwards."""
        missing = [pc for pc in labels.PRIORITY_CLASSES
                   if self.cache.priority_classes.get("", pc["metadata"]["name"]) is None]
        if not missing:
            return
        async with self._priority_lock:
            for priority_class in missing:
                name = priority_class["metadata"]["name"]
                if self.cache.priority_classes.get("", name) is not None:
                    continue
                try:
                    # Platform bookkeeping shared by every tenant, which callers cannot do:
                    # the service's own rights, once the caller's request was allowed.
                    with as_service():
                        await self.kube.request("POST", PRIORITY_CLASSES.path(),
                                                body=priority_class)
                except KubeApiError as exc:
                    if not exc.is_already_exists:
                        raise
                await self.cache.priority_classes.wait_for(
                    lambda n=name: self.cache.priority_classes.get("", n) is not None,
                    self.settle_timeout)

    async def _create_claimed(self, manifests: list[dict], *, namespace: str,
                              name: str) -> None:
        """Claim the name (the API server picks one winner among racing replicas), create
        the objects, make the claim their controller's dependent. Any failure undoes all."""
        claim = await self.claims.take(namespace, name, holder=f"{manifests[0]['kind']}/{name}")
        if claim is None:
            raise Conflict(f"Job '{name}' already exists in namespace '{namespace}'")
        created: list[tuple[dict, dict]] = []  # (manifest, what the API server stored)
        try:
            await self._create_all(manifests, created, job_name=name)
            await self.claims.bind(claim, created[0][1])
        except BaseException:
            for manifest, _ in reversed(created):
                await self._undo(manifest)
            try:
                await asyncio.shield(self.claims.release(claim))
            except GpuctlError as exc:
                log.error("Could not release the claim of job %s/%s: %s", namespace, name,
                          exc.message)
            raise

    async def _create_all(self, manifests: list[dict], created: list[tuple[dict, dict]], *,
                          job_name: str) -> None:
        """Create in order, noting each in ``created`` (the caller undoes them on failure)."""
        for manifest in manifests:
            try:
                stored = await self._create(manifest)
            except Conflict:
                if created:  # the Service clashed with an object we did not make
                    raise
                namespace = manifest["metadata"]["namespace"]
                raise Conflict(f"Job '{job_name}' already exists in namespace "
                               f"'{namespace}'") from None
            created.append((manifest, stored))

    async def _create(self, manifest: dict, *, dry_run: bool = False) -> dict:
        meta = manifest["metadata"]
        resource = resource_for(manifest)
        try:
            return await self.kube.request(
                "POST", resource.path(meta.get("namespace")), body=manifest,
                query={"dryRun": "All"} if dry_run else None,
            )
        except KubeApiError as exc:
            if exc.is_already_exists:
                raise Conflict(f"{manifest['kind']} '{meta['name']}' already exists in "
                               f"namespace '{meta.get('namespace')}'") from None
            raise

    async def _undo(self, manifest: dict) -> None:
        meta = manifest["metadata"]
        resource = resource_for(manifest)
        try:
            await asyncio.shield(self.kube.delete(
                resource.path(meta.get("namespace"), meta["name"]),
                propagationPolicy="Background"))
            log.info("Rolled back %s %s/%s", manifest["kind"], meta.get("namespace"), meta["name"])
        except GpuctlError as exc:
            log.error("Could not roll back %s %s/%s: %s", manifest["kind"],
                      meta.get("namespace"), meta["name"], exc.message)

    async def _dry_run(self, document: ParsedDocument, manifests: list[dict]) -> dict[str, Any]:
        checked_in = document.namespace
        if self.cache.namespaces.get("", document.namespace) is None:
            checked_in = DRY_RUN_FALLBACK_NAMESPACE
        for manifest in manifests:
            probe = {**manifest, "metadata": {**manifest["metadata"], "namespace": checked_in}}
            await self._create(probe, dry_run=True)
        return {**self._response(document), "dryRun": True, "manifests": manifests,
                "message": "Dry run: the job is valid and nothing was created"}
