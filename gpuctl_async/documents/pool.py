"""Schema of the pool document (``kind: pool``, alias ``kind: resource``)."""

from __future__ import annotations

from marshmallow import fields

from gpuctl_async.kuberules.naming import dns1123_subdomain_errors
from gpuctl_async.documents.base import StrictSchema
from gpuctl_async.documents.fields import NamedEntries, Text, selectable_label_value
from gpuctl_async.documents.jobs import DEFAULT_VERSION


class PoolSchema(StrictSchema):
    # The name is the value of the nodes' runwhere.ai/pool label.
    name = Text(required=True, validate=selectable_label_value)
    description = Text()


class PoolNodeSchema(StrictSchema):
    aliases = {"gpu_type": "gpuType", "gpu-type": "gpuType"}

    gpuType = Text(validate=selectable_label_value)


class PoolDocumentSchema(StrictSchema):
    kind = Text(required=True)
    version = Text(load_default=DEFAULT_VERSION)
    pool = fields.Nested(PoolSchema, required=True)
    nodes = NamedEntries(PoolNodeSchema, dns1123_subdomain_errors, load_default=dict)
