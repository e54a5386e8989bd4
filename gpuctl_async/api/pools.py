"""Resource pool routes: list, detail, create, update, delete.

Reads come from the node and pod caches; writes patch node labels (see ``gpuctl_async.pools``:
a pool is the nodes labelled ``runwhere.ai/pool=<name>``, its description an annotation on
them).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, request_schema
from marshmallow import Schema, ValidationError, fields, validate

from gpuctl_async.api.openapi import error_responses, json_content
from gpuctl_async.api.params import BodyBoolean
from gpuctl_async.api.responses import dumps, json_bytes_response, json_response
from gpuctl_async.appkeys import CACHE, KUBE, SETTINGS
from gpuctl_async.k8s.memo import memoized
from gpuctl_async.pools import membership, pool_views
from gpuctl_async.pools.patching import NodeWriter
from gpuctl_async.documents.fields import selectable_label_value

TAGS = ["pools"]
MAX_DESCRIPTION = 1024


def node_writer(request: web.Request) -> NodeWriter:
    app = request.app
    return NodeWriter(app[KUBE], app[CACHE], settle_timeout=app[SETTINGS].read_your_writes_timeout)


# -- schemas ----------------------------------------------------------------------------

_STATUS = ("`active` (a member node is Ready), `not_ready` (none is), `empty` (the default "
           "pool when every node is in a named pool)")


class PoolSummarySchema(Schema):
    name = fields.String(required=True, metadata={"example": "train-pool"})
    description = fields.String(required=True, metadata={"example": "A100 nodes for training"})
    gpuTotal = fields.Integer(required=True, metadata={"description": "Σ node GPU capacity"})
    gpuUsed = fields.Integer(required=True, metadata={
        "description": "Σ GPU requests of unfinished pods bound to the pool's nodes (any pod)"})
    gpuFree = fields.Integer(required=True)
    gpuType = fields.List(fields.String(), required=True, metadata={"example": ["a100"]})
    nodeCount = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"description": _STATUS})


class PoolDetailSchema(Schema):
    name = fields.String(required=True)
    description = fields.String(required=True)
    nodes = fields.List(fields.String(), required=True)
    node_count = fields.Integer(required=True)
    gpu_total = fields.Integer(required=True)
    gpu_used = fields.Integer(required=True)
    gpu_free = fields.Integer(required=True)
    gpu_types = fields.List(fields.String(), required=True)
    status = fields.String(required=True, metadata={"description": _STATUS})


_DESCRIPTION = fields.String(validate=validate.Length(max=MAX_DESCRIPTION), metadata={
    "description": "Stored as annotation runwhere.ai/pool-description on each member node"})
class GpuTypeField(fields.String):
    """A GPU type, also accepted as the original gpuctl's one-item list (``["a100"]``)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, list):
            if len(value) != 1:
                raise ValidationError("A pool has one GPU type: give one string.")
            value = value[0]
        return super()._deserialize(value, attr, data, **kwargs)


def _no_quota(value: object) -> None:
    raise ValidationError("Pools carry no quota: set quotas per namespace with "
                          "POST /api/v1/quotas.")


_GPU_TYPE = GpuTypeField(validate=selectable_label_value, metadata={
    "description": "Written as label runwhere.ai/gpu-type on the nodes (what jobs select on); "
                   "a one-item list, as the original gpuctl sent it, is accepted too"})
_QUOTA = fields.Raw(validate=_no_quota, metadata={
    "description": "Not supported (the original accepted and ignored it): use the quota API"})
_OVERWRITE = BodyBoolean(load_default=False, metadata={
    "description": "Move nodes that are in another pool instead of answering 409"})


class CreatePoolRequestSchema(Schema):
    name = fields.String(required=True, validate=selectable_label_value,
                         metadata={"example": "train-pool"})
    description = _DESCRIPTION
    nodes = fields.List(fields.String(), required=True, validate=validate.Length(min=1), metadata={
        "description": "Node names; at least one (a pool is the nodes labelled with its name)"})
    gpuType = _GPU_TYPE
    quota = _QUOTA
    overwrite = _OVERWRITE


