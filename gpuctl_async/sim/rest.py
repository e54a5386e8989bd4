"""The resource REST handlers: URL → (resource, namespace, name, subresource) → verb.

Paths are the API server's: ``/api/v1/[namespaces/{ns}/]{plural}[/{name}[/{subresource}]]``
and ``/apis/{group}/{version}/...``; ``GET`` is get / list / watch (``?watch=true``, any
case, as kubernetes_asyncio sends ``True``), ``POST`` create, ``PUT`` update, ``PATCH`` patch,
``DELETE`` delete or deletecollection. Query parameters honoured: ``labelSelector``,
``fieldSelector``, ``limit``, ``continue``, ``resourceVersion``, ``resourceVersionMatch``,
``watch``, ``allowWatchBookmarks``, ``sendInitialEvents``, ``timeoutSeconds``, ``dryRun``,
``fieldValidation`` (Ignore / Warn, the default / Strict: unknown top-level and metadata
fields are dropped, warned about in a ``Warning`` header, or refused), ``fieldManager``
(accepted), ``propagationPolicy``, ``gracePeriodSeconds``, ``orphanDependents``; DELETE also
reads a ``DeleteOptions`` body.

get, list and watch answer with server-side ``Table``s when the ``Accept`` header asks for
them, as kubectl's does (``tables``); the plain JSON path is untouched by that.

Built-in subresources: ``status`` (get/update/patch) for types that have one,
``pods/binding`` (create) and ``scale`` (get/update/patch, ``autoscaling/v1`` ``Scale``) of
deployments, replicasets and statefulsets (``scale``). More are added with
``Api.register_subresource``; part 2 adds ``pods/log`` that way::

    async def pod_log(request: web.Request, target: Target) -> web.StreamResponse: ...
    api.register_subresource("pods", "log", pod_log, verbs=("get",), kind="Pod")

Create-only review types (``tokenreviews``, ``subjectaccessreviews``...) are served by
``Api.register_review`` handlers; their other verbs are 405, as on a real server.

``request_info`` is the API server's reading of a request (verb, group, resource,
subresource, namespace, name), shared with authorization and audit (``sim.access``).

``group_version`` names the API group and version of ``kind`` when it is not the parent
resource's (``scale`` serves ``autoscaling/v1``). The handler receives the resolved
``Target`` after the object's existence is checked (404 otherwise); discovery lists the
subresource, and counters count it as ``pods/log``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
import yaml
from aiohttp import web

from gpuctl_async.sim import apply, protobuf, scale
from gpuctl_async.sim import status as st
from gpuctl_async.sim import tables
from gpuctl_async.sim.faults import Faults
from gpuctl_async.sim.history import Entry
from gpuctl_async.sim.patch import PATCH_TYPES, PatchDecodeError, PatchError, apply_patch
from gpuctl_async.sim.resources import BY_GROUP_VERSION, ResourceType, resource
from gpuctl_async.sim.selectors import parse_field_selector, parse_label_selector
from gpuctl_async.sim.status import StatusError
from gpuctl_async.sim.store import Store
from gpuctl_async.sim.validation import unknown_fields
from gpuctl_async.sim.watch import PLAIN, WatchRegistry, WatchTiming, serve_watch

_TRUE = {"1", "t", "true"}
_FALSE = {"0", "f", "false"}


@dataclass
class Target:
    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    verb: str

    @property
    def counter_name(self) -> str:
        return f"{self.rt.plural}/{self.subresource}" if self.subresource else self.rt.plural


@dataclass(frozen=True)
class RequestInfo:
    """What the API server's RequestInfoFactory reads from a request, before routing: the
    attributes authorization and audit see (``is_resource`` False for discovery, ``/version``
    and other non-resource paths, whose verb is the lowercased HTTP method)."""

    is_resource: bool
    verb: str
    path: str
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    extra_parts: bool = False  # path segments past the subresource (never served)


_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update",
                 "PATCH": "patch", "DELETE": "delete"}
# Under /namespaces/{name}/ these are subresources of the namespace, not resource types.
_NAMESPACE_SUBRESOURCES = ("status", "finalize")


def request_info(method: str, path: str, query) -> RequestInfo:
    """Parse a request as kube-apiserver does (``/api/v1/...``, ``/apis/{g}/{v}/...``;
    ``namespaces/{ns}/...`` sets the namespace, also for a namespace itself; a nameless get
    is list or watch, and ``fieldSelector=metadata.name=X`` names the object; a nameless
    delete is deletecollection)."""
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in ("api", "apis") or \
            len(parts) < (3 if parts[0] == "api" else 4):
        return RequestInfo(False, method.lower(), path)
    if parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    else:
        group, version, rest = parts[1], parts[2], parts[3:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    verb = _METHOD_VERBS.get(method, "")
    if not name and verb == "get":
        verb = "watch" if (query.get("watch") or "").lower() in _TRUE else "list"
        selector = query.get("fieldSelector") or ""
        if selector.startswith("metadata.name=") and "," not in selector:
            name = selector[len("metadata.name="):]
    elif not name and verb == "delete":
        verb = "deletecollection"
    return RequestInfo(True, verb, path, group, version, namespace, resource, subresource,
                       name, len(rest) > 3)


SubresourceHandler = Callable[[web.Request, Target], Awaitable[web.StreamResponse]]


@dataclass
class Subresource:
    rt: ResourceType
    name: str
    handler: SubresourceHandler
    verbs: tuple[str, ...]
    kind: str
    group_version: tuple[str, str] | None = None


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name)
    if value is None or value == "":
        return False
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise st.bad_request(f"invalid boolean value for {name}: {value!r}")


def _int(request: web.Request, name: str) -> int | None:
    value = request.query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise st.bad_request(f"invalid value for {name}: {value!r}") from None


def _json_response(body: bytes, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json",
                        headers=headers)


def status_response(error: StatusError) -> web.Response:
    return _json_response(error.encode(), error.code)


class Api:
    """The resource endpoints of one simulated API server."""

    def __init__(self, store: Store, watches: WatchRegistry, faults: Faults, *,
                 watch_timing: WatchTiming | None = None):
        self.store = store
        self.watches = watches
        self.faults = faults
        self.watch_timing = watch_timing or WatchTiming()
        self._subresources: dict[tuple[str, str], Subresource] = {}
        self._reviews: dict[str, SubresourceHandler] = {}
        for rt in BY_GROUP_VERSION[("", "v1")].values():
            if rt.plural == "pods":
                self.register_subresource(rt, "binding", self._binding, ("create",), "Binding")
        for versions in BY_GROUP_VERSION.values():
            for rt in versions.values():
                if rt.has_status:
                    self.register_subresource(rt, "status", self._status,
                                              ("get", "patch", "update"), rt.kind)
                if rt.plural in scale.SCALABLE:
                    self.register_subresource(rt, "scale", self._scale,
                                              ("get", "patch", "update"), "Scale",
                                              (scale.GROUP, scale.VERSION))

    def register_subresource(self, rt: ResourceType | str, name: str,
                             handler: SubresourceHandler, verbs: tuple[str, ...] = ("get",),
                             kind: str | None = None,
                             group_version: tuple[str, str] | None = None) -> None:
        rt = resource(rt)
        self._subresources[(rt.key, name)] = Subresource(rt, name, handler, tuple(verbs),
                                                         kind or rt.kind, group_version)

    def register_review(self, rt: ResourceType | str, handler: SubresourceHandler) -> None:
        """Serve a create-only type (``verbs=("create",)``, e.g. ``tokenreviews``) with
        ``handler``: it answers from the request and stores nothing."""
        self._reviews[resource(rt).key] = handler

    def subresources(self) -> list[Subresource]:
        return list(self._subresources.values())

    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", "/api/{tail:.+}", self.handle),
                web.route("*", "/apis/{tail:.+}", self.handle)]

    # -- dispatch -------------------------------------------------------------------------

    def _resolve(self, request: web.Request) -> Target:
        info = request_info(request.method, request.path, request.query)
        if not info.is_resource:
            raise st.path_not_found()
        types = BY_GROUP_VERSION.get((info.api_group, info.api_version))
        rt = types.get(info.resource) if types is not None else None
        if rt is None or info.extra_parts or (info.namespace and not rt.namespaced
                                              and rt.plural != "namespaces"):
            raise st.path_not_found()
        namespace = info.namespace if rt.namespaced else None
        verb = info.verb
        if request.method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise st.method_not_allowed(rt, request.method)
        if verb in ("list", "watch"):
            _flag(request, "watch")  # refuse a malformed value, as the API server does
            name = None
        else:
            name = info.name or None
        if rt.namespaced and not namespace and (name or verb in ("create",
                                                                  "deletecollection")):
            raise st.path_not_found()
        if name is None and verb in ("update", "patch") or (
                name is not None and info.subresource is None and verb == "create"):
            raise st.method_not_allowed(rt, verb)
        return Target(rt, namespace, name, info.subresource or None, verb)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            target = self._resolve(request)
            self.faults.count(target.verb, target.counter_name)
            if target.subresource is not None:
                sub = self._subresources.get((target.rt.key, target.subresource))
                if sub is None:
                    raise st.path_not_found()
                if target.verb not in sub.verbs:
                    raise st.method_not_allowed(target.rt, target.verb)
                self.store.get_entry(target.rt, target.namespace, target.name)
                return await sub.handler(request, target)
            if target.verb not in target.rt.verbs:
                raise st.method_not_allowed(target.rt, target.verb)
            review = self._reviews.get(target.rt.key)
            if review is not None:
                return await review(request, target)
            return await getattr(self, f"_{target.verb}")(request, target)
        except StatusError as error:
            return status_response(error)

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _dry_run(request: web.Request) -> bool:
        values = request.query.getall("dryRun", [])
        for value in values:
            if value != "All":
                raise st.bad_request(f'Invalid dryRun value: "{value}"; supported values: '
                                     f'"All"')
        return bool(values)

    @staticmethod
    async def body(request: web.Request, rt: ResourceType) -> object:
        """The request's object: JSON, YAML, or (for the kinds kubectl's typed clients send
        so) Kubernetes protobuf (``sim.protobuf``)."""
        raw = await request.read()
        content_type = request.content_type
        try:
            if content_type in ("application/yaml", "application/apply-patch+yaml"):
                return yaml.safe_load(raw)
            if content_type == protobuf.CONTENT_TYPE:
                try:
                    return protobuf.decode(raw)
                except ValueError as exc:
                    raise st.unsupported_media_type(f"{content_type} ({exc})", [
                        "application/json", "application/yaml", content_type]) from None
            return orjson.loads(raw)
        except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
            raise st.bad_request(f"the object provided is unrecognized (must be of type "
                                 f"{rt.kind}): couldn't get version/kind; json parse error: "
                                 f"{exc}") from None

    @staticmethod
    def _field_validation(request: web.Request, rt: ResourceType, obj: object) -> list[str]:
        """Drop unknown fields per ``fieldValidation``; returns Warning header values."""
        directive = request.query.get("fieldValidation") or "Warn"
        if directive not in ("Ignore", "Warn", "Strict"):
            raise st.bad_request(f"fieldValidation parameter unsupported: {directive}; "
                                 f"supported values: Ignore, Warn, Strict")
        if not isinstance(obj, dict):
            return []
        unknown = unknown_fields(rt, obj)
        if not unknown:
            return []
        if directive == "Strict":
            listed = ", ".join(f'unknown field "{u}"' for u in unknown)
            raise st.bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a '
                                 f"{rt.kind}: strict decoding error: {listed}")
        for path in unknown:
            if path.startswith("metadata."):
                obj["metadata"].pop(path[len("metadata."):], None)
            else:
                obj.pop(path, None)
        if directive == "Ignore":
            return []
        return [f'299 - "unknown field \\"{u}\\""' for u in unknown]

    @staticmethod
    def _object_response(entry: Entry, status: int = 200,
                         warnings: list[str] | None = None) -> web.Response:
        headers = {"Warning": ", ".join(warnings)} if warnings else None
        return _json_response(entry.raw, status, headers)

    def _list_body(self, rt: ResourceType, entries: list[Entry], rv: int,
                   token: str | None = None, remaining: int | None = None) -> bytes:
        meta: dict = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        head = orjson.dumps({"kind": rt.list_kind, "apiVersion": rt.api_version,
                             "metadata": meta})
        return b"%s,\"items\":[%s]}" % (head[:-1], b",".join(e.raw for e in entries))

    def _selectors(self, request: web.Request, rt: ResourceType):
        label_text = request.query.get("labelSelector")
        return (parse_label_selector(label_text),
                parse_field_selector(request.query.get("fieldSelector"), rt, label_text))

    # -- verbs ----------------------------------------------------------------------------

    async def _get(self, request: web.Request, target: Target) -> web.Response:
        entry = self.store.get_entry(target.rt, target.namespace, target.name)
        table = tables.requested(request)
        if table is not None:
            return tables.response(target.rt, [entry], table, {
                "resourceVersion": entry.obj["metadata"]["resourceVersion"]})
        return self._object_response(entry)

    async def _list(self, request: web.Request, target: Target) -> web.Response:
        table = tables.requested(request)
        label, field = self._selectors(request, target.rt)
        limit = _int(request, "limit") or 0
        result = self.store.list_entries(
            target.rt, target.namespace, label=label, field=field, limit=max(limit, 0),
            continue_token=request.query.get("continue") or None,
            resource_version=request.query.get("resourceVersion"),
            resource_version_match=request.query.get("resourceVersionMatch"))
        if table is not None:
            meta: dict = {"resourceVersion": str(result.resource_version)}
            if result.continue_token:
                meta["continue"] = result.continue_token
            if result.remaining is not None:
                meta["remainingItemCount"] = result.remaining
            return tables.response(target.rt, result.entries, table, meta)
        return _json_response(self._list_body(target.rt, result.entries,
                                              result.resource_version,
                                              result.continue_token, result.remaining))

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        table = tables.requested(request)
        label, field = self._selectors(request, target.rt)
        timeout = _int(request, "timeoutSeconds")
        return await serve_watch(
            request, self.store, self.watches, target.rt, target.namespace, label=label,
            field=field, resource_version=request.query.get("resourceVersion"),
            bookmarks=_flag(request, "allowWatchBookmarks"),
            timeout=float(timeout) if timeout and timeout > 0
            else self.watch_timing.default_timeout(),
            send_initial_events=_flag(request, "sendInitialEvents"),
            timing=self.watch_timing,
            framer=tables.TableWatchFramer(target.rt, table) if table else PLAIN)

    async def _create(self, request: web.Request, target: Target) -> web.Response:
        dry_run = self._dry_run(request)
        obj = await self.body(request, target.rt)
        warnings = self._field_validation(request, target.rt, obj)
        entry = self.store.create_entry(target.rt, obj, target.namespace, dry_run=dry_run)
        return self._object_response(entry, 201, warnings)

    async def _update(self, request: web.Request, target: Target,
                      subresource: str | None = None) -> web.Response:
        dry_run = self._dry_run(request)
        obj = await self.body(request, target.rt)
        warnings = self._field_validation(request, target.rt, obj)
        entry = self.store.update_entry(target.rt, obj, target.namespace, target.name,
                                        subresource=subresource, dry_run=dry_run)
        return self._object_response(entry, 200, warnings)

    async def _patch(self, request: web.Request, target: Target,
                     subresource: str | None = None) -> web.Response:
        dry_run = self._dry_run(request)
        content_type = request.content_type
        if content_type == apply.CONTENT_TYPE and subresource is None:
            return await self._apply(request, target, dry_run)
        if content_type not in PATCH_TYPES:
            raise st.unsupported_media_type(content_type, [*PATCH_TYPES, apply.CONTENT_TYPE])
        patch = await self.body(request, target.rt)
        warnings = self._field_validation(request, target.rt, patch) \
            if content_type != PATCH_TYPES[0] else []
        entry = self.store.patch_entry(target.rt, target.namespace, target.name, content_type,
                                       patch, subresource=subresource, dry_run=dry_run)
        return self._object_response(entry, 200, warnings)

    async def _apply(self, request: web.Request, target: Target, dry_run: bool) -> web.Response:
        """Server-side apply: create (201) or merge (200), see ``sim.apply``."""
        body = await self.body(request, target.rt)
        warnings = self._field_validation(request, target.rt, body)
        entry, created = apply.server_side_apply(
            self.store, target.rt, target.namespace, target.name or "", body,
            manager=request.query.get("fieldManager"), dry_run=dry_run)
        return self._object_response(entry, 201 if created else 200, warnings)

    async def _delete_options(self, request: web.Request) -> dict:
        raw = await request.read()
        options: dict = {}
        if raw.strip():
            try:
                options = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise st.bad_request(f"invalid DeleteOptions: {exc}") from None
            if not isinstance(options, dict):
                raise st.bad_request("invalid DeleteOptions: not an object")
        if "propagationPolicy" in request.query:
            options["propagationPolicy"] = request.query["propagationPolicy"]
        grace = _int(request, "gracePeriodSeconds")
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        if "orphanDependents" in request.query:
            options["orphanDependents"] = _flag(request, "orphanDependents")
        if options.get("propagationPolicy") is None and options.get("orphanDependents") \
                is not None:
            options["propagationPolicy"] = "Orphan" if options["orphanDependents"] \
                else "Background"
        if request.query.getall("dryRun", []):
            options["dryRun"] = request.query.getall("dryRun")
        for value in options.get("dryRun") or []:
            if value != "All":
                raise st.bad_request(f'Invalid dryRun value: "{value}"; supported values: '
                                     f'"All"')
        return options

    def _delete_one(self, target: Target, name: str, options: dict) -> tuple[Entry, bool]:
        grace = options.get("gracePeriodSeconds")
        return self.store.delete_entry(
            target.rt, target.namespace, name,
            propagation_policy=options.get("propagationPolicy"),
            grace_period_seconds=int(grace) if grace is not None else None,
            preconditions=options.get("preconditions"), dry_run=bool(options.get("dryRun")))

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        options = await self._delete_options(request)
        entry, gone = self._delete_one(target, target.name, options)
        if gone and not target.rt.delete_returns_object:
            return _json_response(orjson.dumps(st.success(
                target.rt, target.name, entry.obj["metadata"]["uid"])))
        return self._object_response(entry)

    async def _deletecollection(self, request: web.Request, target: Target) -> web.Response:
        options = await self._delete_options(request)
        label, field = self._selectors(request, target.rt)
        listed = self.store.list_entries(target.rt, target.namespace, label=label, field=field)
        deleted = []
        for entry in listed.entries:
            try:
                deleted.append(self._delete_one(target, entry.obj["metadata"]["name"],
                                                options)[0])
            except StatusError as error:
                if error.code != 404:  # deleted meanwhile (e.g. by the garbage collector)
                    raise
        return _json_response(self._list_body(target.rt, deleted, self.store.resource_version))

    # -- built-in subresources ------------------------------------------------------------

    async def _status(self, request: web.Request, target: Target) -> web.Response:
        if target.verb == "get":
            return await self._get(request, target)
        if target.verb == "update":
            return await self._update(request, target, "status")
        return await self._patch(request, target, "status")

    async def _binding(self, request: web.Request, target: Target) -> web.Response:
        binding = await self.body(request, target.rt)
        node = ((binding or {}).get("target") or {}).get("name") if isinstance(
            binding, dict) else None
        if not node:
            raise st.invalid(target.rt, target.name or "",
                             [st.FieldError.required("target.name")])
        self.store.bind_entry(target.namespace or "", target.name or "", node,
                              dry_run=self._dry_run(request))
        return _json_response(orjson.dumps({"kind": "Status", "apiVersion": "v1",
                                            "metadata": {}, "status": "Success",
                                            "code": 201}), 201)

    async def _scale(self, request: web.Request, target: Target) -> web.Response:
        if target.verb == "get":
            entry = self.store.get_entry(target.rt, target.namespace, target.name)
            return _json_response(orjson.dumps(scale.scale_of(entry.obj)))
        dry_run = self._dry_run(request)
        content_type = request.content_type
        if target.verb == "patch" and content_type not in PATCH_TYPES:
            raise st.unsupported_media_type(content_type, list(PATCH_TYPES))
        body = await self.body(request, target.rt)
        # Read and write with no await between: the patch applies to the current Scale.
        entry = self.store.get_entry(target.rt, target.namespace, target.name)
        if target.verb == "patch":
            try:
                body = apply_patch(content_type, scale.scale_of(entry.obj), body)
            except PatchDecodeError as exc:
                raise st.bad_request(str(exc)) from None
            except PatchError as exc:
                raise st.StatusError(422, "Invalid", str(exc)) from None
        updated = self.store.update_entry(target.rt, scale.scaled(entry.obj, body),
                                          target.namespace, target.name, dry_run=dry_run)
        return _json_response(orjson.dumps(scale.scale_of(updated.obj)))
