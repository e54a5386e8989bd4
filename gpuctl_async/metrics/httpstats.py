"""HTTP request counts kept as plain numbers and turned into metric families at scrape time.

The request-id middleware tells :class:`HttpStats` of every request (it is the app's
``REQUEST_OBSERVER``), so this adds to dicts and lists (no locks, no label lookups: the
event loop is the only writer and the scrape runs on it too); a ``prometheus_client``
Counter and Histogram per request cost about three times as much.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Iterator

from aiohttp import web
from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.registry import Collector

# Request latencies of a cache-served API: most answers take milliseconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BOUNDS = (*map(str, BUCKETS), "+Inf")
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def _body_bytes(response: web.StreamResponse | None) -> int:
    if type(response) is web.Response:  # the usual case first
        if not response.prepared:
            body = response.body
            return len(body) if isinstance(body, (bytes, bytearray)) else 0
        return response.body_length
    if response is None or isinstance(response, web.WebSocketResponse):
        return 0
    return response.body_length if response.prepared else 0


class _Slot:
    """What one (route, method, status) has seen: its count, latency buckets and bytes; one
    dict lookup a request finds it (the route's histogram and byte counters are sums of its
    slots, made at scrape time)."""

    __slots__ = ("count", "counts", "sum", "received", "sent")

    def __init__(self) -> None:
        self.count = 0
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.received = 0
        self.sent = 0


class HttpStats(Collector):
    def __init__(self) -> None:
        self.in_flight = 0
        self.slots: dict[tuple[str, str, int], _Slot] = {}
        """(route template, method, status) → :class:`_Slot`; status classes, per-route
        histograms and byte counts are folded from these at scrape time."""

    def started(self) -> None:
        self.in_flight += 1

    def finished(self, request: web.Request, route: str, status: int,
                 response: web.StreamResponse | None, seconds: float) -> None:
        """One answered request, under its route template (never its path)."""
        self.in_flight -= 1
        method = request.method
        key = (route, method, status)
        slot = self.slots.get(key)
        if slot is None:
            if method not in _METHODS:
                # any token is a method to aiohttp: keep the label set bounded
                key = (route, "OTHER", status)
                method = "OTHER"
            slot = self.slots.setdefault(key, _Slot())
        slot.count += 1
        if status != 101:  # a WebSocket's time is its session's length, not a latency
            slot.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            slot.sum += seconds
        if method in _WITH_BODY:
            slot.received += request.content_length or 0
        slot.sent += _body_bytes(response)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        by_class: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        counts: dict[str, list[int]] = {}
        sums: defaultdict[str, float] = defaultdict(float)
        received: defaultdict[str, int] = defaultdict(int)
        sent: defaultdict[str, int] = defaultdict(int)
        for (route, method, status), slot in self.slots.items():
            by_class[(route, method, _STATUS_CLASSES.get(status // 100, "other"))] += slot.count
            if status != 101:
                total = counts.setdefault(route, [0] * len(_BOUNDS))
                for i, count in enumerate(slot.counts):
                    total[i] += count
                sums[route] += slot.sum
            if slot.received:
                received[route] += slot.received
            if slot.sent:
                sent[route] += slot.sent
        requests = CounterMetricFamily(
            "gpuctl_http_requests", "HTTP requests answered, by route template, method and "
            "status class (2xx, 4xx...)", labels=("route", "method", "status_class"))
        for labels, count in by_class.items():
            requests.add_metric(labels, count)
        duration = HistogramMetricFamily(
            "gpuctl_http_request_duration_seconds", "Time to answer an HTTP request, by route "
            "template (WebSocket sessions are not included)", labels=("route",))
        for route, route_counts in counts.items():
            duration.add_metric([route], list(zip(_BOUNDS, itertools.accumulate(route_counts))),
                                sums[route])
        yield requests
        yield duration
        yield _per_route("gpuctl_http_request_bytes", "Request body bytes received "
                         "(Content-Length), by route template", received)
        yield _per_route("gpuctl_http_response_bytes", "Response body bytes sent, by route "
                         "template (WebSocket frames are counted by their own metrics)", sent)
        yield GaugeMetricFamily("gpuctl_http_requests_in_flight", "HTTP requests being "
                                "answered now (open WebSockets included)", value=self.in_flight)


def _per_route(name: str, documentation: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=("route",))
    for route, value in values.items():
        family.add_metric([route], value)
    return family
