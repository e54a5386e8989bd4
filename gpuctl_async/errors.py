"""Domain errors and the one place that decides their HTTP status.

Domain code (specs, Kubernetes access, services) raises these; the error middleware turns
them into ``{"error": message, "details"?: {...}}`` responses. Nothing below the HTTP layer
imports aiohttp's web exceptions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class GpuctlError(Exception):
    """Base class: a failure with a message that is safe to show to the client."""

    status: int = 500

    def __init__(self, message: str, *, details: Mapping[str, Sequence[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.details = {key: list(value) for key, value in (details or {}).items()}

    def to_body(self) -> dict:
        body: dict = {"error": self.message}
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(GpuctlError):
    """The request is malformed or names something invalid (400)."""

    status = 400


class ValidationFailed(BadRequest):
    """Field-level validation failed; ``details`` maps field paths to messages (400)."""


class Forbidden(GpuctlError):
    """Refused by policy: a quota, or a namespace gpuctl does not own (403)."""

    status = 403


class NotFound(GpuctlError):
    """The named job, node, pool, namespace or quota does not exist (404)."""

    status = 404


class Conflict(GpuctlError):
    """The request clashes with what exists (409)."""

    status = 409


class Unavailable(GpuctlError):
    """The Kubernetes API server cannot be reached or is not ready (503)."""

    status = 503
