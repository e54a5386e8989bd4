"""Node label routes: add (one node or a batch), read, update, delete, and overviews.

Label keys with a prefix (``runwhere.ai/pool``) go in the ``{key}`` routes URL-encoded
(``runwhere.ai%2Fpool``) or as is: the route's pattern lets the key contain its one ``/``.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema
from marshmallow import INCLUDE, Schema, fields, validate

from gpuctl_async.api.nodes import LabelPairSchema
from gpuctl_async.api.pagination import PageQuerySchema, paginate
from gpuctl_async.api.openapi import error_responses, json_content
from gpuctl_async.api.params import BodyBoolean, QueryBoolean
from gpuctl_async.api.pools import node_writer
from gpuctl_async.api.responses import json_response
from gpuctl_async.appkeys import CACHE
from gpuctl_async.errors import ValidationFailed
from gpuctl_async.pools import labels

TAGS = ["labels"]
MAX_BATCH = 500
_REQUIRED = "Missing data for required field."


# -- schemas ----------------------------------------------------------------------------

_KEY = fields.String(required=True, metadata={
    "description": "`[prefix/]name`, as Kubernetes allows", "example": "runwhere.ai/gpu-type"})
_VALUE = fields.String(required=True, metadata={"example": "a100"})


class AddLabelRequestSchema(Schema):
    key = _KEY
    value = _VALUE
    overwrite = BodyBoolean(load_default=False, metadata={
        "description": "Replace an existing different value instead of answering 409"})


class AddLabelResponseSchema(Schema):
    nodeName = fields.String(required=True)
    label = fields.Dict(keys=fields.String(), values=fields.String(), required=True,
                        metadata={"example": {"runwhere.ai/gpu-type": "a100"}})
    message = fields.String(required=True, metadata={"example": "Label added"})


class BatchLabelSchema(Schema):
    """Every field is optional here because it may come from the body or the query string;
    the handler insists on nodeNames, key and value from one or the other."""

    nodeNames = fields.List(fields.String(), validate=validate.Length(min=1, max=MAX_BATCH),
                            metadata={"description": "Nodes to label (query: repeat the "
                                                     "parameter)"})
    key = fields.String(metadata=_KEY.metadata)
    value = fields.String(metadata={**_VALUE.metadata, "description": "The label value"})
    overwrite = BodyBoolean(metadata={"description": "Default false"})


class BatchLabelQuerySchema(BatchLabelSchema):
    """The same, in the query string: booleans are written true|false|1|0 there."""

    overwrite = QueryBoolean(metadata={"description": "Default false"})


class LabelBatchFailureSchema(Schema):
    nodeName = fields.String(required=True)
    error = fields.String(required=True)


class BatchLabelResponseSchema(Schema):
    success = fields.List(fields.String(), required=True)
    failed = fields.List(fields.Nested(LabelBatchFailureSchema), required=True)
    message = fields.String(required=True)


class LabelDetailSchema(Schema):
    key = fields.String(required=True)
    value = fields.String(required=True)
    createdAt = fields.String(allow_none=True, metadata={"description": "The node's creation "
                                                                        "time (Kubernetes keeps "
                                                                        "no per-label time)"})
    lastUpdatedAt = fields.String(allow_none=True, metadata={"description": "Same as createdAt"})


class GetLabelResponseSchema(Schema):
    nodeName = fields.String(required=True)
    label = fields.Nested(LabelDetailSchema, required=True)


class UpdateLabelRequestSchema(Schema):
    value = fields.String(required=True, validate=validate.Length(min=1, error="must not be "
                                                                              "empty"))


class LabelChangeResponseSchema(Schema):
    node = fields.String(required=True)
    label = fields.String(required=True, metadata={"description": "`key=value` on update, "
                                                                  "`key` on delete"})
    message = fields.String(required=True)


class NodeLabelsResponseSchema(Schema):
    node = fields.String(required=True)
    labels = fields.Dict(keys=fields.String(), values=fields.String(), required=True)


class LabelsOverviewSchema(Schema):
    """Label key → its distinct values over all nodes (sorted)."""

    class Meta:
        unknown = INCLUDE


class LabelQuerySchema(PageQuerySchema):
    key = fields.String(required=True, metadata=_KEY.metadata)


class NodeLabelSchema(Schema):
    nodeName = fields.String(required=True)
    labelKey = fields.String(required=True)
    labelValue = fields.String(required=True)


class NodesWithLabelSchema(Schema):
    total = fields.Integer(required=True)
    items = fields.List(fields.Nested(NodeLabelSchema), required=True)


class NodeGpuLabelsSchema(Schema):
    nodeName = fields.String(required=True)
    gpuLabels = fields.List(fields.Nested(LabelPairSchema), required=True, metadata={
        "description": "Keys starting `nvidia.com/gpu-` or ending `gpu-type` / `gpu-model`"})
    boundPools = fields.List(fields.String(), required=True)


class GpuLabelsSchema(Schema):
    total = fields.Integer(required=True)
    items = fields.List(fields.Nested(NodeGpuLabelsSchema), required=True)


# -- handlers ---------------------------------------------------------------------------

def _key(request: web.Request) -> str:
    return request.match_info["key"]


@docs(tags=TAGS, summary="Add a label to a node",
      description="409 when the key exists with another value and `overwrite` is false.",
      responses={200: json_content(AddLabelResponseSchema, "Label set"),
                 **error_responses(400, 404, 409, 503)})
@request_schema(AddLabelRequestSchema)
async def add_label(request: web.Request) -> web.Response:
    body = request["data"]
    result = await labels.add_label(node_writer(request), request.app[CACHE],
                                    request.match_info["nodeName"], body["key"], body["value"],
                                    overwrite=body["overwrite"])
    return json_response(result)


@docs(tags=TAGS, summary="Add a label to several nodes",
      description="`nodeNames`, `key`, `value`, `overwrite` in a JSON body, or (as in the "
                  "original) in the query string with `nodeNames` repeated. Each node succeeds "
                  "or fails on its own (unknown node, existing different value).",
      responses={200: json_content(BatchLabelResponseSchema, "Per-node results"),
                 **error_responses(400, 503)})
@request_schema(BatchLabelSchema, put_into="body")
@querystring_schema(BatchLabelQuerySchema, put_into="query")
async def label_nodes(request: web.Request) -> web.Response:
    data = {**request["query"], **request["body"]}
    missing = [name for name in ("nodeNames", "key", "value") if name not in data]
    if missing:
        raise ValidationFailed(f"Missing {', '.join(missing)} (in the body or the query string)",
                               details={name: [_REQUIRED] for name in missing})
    result = await labels.label_nodes(node_writer(request), request.app[CACHE],
                                      data["nodeNames"], data["key"], data["value"],
                                      overwrite=data.get("overwrite", False))
    return json_response(result)


@docs(tags=TAGS, summary="Get one label of a node",
      description="From the cache. 404 when the node or the label does not exist.",
      responses={200: json_content(GetLabelResponseSchema, "The label"),
                 **error_responses(404, 503)})
async def get_label(request: web.Request) -> web.Response:
    return json_response(labels.get_label(request.app[CACHE], request.match_info["nodeName"],
                                          _key(request)))


@docs(tags=TAGS, summary="Change the value of a node label",
      description="404 when the node or the label does not exist.",
      responses={200: json_content(LabelChangeResponseSchema, "Label updated"),
                 **error_responses(400, 404, 503)})
@request_schema(UpdateLabelRequestSchema)
async def update_label(request: web.Request) -> web.Response:
    result = await labels.update_label(node_writer(request), request.app[CACHE],
                                       request.match_info["nodeName"], _key(request),
                                       request["data"]["value"])
    return json_response(result)


@docs(tags=TAGS, summary="Delete a node label",
      description="404 when the node or the label does not exist.",
      responses={200: json_content(LabelChangeResponseSchema, "Label deleted"),
                 **error_responses(404, 503)})
async def delete_label(request: web.Request) -> web.Response:
    result = await labels.delete_label(node_writer(request), request.app[CACHE],
                                       request.match_info["nodeName"], _key(request))
    return json_response(result)


@docs(tags=TAGS, summary="Get all labels of a node",
      description="Every label of the node, Kubernetes' own included. 404 for an unknown node.",
      responses={200: json_content(NodeLabelsResponseSchema, "The labels"),
                 **error_responses(404, 503)})
async def node_labels(request: web.Request) -> web.Response:
    return json_response(labels.node_labels_view(request.app[CACHE],
                                                 request.match_info["nodeName"]))


@docs(tags=TAGS, summary="Nodes carrying a label key",
      description="The nodes that have label `key`, with its value, by node name.",
      responses={200: json_content(NodesWithLabelSchema, "A page of nodes"),
                 **error_responses(400, 503)})
@querystring_schema(LabelQuerySchema)
async def nodes_with_label(request: web.Request) -> web.Response:
    query = request["querystring"]
    return json_response(paginate(labels.nodes_with_label(request.app[CACHE], query["key"]),
                                 query))


@docs(tags=TAGS, summary="GPU labels and pool of every node",
      description="Per node: its pool (`default` without a pool label) and its "
                  "`runwhere.ai/gpu-type` label, by node name.",
      responses={200: json_content(GpuLabelsSchema, "A page of nodes"),
                 **error_responses(400, 503)})
@querystring_schema(PageQuerySchema)
async def gpu_labels(request: web.Request) -> web.Response:
    return json_response(paginate(labels.gpu_labels(request.app[CACHE]),
                                 request["querystring"]))


@docs(tags=TAGS, summary="All node labels, values aggregated by key",
      description="Every label key found on any node, with its distinct values.",
      responses={200: json_content(LabelsOverviewSchema, "Label key → distinct values"),
                 **error_responses(503)})
async def labels_overview(request: web.Request) -> web.Response:
    return json_response(labels.labels_overview(request.app[CACHE]))


def setup_label_routes(app: web.Application) -> None:
    """Call before ``setup_node_routes``: the literal ``/nodes/labels...`` paths must be
    matched before ``/nodes/{nodeName}``."""
    app.router.add_get("/api/v1/labels", labels_overview)
    app.router.add_get("/api/v1/nodes/labels", nodes_with_label)
    app.router.add_get("/api/v1/nodes/labels/all", gpu_labels)
    app.router.add_post("/api/v1/nodes/labels/batch", label_nodes)
    app.router.add_get("/api/v1/nodes/{nodeName}/labels", node_labels)
    app.router.add_post("/api/v1/nodes/{nodeName}/labels", add_label)
    key = "/api/v1/nodes/{nodeName}/labels/{key:.+}"
    app.router.add_get(key, get_label)
    app.router.add_put(key, update_label)
    app.router.add_delete(key, delete_label)
