"""``page`` / ``pageSize`` query parameters and slicing, shared by every list route."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from marshmallow import Schema, fields, validate

MAX_PAGE_SIZE = 100


class PageQuerySchema(Schema):
    """Base for list routes' query schemas."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1), metadata={
        "description": "Page number, from 1"})
    pageSize = fields.Integer(load_default=20, validate=validate.Range(min=1, max=MAX_PAGE_SIZE),
                              metadata={"description": f"Items per page (1-{MAX_PAGE_SIZE})"})


def paginate(items: Sequence[Any], query: dict) -> dict[str, Any]:
    """``{"total", "items"}`` for one page; a page past the end has no items."""
    start = (query["page"] - 1) * query["pageSize"]
    return {"total": len(items), "items": list(items[start:start + query["pageSize"]])}
