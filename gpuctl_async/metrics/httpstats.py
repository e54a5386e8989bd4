"""HTTP request counts kept as plain numbers and turned into metric families at scrape time.

The request-id middleware tells :class:`HttpStats` of every request (it is the app's
``REQUEST_OBSERVER``), so this adds to dicts and lists (no locks, no label lookups: the
event loop is the only writer and the scrape runs on it too); a ``prometheus_client``
Counter and Histogram per request cost about three times as much.
"""

from __future__ import annotations

import bisect
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


class _Latency:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0


class HttpStats(Collector):
    def __init__(self) -> None:
        self.in_flight = 0
        self.requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        """(route, method, status) → count; folded into status classes at scrape time."""
        self.latency: defaultdict[str, _Latency] = defaultdict(_Latency)
        self.request_bytes: defaultdict[str, int] = defaultdict(int)
        self.response_bytes: defaultdict[str, int] = defaultdict(int)

    def started(self) -> None:
        self.in_flight += 1

    def finished(self, request: web.Request, route: str, status: int,
                 response: web.StreamResponse | None, seconds: float) -> None:
        """One answered request, under its route template (never its path)."""
        self.in_flight -= 1
        method = request.method
        if method not in _METHODS:
            method = "OTHER"  # any token is a method to aiohttp: keep the label set bounded
        self.requests[(route, method, status)] += 1
        if status != 101:  # a WebSocket's time is its session's length, not a latency
            latency = self.latency[route]
            latency.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            latency.sum += seconds
        if method in _WITH_BODY and request.content_length:
            self.request_bytes[route] += request.content_length
        sent = _body_bytes(response)
        if sent:
            self.response_bytes[route] += sent

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "gpuctl_http_requests", "HTTP requests answered, by route template, method and "
            "status class (2xx, 4xx...)", labels=("route", "method", "status_class"))
        by_class: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        for (route, method, status), count in self.requests.items():
            by_class[(route, method, _STATUS_CLASSES.get(status // 100, "other"))] += count
        for labels, count in by_class.items():
            requests.add_metric(labels, count)
        duration = HistogramMetricFamily(
            "gpuctl_http_request_duration_seconds", "Time to answer an HTTP request, by route "
            "template (WebSocket sessions are not included)", labels=("route",))
        for route, latency in self.latency.items():
            cumulative, buckets = 0, []
            for bound, count in zip(_BOUNDS, latency.counts):
                cumulative += count
                buckets.append((bound, cumulative))
            duration.add_metric([route], buckets, latency.sum)
        received = CounterMetricFamily(
            "gpuctl_http_request_bytes", "Request body bytes received (Content-Length), by "
            "route template", labels=("route",))
        for route, count in self.request_bytes.items():
            received.add_metric([route], count)
        sent = CounterMetricFamily(
            "gpuctl_http_response_bytes", "Response body bytes sent, by route template "
            "(WebSocket frames are counted by their own metrics)", labels=("route",))
        for route, count in self.response_bytes.items():
            sent.add_metric([route], count)
        yield requests
        yield duration
        yield received
        yield sent
        yield GaugeMetricFamily("gpuctl_http_requests_in_flight", "HTTP requests being "
                                "answered now (open WebSockets included)", value=self.in_flight)
