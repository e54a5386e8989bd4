"""Decoding JSON request bodies: orjson, with bounds, in one place.

webargs would decode with the stdlib ``json`` module, which recurses once per nesting level
(a 2 KB body of ``[`` is a ``RecursionError``) and turns a 5,000-digit literal into a
``ValueError``. orjson refuses lone surrogates, numbers that overflow a double and nesting
past 1,024 levels by itself; on top of that no gpuctl request body nests deeper than a few
levels, so anything deeper than :data:`MAX_JSON_DEPTH` is refused before validation walks it.
"""

from __future__ import annotations

from typing import Any

import orjson

from gpuctl_async.errors import BadRequest

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays/objects accepted in a request body (documented in README)."""


def decode_json_body(raw: bytes) -> Any:
    """Parse a request body, or raise ``BadRequest`` naming the problem (never echoing it)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {_reason(exc)}") from None
    if _depth_exceeds(data, MAX_JSON_DEPTH):
        raise BadRequest(f"Request body is not valid JSON: nested deeper than {MAX_JSON_DEPTH} "
                         "levels")
    return data


def _reason(exc: orjson.JSONDecodeError) -> str:
    # orjson's wording, e.g. "unexpected character: line 1 column 2 (char 1)"; it names the
    # position, not the offending text, so nothing of the body is echoed.
    text = str(exc)
    if "depth limit" in text or "recursion limit" in text:
        return f"nested deeper than {MAX_JSON_DEPTH} levels"
    where = text.rsplit(": ", 1)[-1]
    if "UTF-8" in text:
        return f"not valid UTF-8 at {where}"
    if "surrogate" in text:
        return f"invalid Unicode (a lone surrogate escape) at {where}"
    if "infinity" in text:
        return f"number out of range at {where}"
    return text


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` deep; iterative, so depth costs no stack."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return False
