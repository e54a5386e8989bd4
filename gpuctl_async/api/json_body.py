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
MAX_JSON_VALUES = 10_000
"""Most values (array items and object members, all levels) in a request body: a 1 MB body
of 400,000 numbers cost 7 s of validation and a 26 MB answer listing each one."""


def decode_json_body(raw: bytes) -> Any:
    """Parse a request body, or raise ``BadRequest`` naming the problem (never echoing it)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {_reason(exc)}") from None
    problem = _shape_problem(data)
    if problem:
        raise BadRequest(f"Request body refused: {problem}")
    return data


def decode_outcome(raw: bytes) -> tuple[bool, Any]:
    """:func:`decode_json_body` for a worker process: ``(True, data)`` or ``(False, message)``
    (a refused body never travels back, only the reason)."""
    try:
        return True, decode_json_body(raw)
    except BadRequest as exc:
        return False, exc.message


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


def _shape_problem(data: Any) -> str | None:
    """Containers nested past :data:`MAX_JSON_DEPTH`, or more than :data:`MAX_JSON_VALUES`
    values; iterative, so depth costs no stack, and only containers are visited."""
    if not isinstance(data, (dict, list)):
        return None
    stack = [(data, 1)]
    values = 0
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > MAX_JSON_DEPTH:
            return f"nested deeper than {MAX_JSON_DEPTH} levels"
        values += len(children)
        if values > MAX_JSON_VALUES:
            return f"more than {MAX_JSON_VALUES} values"
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, (dict, list)))
    return None
