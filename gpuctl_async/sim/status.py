"""Errors as the API server reports them: ``Status`` objects with reason, details and code.

Everything in the sim that refuses a request raises ``StatusError``; the HTTP layer sends its
``status`` dict as the body with ``code`` as the HTTP status, and watch streams wrap it in an
``ERROR`` event. Messages follow the real server's wording so clients (kubectl, the service)
show what they would show against a real cluster.
"""

from __future__ import annotations

import orjson

from gpuctl_async.sim.resources import ResourceType


class StatusError(Exception):
    """A request refused with a Kubernetes ``Status``."""

    def __init__(self, code: int, reason: str, message: str, details: dict | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    @property
    def status(self) -> dict:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason}
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body

    def encode(self) -> bytes:
        return orjson.dumps(self.status)


class FieldError:
    """One ``field.Error``: rendered as ``<field>: <Type>: <value>: <detail>``."""

    _LABELS = {"FieldValueInvalid": "Invalid value", "FieldValueRequired": "Required value",
               "FieldValueNotSupported": "Unsupported value",
               "FieldValueDuplicate": "Duplicate value", "FieldValueForbidden": "Forbidden"}
    _NO_VALUE = object()

    def __init__(self, reason: str, field: str, value: object = _NO_VALUE, detail: str = ""):
        self.reason = reason
        self.field = field
        self.value = value
        self.detail = detail

    @classmethod
    def invalid(cls, field: str, value: object, detail: str) -> FieldError:
        return cls("FieldValueInvalid", field, value, detail)

    @classmethod
    def required(cls, field: str, detail: str = "") -> FieldError:
        return cls("FieldValueRequired", field, detail=detail)

    @classmethod
    def not_supported(cls, field: str, value: object, supported: list[str]) -> FieldError:
        quoted = ", ".join(f'"{s}"' for s in supported)
        return cls("FieldValueNotSupported", field, value, f"supported values: {quoted}")

    @classmethod
    def duplicate(cls, field: str, value: object) -> FieldError:
        return cls("FieldValueDuplicate", field, value)

    @classmethod
    def forbidden(cls, field: str, detail: str) -> FieldError:
        return cls("FieldValueForbidden", field, detail=detail)

    def message(self) -> str:
        parts = [self._LABELS[self.reason]]
        if self.value is not self._NO_VALUE:
            parts.append(_render(self.value))
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts)

    def __str__(self) -> str:
        return f"{self.field}: {self.message()}"


def _render(value: object) -> str:
    if isinstance(value, str):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def _qualified(rt: ResourceType) -> str:
    return f"{rt.plural}.{rt.group}" if rt.group else rt.plural


def _details(rt: ResourceType, name: str, kind: str | None = None) -> dict:
    details: dict = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = kind or rt.plural
    return details


def not_found(rt: ResourceType, name: str) -> StatusError:
    return StatusError(404, "NotFound", f'{_qualified(rt)} "{name}" not found',
                       _details(rt, name))


def path_not_found() -> StatusError:
    return StatusError(404, "NotFound", "the server could not find the requested resource",
                       {})


def already_exists(rt: ResourceType, name: str) -> StatusError:
    return StatusError(409, "AlreadyExists", f'{_qualified(rt)} "{name}" already exists',
                       _details(rt, name))


def conflict(rt: ResourceType, name: str,
             why: str = "the object has been modified; please apply your changes to the "
                        "latest version and try again") -> StatusError:
    return StatusError(409, "Conflict",
                       f'Operation cannot be fulfilled on {_qualified(rt)} "{name}": {why}',
                       _details(rt, name))


def invalid(rt: ResourceType, name: str, errors: list[FieldError]) -> StatusError:
    kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    rendered = [str(e) for e in errors]
    summary = rendered[0] if len(rendered) == 1 else f"[{', '.join(rendered)}]"
    details = _details(rt, name, rt.kind)
    details["causes"] = [{"reason": e.reason, "message": e.message(), "field": e.field}
                         for e in errors]
    return StatusError(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', details)


def forbidden(rt: ResourceType, name: str, why: str) -> StatusError:
    return StatusError(403, "Forbidden", f'{_qualified(rt)} "{name}" is forbidden: {why}',
                       _details(rt, name))


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def expired(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def unauthorized() -> StatusError:
    return StatusError(401, "Unauthorized", "Unauthorized")


def unavailable(message: str) -> StatusError:
    return StatusError(503, "ServiceUnavailable", message)


def method_not_allowed(rt: ResourceType, verb: str) -> StatusError:
    return StatusError(405, "MethodNotAllowed",
                       f'{verb} is not supported on resources of kind "{_qualified(rt)}"',
                       {"group": rt.group, "kind": rt.plural} if rt.group
                       else {"kind": rt.plural})


def unsupported_media_type(content_type: str, accepted: list[str]) -> StatusError:
    return StatusError(415, "UnsupportedMediaType",
                       f"the body of the request was in an unknown format - accepted media "
                       f"types include: {', '.join(accepted)}",
                       {"causes": [{"reason": "UnexpectedServerResponse",
                                    "message": content_type}]})


def success(rt: ResourceType, name: str, uid: str) -> dict:
    """What DELETE answers for types that do not return the deleted object."""
    details = _details(rt, name)
    details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}
