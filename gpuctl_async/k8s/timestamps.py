"""Kubernetes timestamps (RFC 3339, ``Z`` for UTC) as aware datetimes."""

from __future__ import annotations

from datetime import datetime


def parse_time(stamp: str | None) -> datetime | None:
    """The timestamp, or None when it is missing or unreadable."""
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
