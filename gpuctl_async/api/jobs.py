"""Job routes: submit (one or a batch, or a dry run) and delete."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, request_schema
from marshmallow import Schema, fields, validate

from gpuctl_async.api.openapi import error_responses, json_content, request_examples
from gpuctl_async.api.paths import JOB_PATH
from gpuctl_async.api.params import BodyBoolean, QueryBoolean
from gpuctl_async.api.responses import json_response
from gpuctl_async.appkeys import CACHE, KUBE, SETTINGS, SUBMITTER
from gpuctl_async.auth.guard import authorize, read_scope
from gpuctl_async.auth.permissions import DELETE_PODS, GET_PODS, controller_permission
from gpuctl_async.errors import GpuctlError
from gpuctl_async.jobs.delete import delete_job
from gpuctl_async.jobs.lookup import JobRef
from gpuctl_async.documents.examples import JOB_EXAMPLES

log = logging.getLogger(__name__)

MAX_BATCH = 100
BATCH_CONCURRENCY = 8
TAGS = ["jobs"]


# -- schemas ----------------------------------------------------------------------------

class CreateJobRequestSchema(Schema):
    yamlContent = fields.String(required=True, metadata={
        "description": "A gpuctl job document (kind training, inference, notebook or compute)"})
    dryRun = BodyBoolean(load_default=False, metadata={
        "description": "Validate against the API server (dryRun=All) and create nothing"})


class CreateJobResponseSchema(Schema):
    jobId = fields.String(required=True, metadata={"example": "resnet-train"})
    name = fields.String(required=True, metadata={"example": "resnet-train"})
    namespace = fields.String(required=True, metadata={"example": "team-a"})
    kind = fields.String(required=True, metadata={"example": "training"})
    status = fields.String(required=True, metadata={"example": "pending"})
    createdAt = fields.String(required=True, metadata={"example": "2026-01-01T00:00:00+00:00"})
    message = fields.String(required=True, metadata={"example": "Job submitted to resource pool"})
    dryRun = fields.Boolean(metadata={"description": "Present on dry runs"})
    manifests = fields.List(fields.Dict(), metadata={
        "description": "Dry runs: the Kubernetes objects that would be created"})
    warnings = fields.List(fields.String(), required=True, metadata={
        "description": "Why the job will wait (GPUs busy, quota used up for now, every "
                       "matching node tainted), or, with refuse_infeasible_jobs off, why it "
                       "can never run as the cluster is now; empty when it can start at once",
        "example": ["needs 4 × a100 GPUs; training-pool has 16, all 16 in use by 3 "
                    "jobs: the job will wait (WaitingForGPUs)"]})


class BatchRequestSchema(Schema):
    yamlContents = fields.List(fields.String(), required=True,
                               validate=validate.Length(max=MAX_BATCH), metadata={
                                   "description": f"Up to {MAX_BATCH} gpuctl job documents"})


class BatchSuccessSchema(Schema):
    jobId = fields.String(required=True)
    name = fields.String(required=True)
    namespace = fields.String(required=True)
    warnings = fields.List(fields.String(), required=True, metadata={
        "description": "As for a single submission"})


class BatchFailureSchema(Schema):
    index = fields.Integer(required=True, metadata={"description": "Position in yamlContents"})
    error = fields.String(required=True)
    details = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class BatchResponseSchema(Schema):
    success = fields.List(fields.Nested(BatchSuccessSchema), required=True)
    failed = fields.List(fields.Nested(BatchFailureSchema), required=True)


class DeleteJobQuerySchema(Schema):
    namespace = fields.String(metadata={
        "description": "Namespace of the job; without it every gpuctl namespace is searched"})
    force = QueryBoolean(load_default=False, metadata={
        "description": "Also delete the job's pods at once (grace period 0)"})


class DeleteJobResponseSchema(Schema):
    jobId = fields.String(required=True)
    name = fields.String(required=True)
    namespace = fields.String(required=True)
    status = fields.String(required=True, metadata={"example": "terminating"})
    message = fields.String(required=True, metadata={"example": "Job deletion command issued"})


# -- handlers ---------------------------------------------------------------------------

@docs(tags=TAGS, summary="Create a job from a gpuctl YAML document",
      description="Validates the document, creates its namespace (marked gpuctl-managed) and "
                  "PriorityClasses when missing, then its controller and Service. If any step "
                  "fails, what was created is deleted again. With `dryRun: true` the objects "
                  "are validated by the API server and returned, and nothing is created. "
                  "Before anything, the job is checked against the cluster as the caches see "
                  "it: one that can never run (no node of its pool with its GPU type, a pod "
                  "larger than any node of the pool, a quota below one pod's request) is a "
                  "400 whose `details` name the field; one that will wait is accepted with "
                  "`warnings`.",
      responses={201: json_content(CreateJobResponseSchema, "Job created"),
                 200: json_content(CreateJobResponseSchema, "Dry run: valid, nothing created"),
                 **error_responses(400, 403, 409, 413, 503)},
      **request_examples({
          **{kind: {"yamlContent": text} for kind, text in JOB_EXAMPLES.items()},
          **{f"{kind}-dry-run": {"yamlContent": text, "dryRun": True}
             for kind, text in JOB_EXAMPLES.items()}}))
@request_schema(CreateJobRequestSchema)
async def create_job(request: web.Request) -> web.Response:
    body = request["data"]
    result = await request.app[SUBMITTER].submit(body["yamlContent"], dry_run=body["dryRun"],
                                                 authorize=_may_create(request))
    return json_response(result, status=200 if body["dryRun"] else 201)


@docs(tags=TAGS, summary="Create several jobs",
      description=f"Up to {MAX_BATCH} documents, processed {BATCH_CONCURRENCY} at a time. One "
                  "document's failure never fails the others, and never leaves a half-created "
                  "job. Results keep the input order.",
      responses={201: json_content(BatchResponseSchema, "Per-document results"),
                 **error_responses(400, 413)})
@request_schema(BatchRequestSchema)
async def create_jobs_batch(request: web.Request) -> web.Response:
    submitter = request.app[SUBMITTER]
    limit = asyncio.Semaphore(BATCH_CONCURRENCY)
    authorize = _may_create(request)

    async def one(index: int, text: str) -> tuple[int, dict | None, dict | None]:
        async with limit:
            try:
                result = await submitter.submit(text, authorize=authorize)
            except GpuctlError as exc:
                return index, None, {"index": index, **exc.to_body()}
            except Exception:
                log.exception("Batch item %d failed unexpectedly", index)
                return index, None, {"index": index, "error": "Internal server error"}
        return index, {k: result[k] for k in ("jobId", "name", "namespace", "warnings")}, None

    outcomes = await asyncio.gather(*(one(i, text)
                                      for i, text in enumerate(request["data"]["yamlContents"])))
    return json_response({
        "success": [ok for _, ok, _ in outcomes if ok is not None],
        "failed": [failed for _, _, failed in outcomes if failed is not None],
    }, status=201)


@docs(tags=TAGS, summary="Delete a job",
      description="`jobId` is a job name or the name of one of its pods. Deletes the controller "
                  "(its pods follow) and its `svc-<name>` Service, and with `force=true` the "
                  "pods at once. Returns without waiting for the pods to go.",
      responses={200: json_content(DeleteJobResponseSchema, "Deletion issued"),
                 **error_responses(400, 403, 404, 409, 503)})
@querystring_schema(DeleteJobQuerySchema)
async def delete_job_route(request: web.Request) -> web.Response:
    query = request["querystring"]
    namespace = query.get("namespace")

    async def may_delete(job: JobRef) -> None:
        kind = job.controller["kind"] if job.controller is not None else None
        await authorize(request, controller_permission("delete", kind) if kind else DELETE_PODS,
                        job.namespace)

    result = await delete_job(
        request.app[KUBE], request.app[CACHE], request.match_info["jobId"],
        namespace=namespace, force=query["force"],
        settle_timeout=request.app[SETTINGS].read_your_writes_timeout,
        within=await read_scope(request, GET_PODS, namespace), authorize=may_delete,
    )
    return json_response(result)


def _may_create(request: web.Request):
    """The submitter's check that the caller may create the job's controller there."""
    async def may_create(kind: str, namespace: str) -> None:
        await authorize(request, controller_permission("create", kind), namespace)
    return may_create


def setup_job_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/jobs", create_job)
    app.router.add_post("/api/v1/jobs/batch", create_jobs_batch)
    app.router.add_delete(JOB_PATH, delete_job_route)
