"""One-shot reads of a container's log (``follow`` off), parsed into lines."""

from __future__ import annotations

import asyncio

import aiohttp

from gpuctl_async.k8s.client import KubeClient, KubeUnavailable
from gpuctl_async.k8s.resources import PODS
from gpuctl_async.logs.lines import Line, format_seconds, parse_body

MAX_GROUP_READ = 16_384
"""Longest tail read to find where a group of lines sharing one timestamp starts."""


async def read_log(kube: KubeClient, namespace: str, pod: str, container: str, *,
                   tail: int | None = None, since_ns: int | None = None,
                   since_seconds: int | None = None) -> list[Line]:
    """The container's lines (timestamps on), the last ``tail`` of them, from ``since_ns``
    on (exact: the API's whole-second ``sinceTime`` is refined here).

    Lines sharing a timestamp are numbered (``Line.seq``) from the first of them, so a tail
    must not start inside such a group without knowing it: it is read one line longer, and
    when that line shares the first wanted line's timestamp, twice as long again, until a
    line before the group (or the log's start) shows where the group starts."""
    if not tail:
        return await _read(kube, namespace, pod, container, since_ns=since_ns,
                           since_seconds=since_seconds)
    longer = tail + 1
    while True:
        lines = await _read(kube, namespace, pod, container, tail=longer, since_ns=since_ns,
                            since_seconds=since_seconds)
        if len(lines) < longer or lines[0].ns != lines[-tail].ns or longer >= MAX_GROUP_READ:
            return lines[-tail:]
        longer *= 2


async def _read(kube: KubeClient, namespace: str, pod: str, container: str, *,
                tail: int | None = None, since_ns: int | None = None,
                since_seconds: int | None = None) -> list[Line]:
    query: dict[str, object] = {"container": container, "timestamps": True}
    if tail is not None:
        query["tailLines"] = tail
    if since_ns is not None:
        query["sinceTime"] = format_seconds(since_ns)
    elif since_seconds is not None:
        query["sinceSeconds"] = since_seconds
    response = await kube.open("GET", PODS.path(namespace, pod, "log"), query=query,
                               accept="*/*",
                               timeout=aiohttp.ClientTimeout(total=kube.request_timeout))
    try:
        body = await response.read()
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise KubeUnavailable(f"Kubernetes API server stopped answering: {exc!r}") from None
    finally:
        response.release()
    lines = parse_body(body, pod)
    if since_ns is not None:
        lines = [line for line in lines if line.ns >= since_ns]
    return lines
