"""Namespace routes: gpuctl's namespaces, one namespace's detail, deleting one of gpuctl's."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema
from marshmallow import Schema, fields

from gpuctl_async.api.openapi import error_responses, json_content
from gpuctl_async.api.pagination import PageQuerySchema, paginate
from gpuctl_async.api.quotas import QuotaInfoSchema
from gpuctl_async.api.responses import json_response
from gpuctl_async.appkeys import CACHE, KUBE, SETTINGS
from gpuctl_async.quotas.namespaces import (
    delete_namespace,
    listed_namespaces,
    namespace_detail,
    namespace_summary,
)

TAGS = ["namespaces"]


class NamespaceSchema(Schema):
    name = fields.String(required=True, metadata={"example": "team-a"})
    status = fields.String(required=True, metadata={"example": "Active"})
    age = fields.String(required=True, metadata={"description": "Time since creation",
                                                 "example": "3d"})
    createdAt = fields.String(allow_none=True, metadata={"example": "2026-01-01T00:00:00Z"})
    labels = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class NamespaceListSchema(Schema):
    total = fields.Integer(required=True)
    items = fields.List(fields.Nested(NamespaceSchema), required=True)


class JobCountsSchema(Schema):
    total = fields.Integer(required=True)
    byStatus = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True,
                           metadata={"example": {"Running": 2, "Pending": 1}})


class NamespaceDetailSchema(NamespaceSchema):
    quota = fields.Nested(QuotaInfoSchema, allow_none=True, required=True, metadata={
        "description": "The namespace's gpuctl quota with utilization, or null"})
    jobs = fields.Nested(JobCountsSchema, required=True, metadata={
        "description": "gpuctl jobs in the namespace, by status"})


class DeleteNamespaceResponseSchema(Schema):
    name = fields.String(required=True, metadata={"example": "team-a"})
    status = fields.String(required=True, metadata={"example": "deleted"})
    message = fields.String(required=True, metadata={
        "example": "Namespace team-a deleted successfully"})


@docs(tags=TAGS, summary="List gpuctl namespaces",
      description="Namespaces labelled `runwhere.ai/namespace=true` (created or given a quota "
                  "by gpuctl), plus `default`, by name.",
      responses={200: json_content(NamespaceListSchema, "One page of namespaces"),
                 **error_responses(400, 503)})
@querystring_schema(PageQuerySchema)
async def list_namespaces(request: web.Request) -> web.Response:
    items = [namespace_summary(ns) for ns in listed_namespaces(request.app[CACHE])]
    return json_response(paginate(items, request["querystring"]))


@docs(tags=TAGS, summary="Get a namespace",
      description="Any namespace: labels, status, age, its gpuctl quota with utilization, and "
                  "how many gpuctl jobs it holds in each status.",
      responses={200: json_content(NamespaceDetailSchema, "The namespace"),
                 **error_responses(404, 503)})
async def get_namespace(request: web.Request) -> web.Response:
    return json_response(namespace_detail(request.app[CACHE], request.match_info["namespaceName"]))


@docs(tags=TAGS, summary="Delete a gpuctl namespace",
      description="Only namespaces gpuctl created (never `default`): 403 otherwise. Kubernetes "
                  "then deletes everything in it, jobs included.",
      responses={200: json_content(DeleteNamespaceResponseSchema, "Deletion issued"),
                 **error_responses(403, 404, 503)})
async def delete_namespace_route(request: web.Request) -> web.Response:
    result = await delete_namespace(
        request.app[KUBE], request.app[CACHE], request.match_info["namespaceName"],
        settle_timeout=request.app[SETTINGS].read_your_writes_timeout)
    return json_response(result)


def setup_namespace_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/namespaces", list_namespaces)
    app.router.add_get("/api/v1/namespaces/{namespaceName}", get_namespace)
    app.router.add_delete("/api/v1/namespaces/{namespaceName}", delete_namespace_route)
