"""Schema of the quota document (``kind: quota``)."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from gpuctl_async.kuberules.naming import dns1123_label_errors
from gpuctl_async.documents.base import StrictSchema
from gpuctl_async.documents.fields import (
    CpuQuantity,
    MemoryQuantity,
    NamedEntries,
    Text,
    WholeNumber,
    dns_label,
)
from gpuctl_async.documents.jobs import DEFAULT_NAMESPACE, DEFAULT_VERSION


class QuotaSchema(StrictSchema):
    # Prefixes the ResourceQuota names (<quota>-<namespace>) and is a label value.
    name = Text(required=True, validate=dns_label)
    description = Text()


class QuotaLimitsSchema(StrictSchema):
    cpu = CpuQuantity(allow_zero=True)
    memory = MemoryQuantity(allow_zero=True)
    gpu = WholeNumber(validate=validate.Range(min=0, error="GPU count cannot be negative"))

    @validates_schema
    def _something_limited(self, data: dict, **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Give at least one of cpu, memory, gpu.", field_name="cpu")


def quota_namespace_errors(name: str) -> list[str]:
    if name == DEFAULT_NAMESPACE:
        return ["set the quota of namespace 'default' in the top-level 'default' section"]
    return dns1123_label_errors(name)


class QuotaDocumentSchema(StrictSchema):
    kind = Text(required=True)
    version = Text(load_default=DEFAULT_VERSION)
    quota = fields.Nested(QuotaSchema, required=True)
    namespace = NamedEntries(QuotaLimitsSchema, quota_namespace_errors, load_default=dict)
    default = fields.Nested(QuotaLimitsSchema)

    @validates_schema(skip_on_field_errors=True)
    def _some_namespace(self, data: dict, **kwargs: Any) -> None:
        if not data.get("namespace") and "default" not in data:
            raise ValidationError("Define at least one namespace here or a 'default' section.",
                                  field_name="namespace")
