"""The application factory: routes, middlewares, and the resources each run owns."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp_apigami import validation_middleware

from gpuctl_async.api.heartbeat import setup_heartbeat
from gpuctl_async.api.meta import setup_meta
from gpuctl_async.api.openapi import setup_openapi
from gpuctl_async.api.jobs import setup_job_routes
from gpuctl_async.api.labels import setup_label_routes
from gpuctl_async.api.log_events import setup_log_event_routes
from gpuctl_async.api.logs import setup_log_routes
from gpuctl_async.api.nodes import setup_node_routes
from gpuctl_async.api.pools import setup_pool_routes
from gpuctl_async.api.namespaces import setup_namespace_routes
from gpuctl_async.api.quotas import setup_quota_routes
from gpuctl_async.api.stream import setup_stream_routes
from gpuctl_async.api.job_feed import setup_job_feed_routes
from gpuctl_async.api.job_views import setup_job_view_routes
from gpuctl_async.appkeys import (
    CACHE,
    EXPLAINER,
    KUBE,
    LISTING,
    LOG_HUB,
    READINESS,
    SETTINGS,
    SUBMITTER,
)
from gpuctl_async.auth import auth_middleware, setup_auth
from gpuctl_async.consistency import setup_consistency
from gpuctl_async.cors import setup_cors
from gpuctl_async.heap import (freeze_when_synced, pace_young_passes, restore_thresholds, thaw,
                               young_threshold)
from gpuctl_async.jobs.create import JobSubmitter
from gpuctl_async.jobs.listing import JobListing
from gpuctl_async.jobs.reasons import Explainer
from gpuctl_async.jobs.views import controller_status
from gpuctl_async.k8s.cache import ClusterCache
from gpuctl_async.k8s.client import KubeClient, build_api_client
from gpuctl_async.logs.hub import LogHub
from gpuctl_async.metrics import kube_observer, setup_metrics
from gpuctl_async.middleware import error_middleware
from gpuctl_async.parsing import DOCUMENT_PARSER, setup_document_parsing
from gpuctl_async.probes import setup_probes
from gpuctl_async.ratelimit import setup_rate_limit
from gpuctl_async.readiness import Readiness
from gpuctl_async.requestids import setup_request_ids
from gpuctl_async.settings import Settings
from gpuctl_async.simulate import simulated_cluster_ctx
from gpuctl_async.documents.hostpaths import HostPathPolicy

log = logging.getLogger(__name__)


async def kubernetes_ctx(app: web.Application) -> AsyncIterator[None]:
    """Own the Kubernetes client for the app's lifetime; close it on shutdown."""
    settings = app[SETTINGS]
    api_client, target = await build_api_client(settings)
    kube = KubeClient(api_client, request_timeout=settings.kube_request_timeout,
                      observer=kube_observer(app))
    cache = ClusterCache(kube, event_retention=settings.event_retention,
                         inactivity_timeout=settings.watch_inactivity_timeout,
                         watch_timeout=settings.watch_timeout,
                         outage_grace=settings.watch_outage_grace,
                         backoff_max=settings.watch_backoff_max)
    readiness = Readiness(kube, probe_interval=settings.ready_probe_interval)
    readiness.add_check("caches", cache.not_ready_reasons)
    app[KUBE] = kube
    app[CACHE] = cache
    app[READINESS] = readiness
    explainer = app[EXPLAINER] = Explainer(cache)
    app[SUBMITTER] = JobSubmitter(
        kube, cache, explainer, settle_timeout=settings.read_your_writes_timeout,
        host_paths=HostPathPolicy.from_prefixes(settings.allowed_host_paths),
        parser=app[DOCUMENT_PARSER], refuse_infeasible=settings.refuse_infeasible_jobs)
    listing = JobListing(cache, lambda controller: controller_status(cache, controller,
                                                                     filling=True),
                         explainer)
    app[LISTING] = listing
    log.info("Using Kubernetes API at %s (%s)", target.host, target.source)
    hub = app[LOG_HUB] = LogHub(kube, cache, max_streams=settings.log_max_streams,
                                linger=settings.log_stream_linger,
                                batch_window=settings.log_batch_window)
    explainer.start()  # before the listing: it reads what the explainer keeps (node usage too)
    listing.start()
    hub.start()
    # Before the caches start: it pauses the collector while they fill.
    freezer = (asyncio.create_task(freeze_when_synced(cache), name="heap freezer")
               if settings.freeze_heap else None)
    thresholds = young_threshold(settings.gc_young_threshold)
    pacer = (asyncio.create_task(pace_young_passes(settings.gc_young_interval),
                                 name="young collections") if settings.gc_young_interval else None)
    cache.start()
    try:
        yield
    finally:
        restore_thresholds(thresholds)
        if pacer is not None:
            pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pacer
        if freezer is not None:
            freezer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await freezer
            thaw()
        await hub.close()
        listing.stop()
        explainer.stop()
        await cache.stop()
        await readiness.close()
        await kube.close()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    # Middleware order, outermost first: the request id (every answer and log line has one,
    # and metrics count every answer there); probes (/health, /ready) go from there straight
    # to the error middleware and their handler; CORS preflights and foreign WebSocket
    # origins are answered before anything else; errors become JSON; rate limits apply before
    # authentication (a flood never costs a TokenReview); large bodies wait for a slot before
    # validation reads them; validation needs the route.
    setup_request_ids(app)
    setup_metrics(app)
    setup_probes(app)
    setup_cors(app, settings.cors_origins)
    app.middlewares.append(error_middleware)
    setup_rate_limit(app)
    app.middlewares.append(auth_middleware)
    setup_document_parsing(app)
    app.middlewares.append(validation_middleware)
    app.cleanup_ctx.append(simulated_cluster_ctx)
    app.cleanup_ctx.append(kubernetes_ctx)
    setup_meta(app)
    # Reads first: aiohttp tries the routes under one path prefix (``/api/v1/jobs``) in the
    # order they were added, so the job list and detail, the busiest routes, are found with
    # one match instead of six. A longer literal path (``/api/v1/jobs/batch``,
    # ``/api/v1/nodes/labels``) is looked up before its prefix's routes whatever the order,
    # and ``{jobId}`` or ``{nodeName}`` never take a ``/``.
    setup_job_view_routes(app)
    setup_node_routes(app)
    setup_job_feed_routes(app)
    setup_job_routes(app)
    setup_heartbeat(app)  # the log sockets' (below)
    setup_log_routes(app)
    setup_log_event_routes(app)
    setup_stream_routes(app)
    setup_pool_routes(app)
    setup_label_routes(app)
    setup_quota_routes(app)
    setup_namespace_routes(app)
    setup_openapi(app)
    setup_consistency(app)  # after the OpenAPI document's start-up hook
    setup_auth(app)  # after every route and the OpenAPI document
    return app
