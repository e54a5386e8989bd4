"""The create-only review APIs and TokenRequest, answered as kube-apiserver answers them.

- ``authentication.k8s.io/v1`` ``TokenReview``: ``spec.token`` → ``status.authenticated``,
  ``status.user`` {username, uid, groups, extra}, ``status.audiences``; a refused token gives
  ``authenticated`` absent, ``user: {}`` and ``status.error`` (``invalid bearer token``,
  ``[invalid bearer token, service account token has expired]``).
- ``SelfSubjectReview`` (``kubectl auth whoami``): ``status.userInfo`` of the caller.
- ``authorization.k8s.io/v1`` ``SubjectAccessReview`` (spec.user/groups/uid/extra, exactly
  one of resourceAttributes / nonResourceAttributes), ``LocalSubjectAccessReview`` (the
  namespace of the URL), ``SelfSubjectAccessReview`` (the caller: ``kubectl auth can-i``) →
  ``status.allowed`` and ``status.reason``; ``SelfSubjectRulesReview`` (``kubectl auth
  can-i --list``): the caller's rules cluster-wide and in ``spec.namespace``. Validation
  errors are 422 Invalid as the real ones. Creating any of these is itself authorized first,
  like every request (the service account of a delegating service needs
  ``system:auth-delegator``'s rules).
- ``serviceaccounts/{name}/token`` (``kubectl create token``): a ``TokenRequest`` with
  ``status.token`` and ``status.expirationTimestamp``; ``spec.expirationSeconds`` defaults
  to 3600 and must be at least 600 (as the real validation); ``sim.testing`` can mint shorter
  ones for expiry tests.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
from aiohttp import web

from gpuctl_async.sim import status as st
from gpuctl_async.sim.access import request_user
from gpuctl_async.sim.authn import API_AUDIENCES, Authenticator, UserInfo
from gpuctl_async.sim.resources import BY_KEY, ResourceType
from gpuctl_async.sim.rest import Api, RequestInfo, Target
from gpuctl_async.sim.status import FieldError
from gpuctl_async.sim.store import Store, timestamp

DEFAULT_TOKEN_SECONDS = 3600
MIN_TOKEN_SECONDS = 600
_ANONYMOUS = UserInfo("system:anonymous", "", ("system:unauthenticated",))


def _answer(body: dict, status: int = 201) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def _read(request: web.Request, rt: ResourceType) -> dict:
    body = await Api.body(request, rt) if (await request.read()).strip() else {}
    if not isinstance(body, dict):
        raise st.bad_request(f"the body of the request is not a {rt.kind} object")
    spec = body.get("spec")
    if spec is not None and not isinstance(spec, dict):
        raise st.bad_request(f"the body of the request is not a {rt.kind} object: spec must be "
                             f"an object")
    return body


def _echo(rt: ResourceType, body: dict, status: dict) -> dict:
    meta = dict(body.get("metadata") or {})
    meta.setdefault("creationTimestamp", None)
    return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta,
            "spec": body.get("spec") or {}, "status": status}


def _attributes(rt: ResourceType, spec: dict, namespace: str | None = None) -> RequestInfo:
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    errors = []
    if (resource is None) == (non_resource is None):  # the union: exactly one
        errors.append(FieldError("FieldValueInvalid", "spec", detail=(
            f"{_go_value(non_resource)}: exactly one of nonResourceAttributes or "
            f"resourceAttributes must be specified")))
    if rt.plural != "selfsubjectaccessreviews" and not spec.get("user") and \
            not spec.get("groups"):
        errors.append(FieldError.invalid("spec.user", spec.get("user") or "",
                                         "at least one of user or group must be specified"))
    if namespace is not None:
        if isinstance(resource, dict) and (resource.get("namespace") or "") != namespace:
            errors.append(FieldError.invalid("spec.resourceAttributes.namespace",
                                             resource.get("namespace") or "",
                                             "must match metadata.namespace"))
        if non_resource is not None:
            errors.append(FieldError("FieldValueInvalid", "spec.nonResourceAttributes",
                                     detail=f"{_go_value(non_resource)}: disallowed on this "
                                            f"kind of request"))
    if errors:
        raise st.invalid(rt, "", errors)
    if isinstance(non_resource, dict):
        return RequestInfo(False, str(non_resource.get("verb") or ""),
                           str(non_resource.get("path") or ""))
    if not isinstance(resource, dict):
        raise st.bad_request("spec.resourceAttributes must be an object")
    text = {k: str(resource.get(k) or "") for k in ("verb", "group", "version", "resource",
                                                     "subresource", "namespace", "name")}
    return RequestInfo(True, text["verb"], "", text["group"], text["version"],
                       text["namespace"], text["resource"], text["subresource"], text["name"])


def _go_value(attributes: object) -> str:
    """How Go's field.Invalid prints the NonResourceAttributes it was given."""
    if not isinstance(attributes, dict):
        return '"null"'
    return (f'v1.NonResourceAttributes{{Path:"{attributes.get("path") or ""}", '
            f'Verb:"{attributes.get("verb") or ""}"}}')


