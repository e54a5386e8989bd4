"""The current request's id and route template, for log records."""

from __future__ import annotations

import contextvars
import random
import re
from typing import NamedTuple

HEADER = "X-Request-ID"
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestContext(NamedTuple):
    """Immutable (a NamedTuple: made for every request, it costs a third less than a frozen
    dataclass)."""

    id: str
    route: str
    """The route template (``/api/v1/jobs/{jobId}``), never the raw path; ``unmatched``
    when no route matched."""


CURRENT: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "gpuctl_request", default=None)


def current() -> RequestContext | None:
    return CURRENT.get()


# A generator of its own, seeded from os.urandom when imported: nothing that seeds the
# module-level one (a test, a library) can make two replicas' ids repeat.
_bits = random.Random().getrandbits


def request_id(incoming: str | None) -> str:
    """The caller's id when acceptable, else a new one: 32 random hex digits, from the
    ``random`` module (an id must be unique, not secret: half the cost of ``os.urandom``'s
    system call per request; a uuid4 object would cost a few microseconds more)."""
    if incoming and _ACCEPTABLE.fullmatch(incoming):
        return incoming
    return "%032x" % _bits(128)

