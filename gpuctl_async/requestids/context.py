"""The current request's id and route template, for log records."""

from __future__ import annotations

import contextvars
import os
import re
from dataclasses import dataclass

HEADER = "X-Request-ID"
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(frozen=True, slots=True)
class RequestContext:
    id: str
    route: str
    """The route template (``/api/v1/jobs/{jobId}``), never the raw path; ``unmatched``
    when no route matched."""


CURRENT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "gpuctl_request", default=None)


def current() -> RequestContext | None:
    return CURRENT.get()


def request_id(incoming: str | None) -> str:
    """The caller's id when acceptable, else a new one (32 random hex digits; a uuid4 object
    would cost every request a few microseconds more)."""
    if incoming and _ACCEPTABLE.fullmatch(incoming):
        return incoming
    return os.urandom(16).hex()