def _decision(allowed: bool, reason: str) -> dict:
    status: dict = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    return status


class Reviews:
    def __init__(self, store: Store, authenticator: Authenticator, authorizer):
        self.store = store
        self.authenticator = authenticator
        self.authorizer = authorizer

    def install(self, api: Api) -> None:
        api.register_review("tokenreviews.authentication.k8s.io", self._token_review)
        api.register_review("selfsubjectreviews.authentication.k8s.io", self._self_review)
        api.register_review("subjectaccessreviews.authorization.k8s.io", self._subject_review)
        api.register_review("selfsubjectaccessreviews.authorization.k8s.io", self._self_access)
        api.register_review("selfsubjectrulesreviews.authorization.k8s.io",
                            self._self_rules)
        api.register_review("localsubjectaccessreviews.authorization.k8s.io",
                            self._local_review)
        api.register_subresource("serviceaccounts", "token", self._token_request, ("create",),
                                 "TokenRequest", ("authentication.k8s.io", "v1"))

    # -- authentication -------------------------------------------------------------------

    async def _token_review(self, request: web.Request, target: Target) -> web.Response:
        body = await _read(request, target.rt)
        spec = body.get("spec") or {}
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise st.bad_request("token is required for TokenReview in authentication")
        user, error = self.authenticator.authenticate(token)
        if user is None:
            status: dict = {"user": {}, "error": error}
        else:
            status = {"authenticated": True, "user": user.as_json(),
                      "audiences": list(spec.get("audiences") or API_AUDIENCES)}
        return _answer(_echo(target.rt, body, status))

    async def _self_review(self, request: web.Request, target: Target) -> web.Response:
        body = await _read(request, target.rt)
        user = request_user(request) or _ANONYMOUS
        return _answer(_echo(target.rt, body, {"userInfo": user.as_json()}))

    # -- authorization --------------------------------------------------------------------

    async def _subject_review(self, request: web.Request, target: Target) -> web.Response:
        body = await _read(request, target.rt)
        spec = body.get("spec") or {}
        attrs = _attributes(target.rt, spec)
        extra = spec.get("extra") if isinstance(spec.get("extra"), dict) else {}
        user = UserInfo(str(spec.get("user") or ""), str(spec.get("uid") or ""),
                        tuple(str(g) for g in spec.get("groups") or ()),
                        {str(k): tuple(v or ()) for k, v in extra.items()})
        return _answer(_echo(target.rt, body, _decision(*self.authorizer.authorize(user,
                                                                                    attrs))))

    async def _local_review(self, request: web.Request, target: Target) -> web.Response:
        body = await _read(request, target.rt)
        spec = body.get("spec") or {}
        attrs = _attributes(target.rt, spec, namespace=target.namespace or "")
        user = UserInfo(str(spec.get("user") or ""), str(spec.get("uid") or ""),
                        tuple(str(g) for g in spec.get("groups") or ()))
        answer = _echo(target.rt, body, _decision(*self.authorizer.authorize(user, attrs)))
        answer["metadata"]["namespace"] = target.namespace
        return _answer(answer)

    async def _self_access(self, request: web.Request, target: Target) -> web.Response:
        body = await _read(request, target.rt)
        attrs = _attributes(target.rt, body.get("spec") or {})
        user = request_user(request) or _ANONYMOUS
        return _answer(_echo(target.rt, body, _decision(*self.authorizer.authorize(user,
                                                                                    attrs))))

    async def _self_rules(self, request: web.Request, target: Target) -> web.Response:
        body = await _read(request, target.rt)
        user = request_user(request) or _ANONYMOUS
        rules, errors = self.authorizer.rules_for(user, str((body.get("spec") or {}).get(
            "namespace") or ""))
        resource_rules, url_rules = [], []
        for rule in rules:
            if rule.get("nonResourceURLs"):
                url_rules.append({"verbs": list(rule.get("verbs") or ()),
                                  "nonResourceURLs": list(rule["nonResourceURLs"])})
            else:
                entry = {k: list(rule.get(k) or ()) for k in ("verbs", "apiGroups",
                                                              "resources", "resourceNames")}
                resource_rules.append({k: v for k, v in entry.items() if v or k == "verbs"})
        status: dict = {"resourceRules": resource_rules, "nonResourceRules": url_rules,
                        "incomplete": bool(errors)}
        if errors:
            status["evaluationError"] = (errors[0] if len(errors) == 1
                                         else f"[{', '.join(errors)}]")
        return _answer(_echo(target.rt, body, status))

    # -- TokenRequest -----------------------------------------------------------------------

    def issue(self, namespace: str, name: str, seconds: float) -> tuple[str, float]:
        """A token for an existing ServiceAccount (404 Status otherwise)."""
        account = self.store.get_entry(BY_KEY["serviceaccounts"], namespace, name)
        return self.authenticator.issue(namespace, name, account.obj["metadata"]["uid"],
                                        seconds)

    async def _token_request(self, request: web.Request, target: Target) -> web.Response:
        kind = BY_KEY["tokenreviews.authentication.k8s.io"]  # for the body error wording
        body = await _read(request, kind)
        meta = body.get("metadata") or {}
        name, namespace = target.name or "", target.namespace or ""
        if meta.get("name") and meta["name"] != name:
            raise _token_invalid(name, [FieldError.invalid(
                "metadata.name", meta["name"], "must match the service account name if "
                                               "specified")])
        spec = dict(body.get("spec") or {})
        seconds = spec.get("expirationSeconds")
        if seconds is None:
            seconds = DEFAULT_TOKEN_SECONDS
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise st.bad_request("spec.expirationSeconds must be an integer")
        if seconds < MIN_TOKEN_SECONDS:
            raise _token_invalid("", [FieldError.invalid(
                "spec.expirationSeconds", seconds,
                "may not specify a duration less than 10 minutes")])
        if seconds > 2 ** 32:
            raise _token_invalid("", [FieldError.invalid(
                "spec.expirationSeconds", seconds,
                "may not specify a duration larger than 2^32 seconds")])
        spec["expirationSeconds"] = seconds
        spec["audiences"] = list(spec.get("audiences") or API_AUDIENCES)
        spec.setdefault("boundObjectRef", None)
        if request.query.getall("dryRun", []):
            token, expires = "", time.time() + seconds
        else:
            token, expires = self.issue(namespace, name, seconds)
        expiry = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return _answer({"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                        "metadata": {"name": name, "namespace": namespace,
                                     "creationTimestamp": timestamp()},
                        "spec": spec, "status": {"token": token,
                                                 "expirationTimestamp": expiry}})


def _token_invalid(name: str, errors: list[FieldError]) -> st.StatusError:
    rendered = [str(e) for e in errors]
    summary = rendered[0] if len(rendered) == 1 else f"[{', '.join(rendered)}]"
    return st.StatusError(422, "Invalid", f'TokenRequest.authentication.k8s.io "{name}" is '
                                          f'invalid: {summary}',
                          {"name": name, "group": "authentication.k8s.io",
                           "kind": "TokenRequest",
                           "causes": [{"reason": e.reason, "message": e.message(),
                                       "field": e.field} for e in errors]})
