"""Request fields that are stricter than marshmallow's defaults.

marshmallow's ``Boolean`` takes ``"off"``, ``"yes"``, ``1`` and ``0`` as booleans, so a body
with ``"dryRun": "off"`` created a real job. Bodies take JSON ``true``/``false`` only; query
strings, which have no types, take ``true|false|1|0``. ``RFC3339`` checks the whole grammar
(calendar, hour, offset within ±23:59) instead of whatever a lenient parser accepts.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

from marshmallow import ValidationError, fields

from gpuctl_async.logs.cursor import VERSION, Cursor, CursorError
from gpuctl_async.logs.lines import parse_ts


class BodyBoolean(fields.Boolean):
    """A JSON boolean: ``true`` or ``false``, nothing else (not 0/1, not strings)."""

    default_error_messages = {"invalid": "Not a valid boolean: must be true or false."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if type(value) is not bool:  # noqa: E721 - 1 == True, so isinstance/in would accept 1
            raise self.make_error("invalid")
        return value


class QueryBoolean(fields.Boolean):
    """A query-string boolean: ``true``, ``false``, ``1`` or ``0``."""

    truthy = {"true", "1"}
    falsy = {"false", "0"}
    default_error_messages = {"invalid": "Not a valid boolean: must be true, false, 1 or 0."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value in self.truthy and isinstance(value, str):
            return True
        if value in self.falsy and isinstance(value, str):
            return False
        raise self.make_error("invalid")


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
    r"(?:[Zz]|([+-])(\d{2}):(\d{2}))")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def rfc3339_errors(text: str) -> list[str]:
    """Problems with ``text`` as an RFC 3339 timestamp at or after the Unix epoch."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        return ["must be an RFC3339 timestamp, e.g. 2024-01-01T12:00:00Z"]
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    sign, off_hours, off_minutes = match.group(8), match.group(9), match.group(10)
    if sign and (int(off_hours) > 23 or int(off_minutes) > 59):
        return ["has an invalid UTC offset: at most ±23:59"]
    try:
        stamp = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError as exc:  # month 13, February 30, hour 24, second 60...
        return [f"is not a valid date and time: {exc}"]
    if sign:
        offset = timedelta(hours=int(off_hours), minutes=int(off_minutes))
        stamp -= offset if sign == "+" else -offset
    if stamp < EPOCH:
        return ["must be at or after 1970-01-01T00:00:00Z"]
    return []


class RFC3339(fields.String):
    """A timestamp such as ``2024-01-01T12:00:00.123456789Z``, loaded as nanoseconds since the
    epoch; documented as ``format: date-time``."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.metadata.setdefault("format", "date-time")

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        text = super()._deserialize(value, attr, data, **kwargs)
        problems = rfc3339_errors(text)
        if problems:
            raise self.make_error("invalid_rfc3339", problems=problems[0])
        return parse_ts(text)

    default_error_messages = {"invalid_rfc3339": "{problems}"}


class CursorField(fields.String):
    """``since``: the ``cursor`` of the last log frame seen (``logs.cursor``), or an RFC3339
    timestamp (checked as :class:`RFC3339` checks it), loaded as a :class:`Cursor`."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Cursor:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text.startswith(VERSION + "~"):
            problems = rfc3339_errors(text)
            if problems:
                raise ValidationError("must be the cursor of a log frame or an RFC3339 "
                                      "timestamp, e.g. 2024-01-01T12:00:00Z")
        try:
            return Cursor.parse(text)
        except CursorError as exc:
            raise ValidationError(str(exc)) from None
