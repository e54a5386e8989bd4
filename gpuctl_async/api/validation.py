"""Request validation with webargs/marshmallow, reported as our 400 envelope.

aiohttp-apigami validates bodies and query strings against the schemas declared on each
handler; this parser makes its failures domain errors, so they come out as
``{"error": ..., "details": {"field.path": [...]}}`` with status 400 (never 422).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NoReturn

from webargs import core
from webargs.aiohttpparser import AIOHTTPParser, is_json_request

from gpuctl_async.api.json_body import decode_json_body
from gpuctl_async.parsing import DOCUMENT_PARSER
from gpuctl_async.errors import ValidationFailed

_LOCATIONS = {"json", "querystring", "query", "match_info", "headers", "form", "cookies"}


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """``{"resources": {"gpu": ["bad"]}}`` → ``{"resources.gpu": ["bad"]}``."""
    if isinstance(messages, Mapping):
        flat: dict[str, list[str]] = {}
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_messages(value, path))
        return flat
    if isinstance(messages, (list, tuple)) and all(isinstance(m, str) for m in messages):
        return {prefix or "_schema": list(messages)}
    return {prefix or "_schema": [str(messages)]}


MAX_REPORTED_FIELDS = 20
"""At most this many fields are named in an answer: a list of thousands of bad items is not
echoed back item by item."""


def summarize(details: Mapping[str, list[str]]) -> str:
    names = sorted(details)
    more = len(names) - MAX_REPORTED_FIELDS
    fields = ", ".join(names[:MAX_REPORTED_FIELDS]) + (f" (and {more} more)" if more > 0 else "")
    return f"Invalid request: {fields}"


def bounded(details: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: details[name] for name in sorted(details)[:MAX_REPORTED_FIELDS]}


QUERY_CACHE_SIZE = 4096


class ApiParser(AIOHTTPParser):
    """Raises our errors, and remembers parsed query strings.

    Parsing is a pure function of (schema, query string), and on busy read routes (dashboards
    paging through the job list) the same few query strings come again and again; marshmallow
    costs more than serving the page itself there. Only successful parses are kept.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._queries: OrderedDict[tuple[int, str], Any] = OrderedDict()

    async def parse(self, argmap, req=None, *, location=None, **kwargs):
        if location != "querystring" or req is None:
            return await super().parse(argmap, req, location=location, **kwargs)
        key = (id(argmap), req.query_string)
        parsed = self._queries.get(key)
        if parsed is None:
            # Checked on a miss only (a hit was a valid query string): ``req.query`` is parsed
            # from the URL on first use, which a hit then never pays for.
            if "" in req.query:
                # marshmallow would call it an unknown field "" (reported as the body).
                raise ValidationFailed(
                    "Invalid query string: a parameter has no name",
                    details={"query": ["a parameter has no name (as in '?=x')"]})
            parsed = await super().parse(argmap, req, location=location, **kwargs)
            self._queries[key] = parsed
            if len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        else:
            self._queries.move_to_end(key)
        return parsed.copy() if type(parsed) is dict else copy.copy(parsed)

    def handle_error(self, error, req, schema, *, error_status_code, error_headers) -> NoReturn:
        messages = error.messages
        # webargs nests messages under the location ({"json": {...}}); drop that level.
        if isinstance(messages, Mapping) and set(messages) <= _LOCATIONS:
            merged: dict[str, Any] = {}
            for location_messages in messages.values():
                if isinstance(location_messages, Mapping):
                    merged.update(location_messages)
            messages = merged or messages
        # marshmallow files whole-input errors (e.g. a JSON null body) under "_schema".
        details = {("body" if path == "_schema" else path): problems
                   for path, problems in flatten_messages(messages).items()}
        raise ValidationFailed(summarize(details), details=bounded(details))

    async def load_json(self, req, schema):
        """The body through :func:`decode_json_body` (orjson, bounded) instead of stdlib json."""
        if not (req.body_exists and is_json_request(req)):
            return core.missing
        raw = await req.read()
        if not raw:
            return core.missing
        parser = req.app.get(DOCUMENT_PARSER)
        return decode_json_body(raw) if parser is None else await parser.decode_json(raw)
