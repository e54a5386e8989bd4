"""Node routes: list (filtered, paginated), detail, GPU occupancy, pool membership.

All reads come from the node and pod caches.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema
from marshmallow import Schema, fields, validate

from gpuctl_async.api.openapi import error_responses, json_content
from gpuctl_async.api.params import BodyBoolean
from gpuctl_async.api.pools import node_writer
from gpuctl_async.api.responses import dumps, json_bytes_response, json_response
from gpuctl_async.api.pagination import PageQuerySchema, paginate
from gpuctl_async.appkeys import CACHE
from gpuctl_async.documents.fields import selectable_label_value
from gpuctl_async.k8s.memo import memoized
from gpuctl_async.pools import membership, node_views
from gpuctl_async.pools.accounting import ACTIVE, NOT_READY
from gpuctl_async.pools.ledger import ledger_of

TAGS = ["nodes"]


# -- schemas ----------------------------------------------------------------------------

class NodeListQuerySchema(PageQuerySchema):
    pool = fields.String(metadata={"description": "Pool name; `default`: nodes without one"})
    gpuType = fields.String(metadata={"description": "GPU type, from the node's labels"})
    status = fields.String(validate=validate.OneOf([ACTIVE, NOT_READY]), metadata={
        "description": "`active` (Ready) or `not_ready`"})


_POOLS = fields.List(fields.String(), required=True, metadata={
    "description": "The node's pool (`default` when it has no pool label)"})


class NodeSummarySchema(Schema):
    nodeName = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": ACTIVE})
    gpuTotal = fields.Integer(required=True)
    gpuUsed = fields.Integer(required=True)
    gpuFree = fields.Integer(required=True)
    boundPools = _POOLS
    cpu = fields.String(required=True, metadata={"description": "CPU capacity", "example": "32"})
    memory = fields.String(required=True, metadata={"example": "256Gi"})
    gpuType = fields.String(required=True, metadata={"example": "a100"})
    createdAt = fields.String(allow_none=True)


class NodeListSchema(Schema):
    total = fields.Integer(required=True)
    items = fields.List(fields.Nested(NodeSummarySchema), required=True)


class NodeResourcesSchema(Schema):
    cpuTotal = fields.Float(required=True, metadata={"description": "Cores"})
    cpuUsed = fields.Float(required=True, metadata={"description": "Cores requested by pods"})
    memoryTotal = fields.String(required=True, metadata={"example": "256Gi"})
    memoryUsed = fields.String(required=True, metadata={"example": "64Gi"})
    gpuTotal = fields.Integer(required=True)
    gpuUsed = fields.Integer(required=True)
    gpuFree = fields.Integer(required=True)


class LabelPairSchema(Schema):
    key = fields.String(required=True)
    value = fields.String(required=True)


class RunningJobSchema(Schema):
    name = fields.String(required=True)
    namespace = fields.String(required=True)
    kind = fields.String(required=True)
    pod = fields.String(required=True)
    status = fields.String(required=True)
    gpu = fields.Integer(required=True)


class ConditionSchema(Schema):
    type = fields.String(required=True)
    status = fields.String(required=True)
    reason = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    lastTransitionTime = fields.String(allow_none=True)


class NodeDetailSchema(Schema):
    nodeName = fields.String(required=True)
    status = fields.String(required=True)
    resources = fields.Nested(NodeResourcesSchema, required=True, metadata={
        "description": "Used = requests of every unfinished pod bound to the node"})
    capacity = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    allocatable = fields.Dict(keys=fields.String(), values=fields.String(), required=True)
    labels = fields.List(fields.Nested(LabelPairSchema), required=True)
    boundPools = _POOLS
    gpuType = fields.String(required=True)
    runningJobs = fields.List(fields.Nested(RunningJobSchema), required=True, metadata={
        "description": "Unfinished gpuctl pods on the node"})
    conditions = fields.List(fields.Nested(ConditionSchema), required=True)
    createdAt = fields.String(allow_none=True)
    lastUpdatedAt = fields.String(allow_none=True, metadata={
        "description": "The latest condition transition"})


class GpuSlotSchema(Schema):
    gpuId = fields.String(required=True, metadata={"example": "gpu-0"})
    type = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "`used` or `free`"})
    pod = fields.String(allow_none=True, metadata={
        "description": "`namespace/name` of the pod counted on this GPU (slots are nominal: "
                       "Kubernetes does not say which device a pod got)"})
    utilization = fields.Float(allow_none=True, metadata={"description": "Always null: no "
                                                           "GPU metrics source"})
    memoryUsage = fields.String(allow_none=True, metadata={"description": "Always null"})


class GpuNodeSchema(Schema):
    nodeName = fields.String(required=True)
    gpuCount = fields.Integer(required=True)
    gpuUsed = fields.Integer(required=True)
    gpuFree = fields.Integer(required=True)
    gpus = fields.List(fields.Nested(GpuSlotSchema), required=True)


class GpuDetailSchema(Schema):
    total = fields.Integer(required=True)
    items = fields.List(fields.Nested(GpuNodeSchema), required=True)


class AddToPoolRequestSchema(Schema):
    pool = fields.String(required=True, validate=selectable_label_value, metadata={
        "description": "Pool to join; `default` takes the node out of its pool"})
    overwrite = BodyBoolean(load_default=False, metadata={
        "description": "Move the node if it is in another pool instead of answering 409"})


class NodePoolResponseSchema(Schema):
    node = fields.String(required=True)
    pool = fields.String(required=True)
    message = fields.String(required=True)


# -- handlers ---------------------------------------------------------------------------

@docs(tags=TAGS, summary="List nodes",
      description="Nodes by name, with GPU totals and use; filters combine.",
      responses={200: json_content(NodeListSchema, "A page of nodes"),
                 **error_responses(400, 503)})
@querystring_schema(NodeListQuerySchema)
async def list_nodes(request: web.Request) -> web.Response:
    query = request["querystring"]
    cache = request.app[CACHE]

    def page() -> bytes:
        nodes = node_views.list_nodes(cache, pool=query.get("pool"),
                                      gpu_type=query.get("gpuType"), status=query.get("status"))
        answer = paginate(nodes, query)
        answer["items"] = [node_views.node_summary(cache, node) for node in answer["items"]]
        return dumps(answer)

    # Reused until a node changes or some node's use does (the usage ledger's version).
    ledger = ledger_of(cache)
    if ledger is None:
        body = page()
    else:
        key = ("node page", *(query.get(k) for k in ("page", "pageSize", "pool", "gpuType",
                                                     "status")))
        body = memoized(cache, key, (cache.nodes,), page, also=ledger.version)
    return json_bytes_response(body)


@docs(tags=TAGS, summary="GPU occupancy of every node",
      description="Per node, one entry per GPU: the first ones are counted against the pods "
                  "bound to the node (any pod), the rest are free.",
      responses={200: json_content(GpuDetailSchema, "A page of nodes"),
                 **error_responses(400, 503)})
@querystring_schema(PageQuerySchema)
async def gpu_detail(request: web.Request) -> web.Response:
    return json_response(paginate(node_views.gpu_detail(request.app[CACHE]),
                                 request["querystring"]))


@docs(tags=TAGS, summary="Get a node",
      description="Capacity, allocatable and used resources, conditions, labels and the gpuctl "
                  "jobs running on it. 404 for an unknown node.",
      responses={200: json_content(NodeDetailSchema, "The node"), **error_responses(404, 503)})
async def get_node(request: web.Request) -> web.Response:
    return json_response(node_views.node_detail(request.app[CACHE],
                                                request.match_info["nodeName"]))


@docs(tags=TAGS, summary="Add a node to a resource pool",
      description="Labels the node `runwhere.ai/pool=<pool>` (the pool need not exist yet). "
                  "409 if the node is in another pool, unless `overwrite`.",
      responses={200: json_content(NodePoolResponseSchema, "Node in the pool"),
                 **error_responses(400, 404, 409, 503)})
@request_schema(AddToPoolRequestSchema)
async def add_to_pool(request: web.Request) -> web.Response:
    body = request["data"]
    result = await membership.add_node_to_pool(
        node_writer(request), request.app[CACHE], request.match_info["nodeName"], body["pool"],
        overwrite=body["overwrite"])
    return json_response(result)


@docs(tags=TAGS, summary="Remove a node from a resource pool",
      description="Removes the node's pool label (it joins `default`); 404 if the node is "
                  "not in that pool.",
      responses={200: json_content(NodePoolResponseSchema, "Node out of the pool"),
                 **error_responses(400, 404, 503)})
async def remove_from_pool(request: web.Request) -> web.Response:
    result = await membership.remove_node_from_pool(
        node_writer(request), request.app[CACHE], request.match_info["nodeName"],
        request.match_info["poolName"])
    return json_response(result)


def setup_node_routes(app: web.Application) -> None:
    """Call after ``setup_label_routes``; literal paths go before ``{nodeName}`` so a node
    name can never capture them."""
    app.router.add_get("/api/v1/nodes", list_nodes)
    app.router.add_get("/api/v1/nodes/gpu-detail", gpu_detail)
    app.router.add_get("/api/v1/nodes/{nodeName}", get_node)
    app.router.add_post("/api/v1/nodes/{nodeName}/pools", add_to_pool)
    app.router.add_delete("/api/v1/nodes/{nodeName}/pools/{poolName}", remove_from_pool)
