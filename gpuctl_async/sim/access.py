"""The request path of a secured API server: authentication → impersonation → authorization
→ handler → audit, as kube-apiserver's filter chain orders them.

``Access(store, authenticator, authorizer, audit)``; ``middleware`` is installed by
``server.create_app`` only when authentication is on (the open sim pays nothing). ``/_sim``
and the health checks stay open.

- A missing or unknown bearer token: 401 ``Unauthorized`` Status.
- ``Impersonate-User`` (a ``system:serviceaccount:NS:NAME`` name impersonates that
  ServiceAccount, with its groups unless groups are given), ``Impersonate-Group``
  (repeatable), ``Impersonate-Uid``, ``Impersonate-Extra-<key>`` (key lowercased and
  percent-decoded): each is authorized for the requester as verb ``impersonate`` on
  ``users``/``groups``/``serviceaccounts`` (core group) or ``uids``/``userextras/<key>``
  (``authentication.k8s.io``), named by the value; the first refusal is a 403 worded as the
  real one (``users "bob" is forbidden: User "alice" cannot impersonate resource "users" in
  API group "" at the cluster scope``). The impersonated identity gains
  ``system:authenticated`` and is what the request is authorized, served and audited as.
- Then the request's own attributes (``rest.request_info``) are authorized; a refusal is the
  403 of ``rbac.forbidden``.

The identity a handler serves is ``request_user(request)`` (None on an open sim).
"""

from __future__ import annotations

from urllib.parse import unquote

from aiohttp import web

from gpuctl_async.sim import status as st
from gpuctl_async.sim.audit import MUTATING, AuditLog
from gpuctl_async.sim.authn import (
    AUTHENTICATED,
    UNAUTHENTICATED,
    Authenticator,
    UserInfo,
    service_account_groups,
    service_account_username,
    split_service_account,
)
from gpuctl_async.sim.escalation import CURRENT_USER
from gpuctl_async.sim.faults import SIM_PREFIX
from gpuctl_async.sim.rbac import forbidden
from gpuctl_async.sim.rest import RequestInfo, request_info, status_response

UNAUTHENTICATED_PATHS = (SIM_PREFIX, "/healthz", "/livez", "/readyz")
_USER_KEY = "sim_user"
_EXTRA_PREFIX = "impersonate-extra-"
_AUTH_GROUP = "authentication.k8s.io"


def request_user(request: web.Request) -> UserInfo | None:
    return request.get(_USER_KEY)


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() != "bearer ":
        return ""
    return header[7:].strip()


def _go_reference(check: RequestInfo) -> str:
    """``fmt.Sprint`` of the ``v1.ObjectReference`` kube-apiserver builds for one
    impersonation header (Kind Namespace Name UID APIVersion ResourceVersion FieldPath)."""
    kind = {"groups": "Group", "userextras": "UserExtra", "uids": "UID"}[check.resource]
    api_version = "" if check.resource == "groups" else f"{_AUTH_GROUP}/v1"
    return "{" + " ".join((kind, "", check.name, "", api_version, "", check.subresource)) + "}"


class Access:
    def __init__(self, authenticator: Authenticator, authorizer, audit: AuditLog):
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.audit = audit

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if request.path.startswith(UNAUTHENTICATED_PATHS):
            return await handler(request)
        token = _bearer(request)
        user = self.authenticator.authenticate(token)[0] if token else None
        if user is None:
            return status_response(st.unauthorized())
        impersonator = None
        if any(key[:12].lower() == "impersonate-" for key in request.headers):
            try:
                impersonated = self._impersonate(request, user)
            except st.StatusError as error:
                return status_response(error)
            except ValueError as exc:  # kube-apiserver answers this with a plain 500
                return web.Response(status=500, text=f'Internal Server Error: '
                                                     f'"{request.path_qs}": {exc}\n')
            impersonator, user = user, impersonated
        attrs = request_info(request.method, request.path, request.query)
        allowed, reason = self.authorizer.authorize(user, attrs)
        if not allowed:
            return status_response(forbidden(user.name, attrs, reason))
        request[_USER_KEY] = user
        current = CURRENT_USER.set(user)  # for admission (``sim.escalation``)
        try:
            response = await handler(request)
        finally:
            CURRENT_USER.reset(current)
        if attrs.verb in MUTATING and attrs.is_resource:
            self.audit.record(attrs, user, impersonator, response, request.path_qs, reason)
        return response

    def _impersonate(self, request: web.Request, requester: UserInfo) -> UserInfo:
        headers = request.headers
        wanted_user = headers.get("Impersonate-User", "")
        checks: list[RequestInfo] = []
        name, uid = "", ""
        groups: list[str] = []
        extra: dict[str, list[str]] = {}
        if wanted_user:
            account = split_service_account(wanted_user)
            if account:
                checks.append(RequestInfo(True, "impersonate", request.path, "", "v1",
                                          account[0], "serviceaccounts", "", account[1]))
                name = service_account_username(*account)
            else:
                checks.append(RequestInfo(True, "impersonate", request.path, "", "v1", "",
                                          "users", "", wanted_user))
                name = wanted_user
        for group in headers.getall("Impersonate-Group", []):
            checks.append(RequestInfo(True, "impersonate", request.path, "", "v1", "",
                                      "groups", "", group))
            groups.append(group)
        for header, value in headers.items():
            if header.lower().startswith(_EXTRA_PREFIX):
                key = unquote(header[len(_EXTRA_PREFIX):].lower())
                checks.append(RequestInfo(True, "impersonate", request.path, _AUTH_GROUP, "v1",
                                          "", "userextras", key, value))
                extra.setdefault(key, []).append(value)
        wanted_uid = headers.get("Impersonate-Uid", "")
        if wanted_uid:
            checks.append(RequestInfo(True, "impersonate", request.path, _AUTH_GROUP, "v1", "",
                                      "uids", "", wanted_uid))
            uid = wanted_uid
        if not checks:
            return requester
        if not wanted_user:
            refs = " ".join(_go_reference(check) for check in checks)
            raise ValueError(f"requested [{refs}] without impersonating a user")
        for check in checks:
            allowed, reason = self.authorizer.authorize(requester, check)
            if not allowed:
                raise forbidden(requester.name, check, reason)
        account = split_service_account(name)
        if account and not groups:
            groups = list(service_account_groups(account[0]))
        if not any(g in (AUTHENTICATED, UNAUTHENTICATED) for g in groups):
            groups.append(AUTHENTICATED)
        return UserInfo(name, uid, tuple(groups), {k: tuple(v) for k, v in extra.items()})
