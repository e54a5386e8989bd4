"""Consistency tokens: the resourceVersions a request wrote, so another replica can catch up.

Every replica serves reads from its own watch-fed caches, so a client whose write went to
replica A may read from replica B before B's watch has delivered it. The write answer carries
a token naming, per resource type, the newest ``resourceVersion`` the write produced
(``jobs.batch=812,services=813``); a read that sends it back waits, bounded, until this
replica's cache of each of those types has seen that version (``Informer.reached``).

Comparing versions: Kubernetes calls resourceVersion opaque, but on an etcd-backed API server
it is the etcd revision, one counter for every object, and the API server itself compares
them that way (``resourceVersionMatch=NotOlderThan``, watch bookmarks). A cache that has seen
revision N has seen every change to its type up to N, so "reached" is ``>=``. A version that is
not a decimal integer is not recorded (nothing to wait for).

Recording is per request: :func:`recording` opens a scope (the middleware does it), and
:class:`~gpuctl_async.k8s.client.KubeClient` calls :func:`record` for each successful write.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator, Mapping
from typing import Any

Versions = dict[str, int]

_WRITTEN: contextvars.ContextVar[Versions | None] = contextvars.ContextVar(
    "gpuctl_written_versions", default=None)
# /api/<version>/... (core) and /apis/<group>/<version>/..., then an optional
# namespaces/<ns>/ (unless the path is a namespace itself), then the plural.
_PATH = re.compile(r"^/(?:api|apis/(?P<group>[^/]+))/[^/]+/"
                   r"(?:namespaces/[^/]+/(?=[^/]+))?(?P<plural>[^/]+)")
_TOKEN_PART = re.compile(r"^(?P<type>[a-z0-9][a-z0-9.-]{0,252})=(?P<version>[0-9]{1,20})$")
MAX_TOKEN_PARTS = 16


class BadToken(ValueError):
    """A consistency token that is not ``type=version[,type=version...]``."""


def resource_type(group: str, plural: str) -> str:
    """``plural.group`` as kubectl names a type (``jobs.batch``), just ``plural`` for core."""
    return f"{plural}.{group}" if group else plural


def type_of_path(path: str) -> str | None:
    """The resource type an API path writes to (``/apis/batch/v1/namespaces/a/jobs/x`` →
    ``jobs.batch``); a namespace's own path is ``namespaces``."""
    match = _PATH.match(path)
    if match is None:
        return None
    return resource_type(match.group("group") or "", match.group("plural"))


@contextlib.contextmanager
def recording() -> Iterator[Versions]:
    """Collect the versions the code inside writes (shared with tasks it starts)."""
    written: Versions = {}
    token = _WRITTEN.set(written)
    try:
        yield written
    finally:
        _WRITTEN.reset(token)


def record(path: str, answer: Mapping[str, Any]) -> None:
    """Note the resourceVersion a successful write answer carries (no-op outside a scope)."""
    written = _WRITTEN.get()
    if written is None or not isinstance(answer, Mapping):
        return
    meta = answer.get("metadata")
    version = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    kind = type_of_path(path)
    if kind is None or not isinstance(version, str) or not version.isdigit():
        return
    number = int(version)
    if number > written.get(kind, 0):
        written[kind] = number


def merge(*parts: Mapping[str, int]) -> Versions:
    """Newest version per type."""
    merged: Versions = {}
    for part in parts:
        for kind, version in part.items():
            if version > merged.get(kind, 0):
                merged[kind] = version
    return merged


def encode(versions: Mapping[str, int]) -> str:
    return ",".join(f"{kind}={version}" for kind, version in sorted(versions.items()))


def decode(token: str) -> Versions:
    """Parse a token; :class:`BadToken` says what is wrong with it."""
    parts = [part.strip() for part in token.split(",") if part.strip()]
    if not parts:
        raise BadToken("must name at least one type=resourceVersion")
    if len(parts) > MAX_TOKEN_PARTS:
        raise BadToken(f"must have at most {MAX_TOKEN_PARTS} parts")
    versions: Versions = {}
    for part in parts:
        match = _TOKEN_PART.match(part)
        if match is None:
            raise BadToken("each part must be <type>=<resourceVersion>, e.g. jobs.batch=812, "
                           "as a write answer gave it")
        versions = merge(versions, {match.group("type"): int(match.group("version"))})
    return versions