class UpdatePoolRequestSchema(Schema):
    description = _DESCRIPTION
    nodes = fields.List(fields.String(), validate=validate.Length(min=1), metadata={
        "description": "The pool's new members (nodes left out leave it); omit to keep them"})
    gpuType = _GPU_TYPE
    quota = _QUOTA
    overwrite = _OVERWRITE


class PoolWriteResponseSchema(Schema):
    name = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": "created"})
    message = fields.String(required=True, metadata={"example": "Resource pool created"})
    nodes = fields.List(fields.String(), required=True, metadata={
        "description": "Members after the change (on delete: the nodes released)"})


# -- handlers ---------------------------------------------------------------------------

@docs(tags=TAGS, summary="List resource pools",
      description="Every pool with its GPU totals. Nodes without a pool label form `default`, "
                  "always listed first; the others follow by name.",
      responses={200: json_content(PoolSummarySchema(many=True), "The pools"),
                 **error_responses(503)})
async def list_pools(request: web.Request) -> web.Response:
    cache = request.app[CACHE]
    return json_bytes_response(memoized(cache, "pool list bytes", (cache.nodes, cache.pods),
                                        lambda: dumps(pool_views.list_pools(cache))))


@docs(tags=TAGS, summary="Get a resource pool",
      description="`default` is the pool of nodes without a pool label.",
      responses={200: json_content(PoolDetailSchema, "The pool"), **error_responses(404, 503)})
async def get_pool(request: web.Request) -> web.Response:
    cache, name = request.app[CACHE], request.match_info["poolName"]
    # Encoded once per change, as the answer itself: a pool's detail names all its nodes.
    return json_bytes_response(memoized(cache, ("pool bytes", name),
                                        (cache.nodes, cache.pods),
                                        lambda: dumps(pool_views.pool_detail(cache, name))))


@docs(tags=TAGS, summary="Create a resource pool",
      description="Labels each node `runwhere.ai/pool=<name>`. Checked first, so nothing is "
                  "labelled on failure: every node must exist (404 names the missing ones) and "
                  "be in no other pool unless `overwrite` (409 names them). `default` cannot be "
                  "created: it is every node without a pool label.",
      responses={201: json_content(PoolWriteResponseSchema, "Pool created"),
                 **error_responses(400, 404, 409, 503)})
@request_schema(CreatePoolRequestSchema)
async def create_pool(request: web.Request) -> web.Response:
    body = request["data"]
    result = await membership.create_pool(
        node_writer(request), request.app[CACHE], body["name"], body["nodes"],
        description=body.get("description"), gpu_type=body.get("gpuType"),
        overwrite=body["overwrite"])
    return json_response(result, status=201)


@docs(tags=TAGS, summary="Update a resource pool",
      description="Sets the description, the GPU type label of the members, and (with "
                  "`nodes`) the membership: listed nodes join, unlisted members leave. All "
                  "checks happen before any node changes, as on create.",
      responses={200: json_content(PoolWriteResponseSchema, "Pool updated"),
                 **error_responses(400, 404, 409, 503)})
@request_schema(UpdatePoolRequestSchema)
async def update_pool(request: web.Request) -> web.Response:
    body = request["data"]
    result = await membership.update_pool(
        node_writer(request), request.app[CACHE], request.match_info["poolName"],
        node_names=body.get("nodes"), description=body.get("description"),
        gpu_type=body.get("gpuType"), overwrite=body["overwrite"])
    return json_response(result)


@docs(tags=TAGS, summary="Delete a resource pool",
      description="409 naming the gpuctl jobs still placed in the pool; otherwise removes the "
                  "pool label and description from its nodes (their GPU type label stays).",
      responses={200: json_content(PoolWriteResponseSchema, "Pool deleted"),
                 **error_responses(400, 404, 409, 503)})
async def delete_pool(request: web.Request) -> web.Response:
    result = await membership.delete_pool(node_writer(request), request.app[CACHE],
                                          request.match_info["poolName"])
    return json_response(result)


def setup_pool_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/pools", list_pools)
    app.router.add_post("/api/v1/pools", create_pool)
    app.router.add_get("/api/v1/pools/{poolName}", get_pool)
    app.router.add_put("/api/v1/pools/{poolName}", update_pool)
    app.router.add_delete("/api/v1/pools/{poolName}", delete_pool)
