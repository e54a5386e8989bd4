"""What the OpenAPI document says beyond what aiohttp-apigami derives from the schemas.

apigami builds operations from the handlers' ``@docs`` and marshmallow schemas; it cannot
describe path parameters, give operation ids, tag descriptions or links, or mark request
bodies required. :func:`complete_document` adds those once the document is built, from the
tables below, so that the document states every rule the server checks.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from gpuctl_async.kuberules.naming import DNS1123_LABEL_MAX

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
LABEL_VALUE = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
LABEL_KEY = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
             r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")

PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "jobId": {
        "description": "A job name, or the name of one of its pods (`batch` is not a job name)",
        "schema": {"type": "string", "pattern": DNS_SUBDOMAIN, "maxLength": 253,
                   "example": "resnet-train"}},
    "poolName": {
        "description": "A resource pool name (a label value); `default` is the pool of nodes "
                       "without a pool label",
        "schema": {"type": "string", "pattern": LABEL_VALUE, "maxLength": 63,
                   "example": "training-pool"}},
    "nodeName": {
        "description": "A node name",
        "schema": {"type": "string", "pattern": DNS_SUBDOMAIN, "maxLength": 253,
                   "example": "train-a100-0"}},
    "namespaceName": {
        "description": "A namespace name",
        "schema": {"type": "string", "pattern": DNS_LABEL, "maxLength": DNS1123_LABEL_MAX,
                   "example": "team-a"}},
    "key": {
        "description": "A label key, `[prefix/]name` (the `/` is part of the path)",
        "schema": {"type": "string", "pattern": LABEL_KEY, "maxLength": 317,
                   "example": "runwhere.ai/gpu-type"}},
}

TAGS = [
    {"name": "meta", "description": "Service information, liveness and readiness"},
    {"name": "jobs", "description": "Submit gpuctl job documents, list, read and delete jobs, "
                                    "follow their logs and the live job list"},
    {"name": "pools", "description": "Resource pools: groups of nodes labelled "
                                     "`runwhere.ai/pool=<name>`. `default` is every node "
                                     "without that label: it cannot be created, updated or "
                                     "deleted, only read"},
    {"name": "nodes", "description": "Nodes, their GPUs and their pool membership"},
    {"name": "labels", "description": "Node labels"},
    {"name": "quotas", "description": "Per-namespace quotas (Kubernetes ResourceQuotas that "
                                      "gpuctl writes)"},
    {"name": "namespaces", "description": "Namespaces gpuctl manages "
                                          "(`runwhere.ai/namespace=true`)"},
]

# Request bodies the server refuses when empty; the others (PUT /pools/{poolName}: change
# nothing; the label batch: may come in the query string) may be left out.
OPTIONAL_BODIES = {("put", "/api/v1/pools/{poolName}"), ("post", "/api/v1/nodes/labels/batch")}

LINKS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("post", "/api/v1/jobs", "201"): {
        "GetJob": {"operationId": "getJob", "description": "Read the job just created",
                   "parameters": {"jobId": "$response.body#/jobId",
                                  "namespace": "$response.body#/namespace"}},
        "DeleteJob": {"operationId": "deleteJob", "description": "Delete the job just created",
                      "parameters": {"jobId": "$response.body#/jobId",
                                     "namespace": "$response.body#/namespace"}},
        "GetJobLogs": {"operationId": "getLogs", "description": "Read its logs",
                       "parameters": {"jobId": "$response.body#/jobId",
                                      "namespace": "$response.body#/namespace"}},
    },
    ("post", "/api/v1/pools", "201"): {
        "GetPool": {"operationId": "getPool", "description": "Read the pool just created",
                    "parameters": {"poolName": "$response.body#/name"}},
        "DeletePool": {"operationId": "deletePool",
                       "description": "Delete the pool just created",
                       "parameters": {"poolName": "$response.body#/name"}},
    },
}


def _operation_id(handler: Any) -> str:
    name = re.sub(r"_route$", "", getattr(handler, "__name__", "operation"))
    first, *rest = name.split("_")
    return first + "".join(part.capitalize() for part in rest)


def _handlers(app: web.Application) -> dict[tuple[str, str], Any]:
    found = {}
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path:
            path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)  # {jobId:regex} -> {jobId}
            found[(route.method.lower(), path)] = route.handler
    return found


def complete_document(app: web.Application, document: dict[str, Any]) -> None:
    handlers = _handlers(app)
    document["tags"] = TAGS
    _complete_schemas(document)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            handler = handlers.get((method, path))
            if handler is not None:
                operation["operationId"] = _operation_id(handler)
            if not operation.get("description"):
                operation["description"] = operation.get("summary", "") + "."
            for parameter in operation.get("parameters", ()):
                if parameter.get("in") == "path" and parameter["name"] in PATH_PARAMETERS:
                    parameter.update(PATH_PARAMETERS[parameter["name"]])
            body = operation.get("requestBody")
            if body is not None and (method, path) not in OPTIONAL_BODIES:
                body["required"] = True
            _complete_responses(path, method, operation)
            for (link_method, link_path, status), links in LINKS.items():
                if (link_method, link_path) == (method, path):
                    operation["responses"][status]["links"] = links


# -- schemas: the rules the server checks that marshmallow's fields do not declare ----------

_GPU_TYPE = {"type": "string", "pattern": LABEL_VALUE, "maxLength": 63}
FIELD_RULES: dict[tuple[str, str], dict[str, Any]] = {
    ("CreatePoolRequest", "name"): {"pattern": LABEL_VALUE, "maxLength": 63,
                                    "example": "l4-pool"},
    ("CreatePoolRequest", "nodes"): {"items": {"type": "string", "pattern": DNS_SUBDOMAIN,
                                               "maxLength": 253},
                                     "example": ["general-l4-0"]},
    ("UpdatePoolRequest", "nodes"): {"items": {"type": "string", "pattern": DNS_SUBDOMAIN,
                                               "maxLength": 253}},
    ("AddToPoolRequest", "pool"): {"pattern": LABEL_VALUE, "maxLength": 63,
                                   "example": "inference-pool"},
    ("AddLabelRequest", "key"): {"pattern": LABEL_KEY, "maxLength": 317},
    ("AddLabelRequest", "value"): {"pattern": r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$",
                                   "maxLength": 63},
    ("BatchLabel", "key"): {"pattern": LABEL_KEY, "maxLength": 317},
    ("CreateJobResponse", "createdAt"): {"format": "date-time"},
    ("CreateJobRequest", "yamlContent"): {"maxLength": 256 * 1024},
    ("CreateQuotaRequest", "yamlContent"): {"maxLength": 256 * 1024},
}
for _schema in ("CreatePoolRequest", "UpdatePoolRequest"):
    FIELD_RULES[(_schema, "gpuType")] = {
        "type": None, "oneOf": [_GPU_TYPE, {"type": "array", "items": _GPU_TYPE,
                                            "minItems": 1, "maxItems": 1}]}
    FIELD_RULES[(_schema, "quota")] = {
        "not": {}, "description": "Refused (400): pools carry no quota, the original accepted "
                                  "and ignored it. Set quotas per namespace with "
                                  "POST /api/v1/quotas."}


def _dry_run_example() -> dict[str, Any]:
    """A real dry-run answer for the training example (its manifests are built, not typed)."""
    from gpuctl_async.k8s.manifests import build_manifests
    from gpuctl_async.documents import parse_document
    from gpuctl_async.documents.examples import JOB_EXAMPLES

    document = parse_document(JOB_EXAMPLES["training"])
    return {**CREATED_JOB, "dryRun": True, "manifests": build_manifests(document.spec),
            "message": "Dry run: the job is valid and nothing was created"}


CREATED_JOB = {"jobId": "resnet-train", "name": "resnet-train", "kind": "training",
               "status": "pending", "createdAt": "2026-01-01T12:00:00+00:00",
               "message": "Job submitted to resource pool", "namespace": "team-a",
               "warnings": []}
ERROR_EXAMPLES = {
    400: {"error": "Validation error: resources.gpu: GPU count cannot exceed 8",
          "details": {"resources.gpu": ["GPU count cannot exceed 8"]}},
    403: {"error": "exceeded quota: gpuctl-quota, requested: requests.nvidia.com/gpu=2"},
    404: {"error": "Job 'resnet-train' not found"},
    405: {"error": "Method PATCH not allowed for /api/v1/jobs"},
    409: {"error": "Job 'resnet-train' already exists in namespace 'team-a'"},
    413: {"error": "Request body is larger than the limit of 1048576 bytes"},
    500: {"error": "Internal server error"},
    503: {"error": "Kubernetes API server is unreachable"},
}


def _complete_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for (name, field), rules in FIELD_RULES.items():
        prop = schemas.get(name, {}).get("properties", {}).get(field)
        if prop is None:
            continue
        for key, value in rules.items():
            if value is None:
                prop.pop(key, None)
            else:
                prop[key] = value
    for schema in schemas.values():
        props = schema.get("properties", {})
        if "total" in props and props.get("items", {}).get("type") == "array":
            # Swagger UI shows one item for an array: say total 1, not 0, beside it.
            props["total"].setdefault("example", 1)


def _complete_responses(path: str, method: str, operation: dict[str, Any]) -> None:
    for status, response in operation.get("responses", {}).items():
        content = response.get("content", {}).get("application/json")
        if content is None or "example" in content:
            continue
        if content.get("schema", {}).get("$ref", "").endswith("/Error"):
            content["example"] = ERROR_EXAMPLES.get(int(status), {"error": response["description"]})
    if (method, path) == ("post", "/api/v1/jobs"):
        operation["responses"]["201"]["content"]["application/json"]["example"] = CREATED_JOB
        operation["responses"]["200"]["content"]["application/json"]["example"] = \
            _dry_run_example()
