"""HTTP request counts kept as plain numbers and turned into metric families at scrape time.

The middleware runs for every request, so it adds to dicts and lists (no locks, no label
lookups: the event loop is the only writer and the scrape runs on it too); a
``prometheus_client`` Counter and Histogram per request cost about three times as much.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    HistogramMetricFamily, Metric)
from prometheus_client.registry import Collector

# Request latencies of a cache-served API: most answers take milliseconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BOUNDS = (*map(str, BUCKETS), "+Inf")


class _Latency:
    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0


class HttpStats(Collector):
    def __init__(self) -> None:
        self.in_flight = 0
        self.requests: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self.latency: defaultdict[str, _Latency] = defaultdict(_Latency)
        self.request_bytes: defaultdict[str, int] = defaultdict(int)
        self.response_bytes: defaultdict[str, int] = defaultdict(int)

    def observe(self, route: str, method: str, status_class: str, seconds: float | None,
                received: int, sent: int) -> None:
        """One answered request; ``seconds`` None: not a latency (a WebSocket session)."""
        self.requests[(route, method, status_class)] += 1
        if seconds is not None:
            latency = self.latency[route]
            latency.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            latency.sum += seconds
        if received:
            self.request_bytes[route] += received
        if sent:
            self.response_bytes[route] += sent

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "gpuctl_http_requests", "HTTP requests answered, by route template, method and "
            "status class (2xx, 4xx...)", labels=("route", "method", "status_class"))
        for labels, count in self.requests.items():
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
