"""Creating the quotas of one ``kind: quota`` document, all or nothing.

1. Check every namespace against the caches before writing anything: a namespace that already
   has a gpuctl quota is a conflict (409) unless the request asks to ``replace`` it; so is a
   namespace being deleted, or a ResourceQuota of the same name that gpuctl does not own.
2. For each namespace in document order: create it with the gpuctl marker label when missing,
   or add the marker to an existing one (never to ``default``, which gpuctl does not own),
   noting it as adopted so the namespace API will not delete it;
   then create its ResourceQuota. With ``replace``, a gpuctl quota of the same name gets the
   new limits, and gpuctl quotas of other names there are deleted once the new one exists.
3. If any write fails, every write already done is undone in reverse order (created objects
   deleted, replaced limits and deleted quotas restored, added markers removed) before the
   error is raised.

Writes of one app are serialised by a lock, so two requests cannot both pass the
one-quota-per-namespace check for the same namespace. Across replicas the API server decides:
each namespace's gpuctl quota is guarded by a ``gpuctl-quota`` claim (:mod:`gpuctl_async.k8s.
claims`), created before a first quota (``AlreadyExists``: another request's quota won, 409)
and owned by the quota it guards, so it goes when that quota goes. A ``replace`` first
rewrites the claim with its resourceVersion as precondition, so of two racing replaces one
gets 409 before writing anything, then makes the new quota the claim's owner (a rollback binds
it to the quotas it restored). A claim taken just now is followed by a live list of the
namespace's gpuctl quotas: one the cache does not show yet, or one older than claims (no claim
guards it), still refuses a second quota, and is taken over by a replace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from gpuctl_async.errors import Conflict, GpuctlError
from gpuctl_async.k8s import labels
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.claims import NameClaims
from gpuctl_async.k8s.client import KubeApiError, KubeClient
from gpuctl_async.k8s.informer import Obj
from gpuctl_async.k8s.namespaces import create_marked_namespace
from gpuctl_async.k8s.resources import NAMESPACES, RESOURCE_QUOTAS
from gpuctl_async.kuberules.quantity import parse_quantity
from gpuctl_async.quotas.limits import QuotaTarget, quota_targets
from gpuctl_async.quotas.usage import is_gpuctl_quota
from gpuctl_async.documents import parse_document
from gpuctl_async.documents.jobs import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from gpuctl_async.parsing import DocumentParser

log = logging.getLogger(__name__)

CREATED_MESSAGE = "Quota created successfully"
DRY_RUN_MESSAGE = "Dry run: the quota is valid and nothing was created"
MERGE_PATCH = "application/merge-patch+json"


class _Journal:
    """What one request has written, and how to take each write back."""

    def __init__(self) -> None:
        self._undo: list[tuple[str, Callable[[], Awaitable[Any]]]] = []

    def record(self, what: str, undo: Callable[[], Awaitable[Any]]) -> None:
        self._undo.append((what, undo))

    async def rollback(self) -> None:
        for what, undo in reversed(self._undo):
            try:
                # Shielded: a cancelled request must still leave nothing half-done.
                await asyncio.shield(undo())
            except GpuctlError as exc:
                log.error("Could not undo %s: %s", what, exc.message)
            else:
                log.info("Undid %s", what)


def _hard_patch(old: Mapping[str, str], new: Mapping[str, str]) -> dict:
    """A merge patch turning ``spec.hard`` ``old`` into exactly ``new``."""
    return {"spec": {"hard": {**{key: None for key in old if key not in new}, **new}}}


def _recreatable(quota: Obj) -> dict:
    """A deleted quota as it can be created again."""
    meta = quota["metadata"]
    return {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {key: meta[key] for key in ("name", "namespace", "labels", "annotations")
                         if key in meta},
            "spec": quota.get("spec", {})}


def quota_claims(kube: KubeClient) -> NameClaims:
    """The ``gpuctl-quota`` claim of each namespace: one gpuctl quota per namespace."""
    return NameClaims(kube, "quota")


def _raced(target: QuotaTarget) -> Conflict:
    message = (f"Namespace {target.namespace} got another quota at the same time; read it "
               "and send replace: true to replace it.")
    return Conflict(message, details={target.field: [message]})


class QuotaCreator:
    """Creates quota documents. Build one per request; ``lock`` is shared by the app."""

    def __init__(self, kube: KubeClient, cache: ClusterCache, lock: asyncio.Lock, *,
                 settle_timeout: float = 5.0, parser: DocumentParser | None = None):
        self.kube = kube
        self.cache = cache
        self.lock = lock
        self.settle_timeout = settle_timeout
        self.parser = parser  # None: parse in line
        self.claims = quota_claims(kube)

    async def create(self, yaml_text: str, *, replace: bool = False, dry_run: bool = False,
                     authorize: Callable[[str], Awaitable[None]] | None = None,
                     ) -> dict[str, Any]:
        """``authorize(namespace)`` raises unless the caller may create the quota there;
        every namespace is checked before anything is looked at or written."""
        document = (parse_document(yaml_text, allowed_kinds=("quota",)) if self.parser is None
                    else await self.parser.parse(yaml_text, allowed_kinds=("quota",)))
        targets = quota_targets(document.spec)
        if authorize is not None:
            for target in targets:
                await authorize(target.namespace)
        async with self.lock:
            existing = self._check(targets, replace)
            if dry_run:
                entries = [t.summary(self._status(t, existing[t.namespace])) for t in targets]
                return {"message": DRY_RUN_MESSAGE, "name": document.name, "created": entries,
                        "dryRun": True}
            journal = _Journal()
            try:
                entries = [await self._apply(target, existing[target.namespace], journal,
                                             replace=replace)
                           for target in targets]
            except BaseException:
                await journal.rollback()
                await self._settle_rollback(targets, existing)
                raise
            # Still under the lock: the next request's checks must see these writes.
            await self._settle(targets, existing)
        log.info("Created quota %s in %s", document.name,
                 ", ".join(target.namespace for target in targets))
        return {"message": CREATED_MESSAGE, "name": document.name, "created": entries}

    # -- checks (caches only) ------------------------------------------------------------

    def _check(self, targets: list[QuotaTarget], replace: bool) -> dict[str, list[Obj]]:
        """gpuctl quotas already in each target namespace; Conflict if any namespace can't
        take the new quota."""
        problems: dict[str, list[str]] = {}
        existing: dict[str, list[Obj]] = {}
        for target in targets:
            namespace = self.cache.namespaces.get("", target.namespace)
            quotas = [q for q in self.cache.quotas.in_namespace(target.namespace)
                      if is_gpuctl_quota(q)]
            same_name = self.cache.quotas.get(target.namespace, target.object_name)
            existing[target.namespace] = quotas
            if namespace is not None and namespace["metadata"].get("deletionTimestamp"):
                problems[target.field] = [f"Namespace {target.namespace} is being deleted."]
            elif same_name is not None and not is_gpuctl_quota(same_name):
                problems[target.field] = [
                    f"Namespace {target.namespace} already has a ResourceQuota named "
                    f"'{target.object_name}' that gpuctl does not manage."]
            elif quotas and not replace:
                current = quotas[0]["metadata"]["labels"][labels.QUOTA]
                problems[target.field] = [
                    f"Namespace {target.namespace} already has a quota '{current}'. Only one "
                    "quota is allowed per namespace; send replace: true to replace it."]
        if problems:
            first = next(iter(problems.values()))[0]
            more = len(problems) - 1
            raise Conflict(f"{first} (and {more} more)" if more else first, details=problems)
        return existing

    @staticmethod
    def _status(target: QuotaTarget, existing: list[Obj]) -> str:
        return "updated" if existing else "created"

    # -- writes --------------------------------------------------------------------------

    async def _apply(self, target: QuotaTarget, existing: list[Obj], journal: _Journal, *,
                     replace: bool) -> dict:
        await self._prepare_namespace(target.namespace, journal)
        claim, taken = await self._claim(target, replacing=replace, journal=journal)
        existing = existing + await self._unseen_owners(claim, existing)
        if taken:
            # A claim taken just now guards nothing yet, but the namespace may hold a gpuctl
            # quota this replica's cache does not show: one written before claims existed (no
            # claim guards it) or a moment ago. The API server's own list decides.
            unseen = await self._unseen_quotas(target.namespace, existing)
            if unseen and not replace:
                current = unseen[0]["metadata"]["labels"][labels.QUOTA]
                message = (f"Namespace {target.namespace} already has a quota '{current}'. "
                           "Only one quota is allowed per namespace; send replace: true to "
                           "replace it.")
                raise Conflict(message, details={target.field: [message]})
            existing = existing + unseen
        elif replace:
            # Should a later write fail, the rollback restores the quotas replaced here; the
            # claim, bound below to the new quota, would go with it and leave them unguarded.
            marker = (claim.get("data") or {}).get("marker")
            journal.record(f"claim of namespace {target.namespace}'s quota",
                           lambda: self._reclaim(target, marker))
        same = next((q for q in existing if q["metadata"]["name"] == target.object_name), None)
        if same is not None:
            await self._set_hard(same, target.hard(), journal)
            if not claim["metadata"].get("ownerReferences"):
                await self.claims.bind(claim, same)
        else:
            created = await self._create_quota(target, journal)
            try:
                await self.claims.bind(claim, created)
            except KubeApiError as exc:
                if exc.code == 409:
                    raise _raced(target) from None
                raise
        for old in existing:
            if old is not same:
                await self._delete_quota(old, journal)
        return target.summary(self._status(target, existing))

    async def _unseen_owners(self, claim: Obj, existing: list[Obj]) -> list[Obj]:
        """Quotas the claim names that this replica's cache does not show yet (another
        replica's replace a moment ago): a replace must take them over too."""
        seen = {q["metadata"]["name"] for q in existing}
        namespace = claim["metadata"]["namespace"]
        unseen = []
        for ref in claim["metadata"].get("ownerReferences") or ():
            if ref.get("kind") != "ResourceQuota" or ref.get("name") in seen:
                continue
            try:
                quota = await self.kube.request("GET",
                                                RESOURCE_QUOTAS.path(namespace, ref["name"]))
            except KubeApiError as exc:
                if exc.is_not_found:
                    continue
                raise
            if is_gpuctl_quota(quota) and quota["metadata"].get("uid") == ref.get("uid"):
                unseen.append(quota)
        return unseen

    async def _claim(self, target: QuotaTarget, *, replacing: bool,
                     journal: _Journal) -> tuple[Obj, bool]:
        """The namespace's claim, ours for this request, and whether it was taken just now
        (a first quota, or one written before claims existed) rather than rewritten under a
        resourceVersion precondition (a replace); 409 when another request got it."""
        namespace = target.namespace
        claim = await self.claims.get(namespace) if replacing else None
        if claim is None:  # a first quota, or one written before claims existed
            claim = await self.claims.take(namespace, holder=target.quota_name)
            if claim is None:
                raise _raced(target)
            journal.record(f"claim of namespace {namespace}'s quota",
                           lambda c=claim: self.claims.release(c))
            return claim, True
        try:
            return await self.claims.mark(claim, holder=target.quota_name), False
        except KubeApiError as exc:
            if exc.code == 409:
                raise _raced(target) from None
            raise

    async def _live_quotas(self, namespace: str) -> list[Obj]:
        """The namespace's gpuctl quotas as the API server has them now."""
        listed = await self.kube.request("GET", RESOURCE_QUOTAS.path(namespace),
                                         query={"labelSelector": labels.QUOTA})
        return [q for q in listed.get("items") or () if is_gpuctl_quota(q)]

    async def _unseen_quotas(self, namespace: str, existing: list[Obj]) -> list[Obj]:
        seen = {q["metadata"]["name"] for q in existing}
        return [{"apiVersion": "v1", "kind": "ResourceQuota", **q}
                for q in await self._live_quotas(namespace)
                if q["metadata"]["name"] not in seen]

    async def _reclaim(self, target: QuotaTarget, marker: str | None) -> None:
        """Undo of a replace's claim, run after the rest of the rollback: bind the claim to
        the quotas restored (it may have gone with the new quota meanwhile: then take it
        again). A claim another request has marked since (``marker`` is this request's) is
        that request's: left alone."""
        namespace = target.namespace
        quotas = [{"apiVersion": "v1", "kind": "ResourceQuota", **q}
                  for q in await self._live_quotas(namespace)]
        if not quotas:
            return
        for _ in range(2):  # once more if the garbage collector took it between our calls
            claim = await self.claims.get(namespace)
            if claim is not None and (claim.get("data") or {}).get("marker") != marker:
                return
            if claim is None or claim["metadata"].get("deletionTimestamp"):
                claim = await self.claims.take(namespace, holder=target.quota_name)
                if claim is None:
                    return
            try:
                await self.claims.bind(claim, *quotas)
                return
            except KubeApiError as exc:
                if exc.code not in (404, 409):
                    raise

    async def _prepare_namespace(self, name: str, journal: _Journal) -> None:
        namespace = self.cache.namespaces.get("", name)
        if namespace is None:
            if not await create_marked_namespace(self.kube, name):
                # Created since the cache last heard: read it to see whether it is marked.
                namespace = await self.kube.request("GET", NAMESPACES.path(name=name))
            else:
                journal.record(f"creation of namespace {name}", lambda: self._delete(
                    NAMESPACES.path(name=name)))
                log.info("Created namespace %s", name)
                return
        marker = namespace["metadata"].get("labels", {}).get(labels.NAMESPACE)
        if name == DEFAULT_NAMESPACE or marker == labels.NAMESPACE_MARKER:
            return
        # Marked so it is listed as gpuctl's, and noted as adopted so that the namespace API
        # never deletes what gpuctl did not create.
        await self._patch_namespace_marker(name, labels.NAMESPACE_MARKER, adopted="true")
        journal.record(f"gpuctl marker on namespace {name}",
                       lambda: self._patch_namespace_marker(name, marker, adopted=None))

    async def _patch_namespace_marker(self, name: str, value: str | None, *,
                                      adopted: str | None) -> None:
        body = {"metadata": {"labels": {labels.NAMESPACE: value},
                             "annotations": {labels.ADOPTED_ANNOTATION: adopted}}}
        await self.kube.request("PATCH", NAMESPACES.path(name=name), body=body,
                                content_type=MERGE_PATCH)

    async def _create_quota(self, target: QuotaTarget, journal: _Journal) -> Obj:
        namespace, name = target.namespace, target.object_name
        try:
            created = await self.kube.request("POST", RESOURCE_QUOTAS.path(namespace),
                                              body=target.manifest())
        except KubeApiError as exc:
            if exc.is_already_exists:
                raise Conflict(f"ResourceQuota '{name}' already exists in namespace "
                               f"'{namespace}'", details={target.field: [exc.message]}) from None
            raise
        journal.record(f"creation of ResourceQuota {namespace}/{name}",
                       lambda: self._delete(RESOURCE_QUOTAS.path(namespace, name)))
        return created

    async def _set_hard(self, quota: Obj, hard: dict[str, str], journal: _Journal) -> None:
        meta = quota["metadata"]
        path = RESOURCE_QUOTAS.path(meta["namespace"], meta["name"])
        old = dict(quota.get("spec", {}).get("hard") or {})
        await self.kube.request("PATCH", path, body=_hard_patch(old, hard),
                                content_type=MERGE_PATCH)
        journal.record(f"new limits of ResourceQuota {meta['namespace']}/{meta['name']}",
                       lambda: self.kube.request("PATCH", path, body=_hard_patch(hard, old),
                                                 content_type=MERGE_PATCH))

    async def _delete_quota(self, quota: Obj, journal: _Journal) -> None:
        meta = quota["metadata"]
        await self._delete(RESOURCE_QUOTAS.path(meta["namespace"], meta["name"]))
        journal.record(f"deletion of ResourceQuota {meta['namespace']}/{meta['name']}",
                       lambda: self.kube.request("POST", RESOURCE_QUOTAS.path(meta["namespace"]),
                                                 body=_recreatable(quota)))

    async def _delete(self, path: str) -> None:
        await self.kube.delete(path, propagationPolicy="Background")

    # -- read-your-writes ----------------------------------------------------------------

    async def _settle(self, targets: list[QuotaTarget], existing: dict[str, list[Obj]]) -> None:
        quotas, namespaces = self.cache.quotas, self.cache.namespaces
        replaced = [(q["metadata"]["namespace"], q["metadata"]["name"])
                    for t in targets for q in existing[t.namespace]
                    if q["metadata"]["name"] != t.object_name]

        def quotas_written() -> bool:
            return all(_same_hard((quotas.get(t.namespace, t.object_name) or {})
                                  .get("spec", {}).get("hard"), t.hard()) for t in targets) \
                and all(quotas.get(ns, name) is None for ns, name in replaced)

        def namespaces_marked() -> bool:
            return all(_is_ready_namespace(namespaces.get("", t.namespace)) for t in targets)

        await quotas.wait_for(quotas_written, self.settle_timeout)
        await namespaces.wait_for(namespaces_marked, self.settle_timeout)


    async def _settle_rollback(self, targets: list[QuotaTarget],
                               existing: dict[str, list[Obj]]) -> None:
        quotas = self.cache.quotas

        def hard_by_name(objs: list[Obj]) -> dict[str, Any]:
            return {q["metadata"]["name"]: q.get("spec", {}).get("hard") for q in objs}

        def restored() -> bool:
            return all(
                hard_by_name([q for q in quotas.in_namespace(t.namespace) if is_gpuctl_quota(q)])
                == hard_by_name(existing[t.namespace]) for t in targets)

        await quotas.wait_for(restored, self.settle_timeout)


def _same_hard(stored: Mapping[str, str] | None, written: Mapping[str, str]) -> bool:
    """Whether the API server holds these limits; it may rewrite a quantity in canonical
    form (``1000M`` → ``1G``)."""
    if stored is None or stored.keys() != written.keys():
        return False
    try:
        return all(parse_quantity(stored[key]) == parse_quantity(written[key]) for key in written)
    except ValueError:
        return stored == written


def _is_ready_namespace(namespace: Obj | None) -> bool:
    if namespace is None:
        return False
    meta = namespace["metadata"]
    return meta["name"] == DEFAULT_NAMESPACE \
        or meta.get("labels", {}).get(labels.NAMESPACE) == labels.NAMESPACE_MARKER
