"""Quota routes: create from a ``kind: quota`` document, list, detail with utilization, delete."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema
from marshmallow import Schema, fields, validate

from gpuctl_async.api.pagination import PageQuerySchema, paginate
from gpuctl_async.api.openapi import error_responses, json_content, request_examples
from gpuctl_async.api.params import BodyBoolean
from gpuctl_async.api.responses import json_response
from gpuctl_async.appkeys import CACHE, KUBE, SETTINGS
from gpuctl_async.auth.guard import authorize, read_scope
from gpuctl_async.auth.permissions import CREATE_QUOTAS, LIST_QUOTAS
from gpuctl_async.parsing import DOCUMENT_PARSER
from gpuctl_async.quotas.create import QuotaCreator
from gpuctl_async.quotas.delete import delete_namespace_quota, not_found
from gpuctl_async.quotas.usage import gpuctl_quotas, quota_info
from gpuctl_async.documents.examples import EXAMPLES

TAGS = ["quotas"]
QUOTA_WRITES = web.AppKey("quota_writes", asyncio.Lock)
"""Serialises quota writes, so two requests never both pass the one-quota-per-namespace check."""


# -- schemas ----------------------------------------------------------------------------

class CreateQuotaRequestSchema(Schema):
    yamlContent = fields.String(required=True, metadata={"description": "A gpuctl quota document"})
    replace = BodyBoolean(load_default=False, metadata={
        "description": "Replace the gpuctl quota of namespaces that already have one "
                       "(otherwise such a namespace is a 409)"})
    dryRun = BodyBoolean(load_default=False, metadata={
        "description": "Validate the document and check the namespaces; write nothing"})


class CreatedQuotaSchema(Schema):
    name = fields.String(required=True, metadata={"example": "team-quota"})
    namespace = fields.String(required=True, metadata={"example": "team-a"})
    resourceQuota = fields.String(required=True, metadata={
        "description": "The ResourceQuota object, `<quota>-<namespace>`", "example": "team-quota-team-a"})
    cpu = fields.String(required=True, metadata={"example": "16"})
    memory = fields.String(required=True, metadata={"example": "64Gi"})
    gpu = fields.String(required=True, metadata={"example": "4"})
    status = fields.String(required=True, validate=validate.OneOf(["created", "updated"]),
                           metadata={"description": "`updated` when a quota was replaced"})


class CreateQuotaResponseSchema(Schema):
    message = fields.String(required=True, metadata={"example": "Quota created successfully"})
    name = fields.String(required=True, metadata={"example": "team-quota"})
    created = fields.List(fields.Nested(CreatedQuotaSchema), required=True)
    dryRun = fields.Boolean(metadata={"description": "Present on dry runs"})


class ResourceUsageSchema(Schema):
    hard = fields.String(required=True, metadata={"description": "Limit, or `unlimited`"})
    used = fields.String(required=True)
    fraction = fields.Float(allow_none=True, metadata={
        "description": "used / hard; null when unlimited or the limit is 0", "example": 0.25})
    percent = fields.Float(allow_none=True, metadata={"example": 25.0})


class UtilizationSchema(Schema):
    cpu = fields.Nested(ResourceUsageSchema, required=True)
    memory = fields.Nested(ResourceUsageSchema, required=True)
    gpu = fields.Nested(ResourceUsageSchema, required=True, data_key="nvidia.com/gpu")


class HardSchema(Schema):
    cpu = fields.String(required=True)
    memory = fields.String(required=True)
    gpu = fields.String(required=True, data_key="nvidia.com/gpu")
    pods = fields.String(required=True)


class UsedSchema(Schema):
    cpu = fields.String(required=True)
    memory = fields.String(required=True)
    gpu = fields.String(required=True, data_key="nvidia.com/gpu")


class QuotaInfoSchema(Schema):
    name = fields.String(required=True, metadata={"description": "The quota's name (label "
                                                                 "`runwhere.ai/quota`)"})
    namespace = fields.String(required=True)
    resourceQuota = fields.String(required=True)
    hard = fields.Nested(HardSchema, required=True)
    used = fields.Nested(UsedSchema, required=True)
    utilization = fields.Nested(UtilizationSchema, required=True)
    status = fields.String(required=True, metadata={"example": "Active"})
    age = fields.String(required=True, metadata={"example": "3h"})
    createdAt = fields.String(allow_none=True, metadata={"example": "2026-01-01T00:00:00Z"})


class QuotaListSchema(Schema):
    total = fields.Integer(required=True)
    items = fields.List(fields.Nested(QuotaInfoSchema), required=True)


class QuotaListQuerySchema(PageQuerySchema):
    namespace = fields.String(metadata={"description": "Only this namespace's quota"})


class DeleteQuotaResponseSchema(Schema):
    jobId = fields.String(required=True, metadata={
        "description": "The namespace (the field is named as in the original gpuctl)"})
    namespace = fields.String(required=True)
    deleted = fields.List(fields.String(), required=True, metadata={
        "description": "ResourceQuota objects deleted"})
    status = fields.String(required=True, metadata={"example": "deleted"})
    message = fields.String(required=True, metadata={"example": "Quota deleted successfully"})


_LIMIT_KEYS = ("Limits are written as `requests.cpu` + `limits.cpu`, `requests.memory` + "
               "`limits.memory` and `requests.nvidia.com/gpu`, the keys Kubernetes enforces, "
               "and reported under `cpu`, `memory` and `nvidia.com/gpu`.")


# -- handlers ---------------------------------------------------------------------------

@docs(tags=TAGS, summary="Create quotas from a gpuctl quota document",
      description="One ResourceQuota `<quota>-<namespace>` per namespace of the document (the "
                  "`default:` section is namespace `default`). Missing namespaces are created, "
                  "and existing ones marked, as gpuctl namespaces. A namespace that already has "
                  "a gpuctl quota is a 409 unless `replace` is true. All or nothing: if one "
                  "namespace fails, everything this request wrote is undone. " + _LIMIT_KEYS,
      responses={201: json_content(CreateQuotaResponseSchema, "Quotas created"),
                 200: json_content(CreateQuotaResponseSchema, "Dry run: valid, nothing written"),
                 **error_responses(400, 403, 409, 413, 503)},
      **request_examples({"quota": {"yamlContent": EXAMPLES["quota"]}}))
@request_schema(CreateQuotaRequestSchema)
async def create_quota(request: web.Request) -> web.Response:
    body = request["data"]
    creator = QuotaCreator(request.app[KUBE], request.app[CACHE], request.app[QUOTA_WRITES],
                           settle_timeout=request.app[SETTINGS].read_your_writes_timeout,
                           parser=request.app[DOCUMENT_PARSER])

    async def may_create(namespace: str) -> None:
        await authorize(request, CREATE_QUOTAS, namespace)

    result = await creator.create(body["yamlContent"], replace=body["replace"],
                                  dry_run=body["dryRun"], authorize=may_create)
    return json_response(result, status=200 if body["dryRun"] else 201)


@docs(tags=TAGS, summary="List gpuctl quotas",
      description="Only quotas gpuctl wrote (label `runwhere.ai/quota`), by namespace, each with "
                  "its utilization; with authentication on, only in namespaces where the caller "
                  "may list resourcequotas.",
      responses={200: json_content(QuotaListSchema, "One page of quotas"),
                 **error_responses(400, 503)})
@querystring_schema(QuotaListQuerySchema)
async def list_quotas(request: web.Request) -> web.Response:
    query = request["querystring"]
    cache = request.app[CACHE]
    namespace = query.get("namespace")
    within = await read_scope(request, LIST_QUOTAS, namespace)
    quotas = gpuctl_quotas(cache.quotas.in_namespace(namespace) if namespace is not None
                           else cache.quotas.items())
    if within is not None:
        quotas = [q for q in quotas if q["metadata"]["namespace"] in within]
    return json_response(paginate([quota_info(q) for q in quotas], query))


@docs(tags=TAGS, summary="Get a namespace's quota with its utilization",
      description="Hard limit, amount used and used/hard for cpu, memory and nvidia.com/gpu. "
                  + _LIMIT_KEYS,
      responses={200: json_content(QuotaInfoSchema, "The namespace's gpuctl quota"),
                 **error_responses(404, 503)})
async def get_quota(request: web.Request) -> web.Response:
    namespace = request.match_info["namespaceName"]
    quotas = gpuctl_quotas(request.app[CACHE].quotas.in_namespace(namespace))
    if not quotas:
        raise not_found(namespace)
    return json_response(quota_info(quotas[0]))


@docs(tags=TAGS, summary="Delete a namespace's quota",
      description="Deletes the gpuctl quota of the namespace; ResourceQuotas gpuctl did not "
                  "write are left alone. The namespace is kept.",
      responses={200: json_content(DeleteQuotaResponseSchema, "Quota deleted"),
                 **error_responses(404, 503)})
async def delete_quota(request: web.Request) -> web.Response:
    result = await delete_namespace_quota(
        request.app[KUBE], request.app[CACHE], request.app[QUOTA_WRITES],
        request.match_info["namespaceName"],
        settle_timeout=request.app[SETTINGS].read_your_writes_timeout)
    return json_response(result)


def setup_quota_routes(app: web.Application) -> None:
    app[QUOTA_WRITES] = asyncio.Lock()
    app.router.add_post("/api/v1/quotas", create_quota)
    app.router.add_get("/api/v1/quotas", list_quotas)
    app.router.add_get("/api/v1/quotas/{namespaceName}", get_quota)
    app.router.add_delete("/api/v1/quotas/{namespaceName}", delete_quota)
