"""What a client of the multiplexed socket sends: one JSON object per text message.

``{"op": "subscribe", "id": "<client id>", "logs": {jobId, namespace?, pod?, container?,
tail?, since?, sinceSeconds?, sinceTime?, timestamps?}}``, ``{"op": "subscribe", "id": ...,
"jobs": {namespace?, kind?, pool?}}``, ``{"op": "unsubscribe", "id": ...}``. The log
parameters mean what they mean on ``WS /api/v1/jobs/{jobId}/logs/ws`` (the fields are the
API's own, ``api.params``: a JSON message is checked as strictly as a request).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from gpuctl_async.api.params import RFC3339, BodyBoolean, CursorField
from gpuctl_async.documents import JOB_KINDS

SUBSCRIBE, UNSUBSCRIBE = "subscribe", "unsubscribe"
LOGS, JOBS = "logs", "jobs"
MAX_ID = 128


class LogsSubscription(Schema):
    jobId = fields.String(required=True, validate=validate.Length(min=1, max=253))
    namespace = fields.String(validate=validate.Length(min=1, max=63))
    pod = fields.String(validate=validate.Length(min=1, max=253))
    container = fields.String(validate=validate.Length(min=1, max=63))
    tail = fields.Integer(load_default=100, validate=validate.Range(min=1, max=10000))
    since = CursorField()
    sinceSeconds = fields.Integer(validate=validate.Range(min=1))
    sinceTime = RFC3339()
    timestamps = BodyBoolean(load_default=True)

    @validates_schema
    def _one_since(self, data: dict, **kwargs) -> None:
        if "sinceSeconds" in data and "sinceTime" in data:
            raise ValidationError("give sinceSeconds or sinceTime, not both", "sinceTime")


class JobsSubscription(Schema):
    namespace = fields.String(validate=validate.Length(min=1, max=63))
    kind = fields.String(validate=validate.OneOf(JOB_KINDS))
    pool = fields.String(validate=validate.Length(min=1, max=63))


class ClientMessage(Schema):
    op = fields.String(required=True, validate=validate.OneOf((SUBSCRIBE, UNSUBSCRIBE)))
    id = fields.String(required=True, validate=validate.Length(min=1, max=MAX_ID))
    logs = fields.Nested(LogsSubscription)
    jobs = fields.Nested(JobsSubscription)

    @validates_schema
    def _one_stream(self, data: dict, **kwargs) -> None:
        given = [kind for kind in (LOGS, JOBS) if kind in data]
        if data.get("op") == SUBSCRIBE and len(given) != 1:
            raise ValidationError("a subscribe message names either logs or jobs", "logs")
        if data.get("op") == UNSUBSCRIBE and given:
            raise ValidationError("an unsubscribe message names only the id", given[0])


_CLIENT_MESSAGE = ClientMessage()
"""Loaded with again and again: a schema made per message copies its fields, which point back
at it (cycles), so every subscribe left garbage for the collector's passes."""


@dataclass(frozen=True)
class Message:
    op: str
    id: str
    kind: str | None = None
    """logs or jobs (subscribe only)."""
    params: dict | None = None


class ProtocolError(ValueError):
    """A message that cannot be acted on; ``id`` is the subscription named, if any."""

    def __init__(self, message: str, id: str | None = None,
                 details: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message, self.id, self.details = message, id, details or {}


def _flatten(messages: dict | list, prefix: str = "") -> dict[str, list[str]]:
    if isinstance(messages, list):
        return {prefix or "_schema": [str(m) for m in messages]}
    flat: dict[str, list[str]] = {}
    for key, value in messages.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def parse_message(text: str | bytes) -> Message:
    """The message, or ProtocolError naming the fields and what is wrong with them."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError("messages must be JSON objects") from None
    if not isinstance(data, dict):
        raise ProtocolError("messages must be JSON objects")
    given_id = data.get("id") if isinstance(data.get("id"), str) else None
    try:
        loaded = _CLIENT_MESSAGE.load(data)
    except ValidationError as exc:
        details = _flatten(exc.messages)
        raise ProtocolError("invalid message: " + "; ".join(
            f"{field}: {' '.join(problems)}" for field, problems in details.items()),
            given_id, details) from None
    kind = LOGS if LOGS in loaded else JOBS if JOBS in loaded else None
    return Message(loaded["op"], loaded["id"], kind, loaded.get(kind) if kind else None)
