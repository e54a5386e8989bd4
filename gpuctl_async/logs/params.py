"""The parameters of following a job's logs, shared by every transport (the log WebSocket's
and the event stream's query string, the multiplexed socket's ``subscribe`` message)."""

from __future__ import annotations

from marshmallow import ValidationError, fields

from gpuctl_async.logs.cursor import Cursor, CursorError
from gpuctl_async.logs.lines import parse_ts
from gpuctl_async.logs.session import FollowOptions


class RFC3339(fields.String):
    """A timestamp such as ``2024-01-01T12:00:00.123456789Z``, loaded as nanoseconds."""

    def _deserialize(self, value, attr, data, **kwargs) -> int:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_ts(text)
        except ValueError:
            raise ValidationError("must be an RFC3339 timestamp, e.g. "
                                  "2024-01-01T12:00:00Z") from None


class CursorField(fields.String):
    """``since``: the ``cursor`` of the last frame seen, or an RFC3339 timestamp."""

    def _deserialize(self, value, attr, data, **kwargs) -> Cursor:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return Cursor.parse(text)
        except CursorError as exc:
            raise ValidationError(str(exc)) from None


def follow_options(params: dict) -> FollowOptions:
    """The session options of loaded parameters (``pod``, ``container``, ``tail``, ``since``,
    ``sinceTime``, ``sinceSeconds``)."""
    return FollowOptions(pod=params.get("pod"), container=params.get("container"),
                         tail=params["tail"], resume=params.get("since"),
                         since_time_ns=params.get("sinceTime"),
                         since_seconds=params.get("sinceSeconds"))
