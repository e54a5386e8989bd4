"""Whose rights a Kubernetes request uses: the caller's (impersonated) or the service's own.

With authentication on, the auth middleware sets :data:`CALLER` for the request it serves.
:class:`~gpuctl_async.k8s.client.KubeClient` then sends every *write* (any method but GET)
with impersonation headers for that identity, so Kubernetes' RBAC, admission (quota) and audit
log apply to the person, not to the service. Reads never impersonate: they are served from the
watch-fed caches or shared streams (log hub), which belong to no one caller; what a caller may
read is decided by a SubjectAccessReview first (``gpuctl_async.auth``).

:func:`as_service` is the one explicit way back to the service's own rights inside a request,
for platform bookkeeping the caller cannot do (the ``gpuctl-*`` PriorityClasses) and for the
review requests themselves.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from multidict import CIMultiDict


@dataclass(frozen=True)
class Identity:
    """A caller as Kubernetes authenticated them (a TokenReview's ``status.user``)."""

    user: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    key: tuple = field(init=False, repr=False, compare=False)
    """Hashable form, for decision caches (``extra`` is a mapping); computed once."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (
            self.user, self.uid, self.groups,
            tuple(sorted((k, tuple(v)) for k, v in self.extra.items()))))


CALLER: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("gpuctl_caller",
                                                                        default=None)
"""The identity the current request's writes impersonate; None: the service's own rights."""


@contextlib.contextmanager
def acting_as(identity: Identity | None) -> Iterator[None]:
    """Make ``identity`` the caller for the code inside (the auth middleware's scope)."""
    token = CALLER.set(identity)
    try:
        yield
    finally:
        CALLER.reset(token)


@contextlib.contextmanager
def as_service() -> Iterator[None]:
    """Use the service's own rights inside, even during a caller's request."""
    with acting_as(None):
        yield


def impersonation_headers(identity: Identity) -> CIMultiDict[str]:
    """Kubernetes' impersonation headers: one ``Impersonate-Group`` per group, and
    ``Impersonate-Extra-<key>`` with the key percent-encoded, as the API server decodes it."""
    headers: CIMultiDict[str] = CIMultiDict({"Impersonate-User": identity.user})
    for group in identity.groups:
        headers.add("Impersonate-Group", group)
    if identity.uid:
        headers["Impersonate-Uid"] = identity.uid
    for key, values in identity.extra.items():
        name = "Impersonate-Extra-" + quote(key, safe="")
        for value in values:
            headers.add(name, value)
    return headers
