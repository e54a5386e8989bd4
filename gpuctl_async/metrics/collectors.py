"""Metrics read from the app's parts when Prometheus scrapes: nothing is counted twice, and
the parts (informers, log hub, sockets, auth caches, readiness) keep plain numbers with no
knowledge of Prometheus.

Before the Kubernetes client exists (start-up) or with a part absent (auth off), its
metrics are simply not there.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

from aiohttp import web
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.registry import Collector

from gpuctl_async import __version__
from gpuctl_async.api.job_feed import FEED_SOCKETS, FEED_STATS
from gpuctl_async.api.stream import STREAM_SOCKETS
from gpuctl_async.api.logs import LOG_SOCKETS
from gpuctl_async.appkeys import CACHE, LOG_HUB, READINESS
from gpuctl_async.auth.guard import ACCESS
from gpuctl_async.k8s.watchstats import LAG_BUCKETS

INFORMER = ("informer",)


class StateCollector(Collector):
    def __init__(self, app: web.Application):
        self.app = app

    def describe(self) -> list[Metric]:
        return []  # names vary with what the app holds; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        app = self.app
        info = GaugeMetricFamily("gpuctl_build_info", "Always 1: the gpuctl-async version "
                                 "serving", labels=("version",))
        info.add_metric([__version__], 1)
        yield info
        if CACHE in app:
            yield from _informers(app[CACHE].all)
        if LOG_HUB in app:
            yield from _logs(app[LOG_HUB])
        yield from _sockets(app)
        if ACCESS in app:
            yield from _auth(app[ACCESS])
        if READINESS in app:
            yield from _readiness(app[READINESS])


def _age(informer, now: float) -> float | None:
    last = informer.stats.last_event
    return None if last is None else max(0.0, now - last)


# One row per per-informer family: (kind, name, help, the value for an informer and the
# time now; None: no sample for that informer).
_INFORMER_FAMILIES = (
    (GaugeMetricFamily, "gpuctl_informer_objects", "Objects in the cache",
     lambda i, now: len(i) if i.synced else 0),
    (GaugeMetricFamily, "gpuctl_informer_synced", "1 once the cache's first list has completed",
     lambda i, now: 1 if i.synced else 0),
    (GaugeMetricFamily, "gpuctl_informer_connected", "1 while the cache's watch stream is open",
     lambda i, now: 1 if i.connected else 0),
    (CounterMetricFamily, "gpuctl_informer_relists", "Full lists after the first (the watch's "
     "resourceVersion expired: 410 Gone)", lambda i, now: max(0, i.stats.lists - 1)),
    (CounterMetricFamily, "gpuctl_informer_watch_restarts", "Watch requests after one ended, "
     "broke, was given up or failed to open (an outage counts each attempt)",
     lambda i, now: max(0, i.stats.watches - i.stats.lists)),
    (CounterMetricFamily, "gpuctl_informer_inactivity_restarts", "Watches given up for silence "
     "(watch_inactivity_timeout)", lambda i, now: i.stats.inactivity_restarts),
    (CounterMetricFamily, "gpuctl_informer_events", "Watch events handled, bookmarks included",
     lambda i, now: i.stats.events),
    (GaugeMetricFamily, "gpuctl_informer_last_event_age_seconds", "Seconds since the cache "
     "last heard from the API server (an event or a list)", _age),
)


def _informers(informers) -> Iterator[Metric]:
    informers = list(informers)
    now = time.time()
    for kind, name, documentation, value_of in _INFORMER_FAMILIES:
        family = kind(name, documentation, labels=INFORMER)
        for informer in informers:
            value = value_of(informer, now)
            if value is not None:
                family.add_metric([informer.resource.plural], value)  # one cache a resource
        yield family
    lag = HistogramMetricFamily("gpuctl_cache_write_visible_seconds", "Seconds from the API "
                                "server's answer to a job creation until the cache showed it",
                                labels=INFORMER)
    for informer in informers:
        stats = informer.stats
        if sum(stats.lag_counts):
            bounds = (*map(str, LAG_BUCKETS), "+Inf")
            lag.add_metric([informer.resource.plural],
                           list(zip(bounds, itertools.accumulate(stats.lag_counts))),
                           stats.lag_sum)
    yield lag


def _logs(hub) -> Iterator[Metric]:
    stats = hub.stats
    yield GaugeMetricFamily("gpuctl_log_streams_open", "Upstream Kubernetes log streams open "
                            "(one per followed container, shared by its clients)",
                            value=hub.open_streams)
    yield GaugeMetricFamily("gpuctl_log_stream_subscribers", "Subscriptions to upstream log "
                            "streams (one per pod followed by each client)",
                            value=hub.subscribers)
    yield CounterMetricFamily("gpuctl_log_frames_sent", "WebSocket frames sent to log clients",
                              value=stats.frames_sent)
    yield CounterMetricFamily("gpuctl_log_lines_sent", "Log lines sent to log clients",
                              value=stats.lines_sent)
    yield CounterMetricFamily("gpuctl_log_lines_dropped", "Log lines skipped for clients that "
                              "read too slowly", value=stats.lines_dropped)
    yield CounterMetricFamily("gpuctl_log_clients_stalled", "Log clients disconnected for "
                              "accepting nothing for log_stall_timeout",
                              value=stats.clients_stalled)
    yield CounterMetricFamily("gpuctl_log_stream_resumes", "Upstream log streams reopened "
                              "after they ended or dropped while the container went on",
                              value=stats.resumes)


def _sockets(app: web.Application) -> Iterator[Metric]:
    sockets = GaugeMetricFamily("gpuctl_websockets_open", "WebSocket connections open, by "
                                "kind (logs, jobs: the job feed, stream: the multiplexed "
                                "socket)", labels=("kind",))
    if LOG_SOCKETS in app:
        sockets.add_metric(["logs"], len(app[LOG_SOCKETS]))
    if FEED_SOCKETS in app:
        sockets.add_metric(["jobs"], len(app[FEED_SOCKETS]))
    if STREAM_SOCKETS in app:
        sockets.add_metric(["stream"], len(app[STREAM_SOCKETS]))
    yield sockets
    if STREAM_SOCKETS in app:
        yield GaugeMetricFamily("gpuctl_stream_subscriptions", "Subscriptions open on "
                                "multiplexed sockets (logs and job feeds)",
                                value=sum(len(mux) for mux in app[STREAM_SOCKETS].values()))
    if FEED_STATS in app:
        feed = app[FEED_STATS]
        yield CounterMetricFamily("gpuctl_job_feed_frames_sent", "Frames sent on job feed "
                                  "sockets (snapshots and changes)", value=feed.frames_sent)
        yield CounterMetricFamily("gpuctl_job_feed_coalesced_updates", "Job changes folded "
                                  "into a later change of the same job before being sent",
                                  value=feed.coalesced)


def _auth(access) -> Iterator[Metric]:
    kind = ("review",)
    reviews = CounterMetricFamily("gpuctl_auth_reviews", "Reviews sent to Kubernetes: "
                                  "TokenReview (token), SubjectAccessReview (access)",
                                  labels=kind)
    hits = CounterMetricFamily("gpuctl_auth_cache_hits", "Answers found in the review caches "
                               "(no review sent)", labels=kind)
    denials = CounterMetricFamily("gpuctl_auth_denials", "Reviews that said no: tokens not "
                                  "authenticated (token), permissions not held (access)",
                                  labels=kind)
    entries = GaugeMetricFamily("gpuctl_auth_cache_entries", "Answers held in the review "
                                "caches", labels=kind)
    for name, reviewer, refused in (("token", access.tokens, access.tokens.rejected),
                                    ("access", access.decisions, access.decisions.denied)):
        reviews.add_metric([name], reviewer.reviews)
        hits.add_metric([name], reviewer.cache.hits)
        denials.add_metric([name], refused)
        entries.add_metric([name], len(reviewer.cache))
    yield from (reviews, hits, denials, entries)


def _readiness(readiness) -> Iterator[Metric]:
    reasons = readiness.check_reasons()
    api_ok = readiness.api_error is None
    if readiness.api_probed:
        yield GaugeMetricFamily("gpuctl_kubernetes_api_reachable", "1 if the last readiness "
                                "probe of the Kubernetes API server (GET /version) succeeded",
                                value=1 if api_ok else 0)
    yield GaugeMetricFamily("gpuctl_ready", "1 if /ready would answer 200: every cache can "
                            "serve and the last API server probe succeeded",
                            value=1 if api_ok and not reasons else 0)
