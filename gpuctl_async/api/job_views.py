"""Job reads: the job list and a job's detail, served from the caches (no API calls)."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema
from marshmallow import Schema, fields, validate

from gpuctl_async.api.pagination import PageQuerySchema
from gpuctl_async.api.openapi import error_responses, json_content
from gpuctl_async.api.paths import JOB_PATH
from gpuctl_async.api.responses import dumps, json_bytes_response
from gpuctl_async.appkeys import CACHE, EXPLAINER, LISTING
from gpuctl_async.auth.guard import read_scope
from gpuctl_async.auth.permissions import GET_PODS, LIST_PODS
from gpuctl_async.jobs.lookup import find_job
from gpuctl_async.jobs.views import job_detail
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.memo import memoized
from gpuctl_async.documents import JOB_KINDS

TAGS = ["jobs"]


class JobListQuerySchema(PageQuerySchema):
    kind = fields.String(validate=validate.OneOf(JOB_KINDS), metadata={"description": "Job kind"})
    pool = fields.String(metadata={"description": "Resource pool name"})
    status = fields.String(metadata={
        "description": "Shown status or pod phase, case-insensitive (e.g. running, "
                       "ImagePullBackOff, succeeded)"})
    namespace = fields.String(metadata={"description": "Only this namespace"})


class JobItemSchema(Schema):
    jobId = fields.String(required=True, metadata={
        "description": "Pod name (or the controller's name while the job has no pods)",
        "example": "my-inference-854c6c5cd-76ztc"})
    name = fields.String(required=True, metadata={"example": "my-inference"})
    namespace = fields.String(required=True, metadata={"example": "default"})
    kind = fields.String(required=True, metadata={"example": "inference"})
    status = fields.String(required=True, metadata={"example": "Running"})
    ready = fields.String(required=True, metadata={"example": "1/1"})
    node = fields.String(required=True, metadata={"example": "node-1"})
    ip = fields.String(required=True, metadata={"example": "10.42.0.43"})
    age = fields.String(required=True, metadata={"example": "2h"})
    reason = fields.String(required=True, allow_none=True, metadata={
        "description": "Why the job is not running, one word (null while it runs or once it "
                       "has finished): Unschedulable, NoMatchingNodes, WaitingForGPUs, "
                       "WaitingForResources, Scheduling, QuotaExceeded, FailedCreate, Creating, "
                       "ImagePullBackOff, CrashLoopBackOff, ContainerCreating, Terminating, or "
                       "another container waiting reason",
        "example": "WaitingForGPUs"})
    message = fields.String(required=True, allow_none=True, metadata={
        "description": "The reason as one plain sentence, with the numbers",
        "example": "needs 4 × a100 GPUs; training-pool has 16, all 16 in use by 3 jobs"})


class JobListSchema(Schema):
    total = fields.Integer(required=True)
    items = fields.List(fields.Nested(JobItemSchema), required=True)


class JobDetailQuerySchema(Schema):
    namespace = fields.String(metadata={
        "description": "Namespace of the job; without it every namespace is searched"})


class EventSchema(Schema):
    age = fields.String()
    type = fields.String()
    reason = fields.String()
    from_ = fields.String(data_key="from")
    object = fields.String(metadata={"example": "Pod/my-notebook-job-0"})
    message = fields.String()
    count = fields.Integer()
    lastTimestamp = fields.String(allow_none=True)


class ResourcesSchema(Schema):
    cpu = fields.String(allow_none=True)
    memory = fields.String(allow_none=True)
    gpu = fields.Integer()


class PodAccessSchema(Schema):
    pod_ip = fields.String(allow_none=True)
    port = fields.Integer(allow_none=True)
    url = fields.String(allow_none=True)


class NodePortAccessSchema(Schema):
    node_ip = fields.String(allow_none=True)
    node_port = fields.Integer(allow_none=True)
    url = fields.String(allow_none=True)


class AccessMethodsSchema(Schema):
    pod_ip_access = fields.Nested(PodAccessSchema)
    node_port_access = fields.Nested(NodePortAccessSchema)


class JobPodSchema(Schema):
    name = fields.String()
    status = fields.String()
    node = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    message = fields.String(allow_none=True)


class QueuePositionSchema(Schema):
    position = fields.Integer(metadata={
        "description": "1: the next waiting pod of the pool the scheduler takes"})
    waiting = fields.Integer(metadata={"description": "Pods waiting in the pool"})
    gpusAhead = fields.Integer(metadata={"description": "GPUs the pods ahead ask for"})
    priority = fields.Integer(metadata={"description": "The pod's priority (PriorityClass)"})


class PoolBlockerSchema(Schema):
    name = fields.String()
    gpuType = fields.String(allow_none=True)
    nodes = fields.Integer(metadata={"description": "Nodes in the pool"})
    matchingNodes = fields.Integer(metadata={"description": "Of the requested GPU type"})
    usableNodes = fields.Integer(metadata={
        "description": "Matching and accepting pods (not tainted, cordoned or not Ready)"})
    gpus = fields.Integer(metadata={"description": "GPUs of the usable nodes"})
    gpusFree = fields.Integer()
    largestGpusFreeOnNode = fields.Integer()
    jobsUsingGpus = fields.Integer()
    otherPodsUsingGpus = fields.Integer()
    requested = fields.Dict(keys=fields.String(), values=fields.String(), metadata={
        "description": "What one pod asks for"})


class NodeBlockerSchema(Schema):
    node = fields.String()
    problem = fields.String(metadata={
        "description": "node selector, cordoned, not-ready, tainted or insufficient"})
    detail = fields.String()


class QuotaBlockerSchema(Schema):
    quota = fields.String()
    resource = fields.String(metadata={"example": "requests.nvidia.com/gpu"})
    hard = fields.String()
    used = fields.String()
    requested = fields.String()


class ContainerBlockerSchema(Schema):
    name = fields.String()
    image = fields.String(allow_none=True)
    state = fields.String(allow_none=True)
    detail = fields.String(allow_none=True)
    restartCount = fields.Integer()
    lastExitCode = fields.Integer(allow_none=True)
    lastTerminationReason = fields.String(allow_none=True)
    lastFinishedAt = fields.String(allow_none=True)


class BlockersSchema(Schema):
    pool = fields.Nested(PoolBlockerSchema)
    nodes = fields.List(fields.Nested(NodeBlockerSchema))
    quota = fields.List(fields.Nested(QuotaBlockerSchema))
    container = fields.Nested(ContainerBlockerSchema)
    scheduler = fields.String(metadata={"description": "The scheduler's last FailedScheduling "
                                                       "message"})
    event = fields.String(metadata={"description": "The controller's last FailedCreate "
                                                   "message"})


class SchedulingSchema(Schema):
    reason = fields.String(required=True)
    message = fields.String(required=True)
    pod = fields.String(allow_none=True, metadata={"description": "The pod explained"})
    blockers = fields.Nested(BlockersSchema)
    queue = fields.Nested(QueuePositionSchema, allow_none=True, metadata={
        "description": "For a pod waiting for a node: its place in the pool's queue, in the "
                       "scheduler's order (priority, then submission time)"})


class JobDetailSchema(Schema):
    job_id = fields.String(required=True)
    name = fields.String(required=True)
    namespace = fields.String(required=True)
    kind = fields.String(required=True)
    resource_type = fields.String(required=True, metadata={
        "description": "Job, Deployment, StatefulSet, or Pod for a job whose controller is gone"})
    status = fields.String(required=True)
    age = fields.String(required=True)
    started = fields.String(allow_none=True)
    completed = fields.String(allow_none=True)
    priority = fields.String()
    pool = fields.String()
    resources = fields.Nested(ResourcesSchema)
    metrics = fields.Dict()
    yaml_content = fields.Dict(metadata={
        "description": "A gpuctl document that would recreate the job"})
    events = fields.List(fields.Nested(EventSchema), metadata={
        "description": "The controller's, its ReplicaSets' and its pods' events, newest first, "
                       "repeats folded into one with their count, at most 50"})
    access_methods = fields.Nested(AccessMethodsSchema, allow_none=True, metadata={
        "description": "For inference, notebook and compute jobs; null for training"})
    scheduling = fields.Nested(SchedulingSchema, allow_none=True, metadata={
        "description": "Why the job is not running, or why some of its replicas are missing "
                       "(null once it runs with all of them, or has finished)"})
    pods = fields.List(fields.Nested(JobPodSchema))


@docs(tags=TAGS, summary="List jobs",
      description="One item per pod of every gpuctl job, plus one for a job whose controller "
                  "has no pods (e.g. waiting for quota). Newest first, then namespace and name. "
                  "With authentication on, only namespaces where the caller may list pods.",
      responses={200: json_content(JobListSchema, "A page of jobs"),
                 **error_responses(400, 403, 503)})
@querystring_schema(JobListQuerySchema)
async def list_jobs(request: web.Request) -> web.Response:
    query = request["querystring"]
    within = await read_scope(request, LIST_PODS, query.get("namespace"))
    options = {"page": query["page"], "page_size": query["pageSize"],
               "namespace": query.get("namespace"), "kind": query.get("kind"),
               "pool": query.get("pool"), "status": query.get("status")}
    # The listing keeps rendered pages until a row or a shown age changes.
    return json_bytes_response(request.app[LISTING].page_json(within=_key(within), **options))


def _job_reads(cache: ClusterCache) -> tuple:
    """Every cache a job detail is computed from."""
    return (cache.pods, *cache.controllers(), cache.replica_sets, cache.events, cache.services,
            cache.nodes)


def _key(within) -> frozenset | None:
    return None if within is None else frozenset(within)


@docs(tags=TAGS, summary="Get a job's details",
      description="`jobId` is a job name or one of its pod names. Without `namespace`, only "
                  "namespaces where the caller may read are searched.",
      responses={200: json_content(JobDetailSchema, "The job"),
                 **error_responses(400, 403, 404, 409, 503)})
@querystring_schema(JobDetailQuerySchema)
async def get_job(request: web.Request) -> web.Response:
    cache = request.app[CACHE]
    job_id = request.match_info["jobId"]
    namespace = request["querystring"].get("namespace")
    within = await read_scope(request, GET_PODS, namespace)

    def detail() -> bytes:
        job = find_job(cache, job_id, namespace, within=within)
        return dumps(job_detail(cache, request.app[EXPLAINER], job, job_id))

    body = memoized(cache, ("job", job_id, namespace, _key(within), int(time.time())),
                    _job_reads(cache), detail)
    return json_bytes_response(body)


def setup_job_view_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/jobs", list_jobs)
    app.router.add_get(JOB_PATH, get_job)
