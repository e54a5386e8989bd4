"""Authentication as kube-apiserver does it: static bearer tokens and service-account tokens.

- ``parse_token_file(path)`` reads kube-apiserver's ``--token-auth-file`` CSV,
  ``token,user,uid,"group1,group2"`` (at least three columns; an empty token is skipped; a
  repeated token keeps the last line, as the real server does after its warning).
- ``Authenticator.authenticate(token)`` answers ``(UserInfo | None, error)``. Every
  authenticated identity carries the group ``system:authenticated`` (added unless present).
- Service-account tokens are opaque random strings held in memory (``issue``), valid until
  their expiry and while the ServiceAccount they were minted for (same uid) exists; they
  authenticate as ``system:serviceaccount:NS:NAME`` with groups ``system:serviceaccounts``,
  ``system:serviceaccounts:NS`` and extra ``authentication.kubernetes.io/credential-id``.
  Refusals are worded as the real server's: ``[invalid bearer token, service account token
  has expired]``.

The error strings are what TokenReview's ``status.error`` says; they never include a token.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field

from gpuctl_async.sim.resources import BY_KEY
from gpuctl_async.sim.store import Store

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
MASTERS = "system:masters"
SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"
# What TokenRequest and TokenReview answer as the API server's audiences.
API_AUDIENCES = ("https://kubernetes.default.svc.cluster.local",)
INVALID_TOKEN = "invalid bearer token"
EXPIRED_TOKEN = "[invalid bearer token, service account token has expired]"
INVALIDATED_TOKEN = "[invalid bearer token, service account token has been invalidated]"


@dataclass(frozen=True)
class UserInfo:
    """``user.Info``: what authentication yields and authorization decides on."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False, hash=False)

    def as_json(self) -> dict:
        """``authentication.k8s.io/v1`` ``UserInfo`` (empty fields left out, as Go does)."""
        body: dict = {"username": self.name}
        if self.uid:
            body["uid"] = self.uid
        if self.groups:
            body["groups"] = list(self.groups)
        if self.extra:
            body["extra"] = {k: list(v) for k, v in self.extra.items()}
        return body


def with_authenticated(user: UserInfo) -> UserInfo:
    if AUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, AUTHENTICATED), user.extra)


def service_account_username(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


def split_service_account(username: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of ``system:serviceaccount:NS:NAME``, else None."""
    if not username.startswith(SA_PREFIX):
        return None
    namespace, sep, name = username[len(SA_PREFIX):].partition(":")
    if not sep or not namespace or not name or ":" in name:
        return None
    return namespace, name


def service_account_groups(namespace: str) -> tuple[str, ...]:
    return (SA_GROUP, f"{SA_GROUP}:{namespace}")


def parse_token_text(text: str, source: str = "token file") -> dict[str, UserInfo]:
    """The tokens of a ``--token-auth-file`` document; ValueError names the bad record."""
    tokens: dict[str, UserInfo] = {}
    for number, record in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not record:
            continue
        if len(record) < 3:
            raise ValueError(f"token file '{source}' must have at least 3 columns (token, user "
                             f"name, user uid), found {len(record)} in record {number}")
        token, name, uid = record[0], record[1], record[2]
        if not token:
            continue
        groups = tuple(g for g in record[3].split(",") if g) if len(record) >= 4 else ()
        tokens[token] = UserInfo(name, uid, groups)
    return tokens


def parse_token_file(path: str | os.PathLike) -> dict[str, UserInfo]:
    with open(path, encoding="utf-8", newline="") as handle:
        return parse_token_text(handle.read(), str(path))


@dataclass
class _Issued:
    namespace: str
    name: str
    sa_uid: str
    expires: float
    credential_id: str


class Authenticator:
    """Static tokens (token file, ``--token``) plus the service-account tokens it issued."""

    def __init__(self, store: Store, static: dict[str, UserInfo] | None = None):
        self._store = store
        self._static: dict[str, UserInfo] = dict(static or {})
        self._issued: dict[str, _Issued] = {}

    def add_static(self, token: str, user: UserInfo) -> None:
        self._static[token] = user

    def issue(self, namespace: str, name: str, sa_uid: str, seconds: float) -> tuple[str, float]:
        """A new token for the ServiceAccount ``namespace/name`` (uid ``sa_uid``), valid
        ``seconds``; returns it with its expiry (epoch seconds)."""
        token = secrets.token_urlsafe(32)
        expires = time.time() + seconds
        self._issued[token] = _Issued(namespace, name, sa_uid, expires, str(uuid.uuid4()))
        return token, expires

    def authenticate(self, token: str) -> tuple[UserInfo | None, str]:
        user = self._static.get(token)
        if user is not None:
            return with_authenticated(user), ""
        issued = self._issued.get(token)
        if issued is None:
            return None, INVALID_TOKEN
        if time.time() >= issued.expires:  # kept: a real token says it expired, forever
            return None, EXPIRED_TOKEN
        account = self._store.table(BY_KEY["serviceaccounts"]).get((issued.namespace,
                                                                    issued.name))
        if account is None or account.obj["metadata"]["uid"] != issued.sa_uid:
            return None, INVALIDATED_TOKEN
        return UserInfo(service_account_username(issued.namespace, issued.name), issued.sa_uid,
                        (*service_account_groups(issued.namespace), AUTHENTICATED),
                        {"authentication.kubernetes.io/credential-id":
                         (f"JTI={issued.credential_id}",)}), ""
