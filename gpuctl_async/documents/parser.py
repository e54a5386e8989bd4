"""From YAML text to one validated, normalised gpuctl document.

Every problem ends as one ``ValidationFailed`` whose ``details`` map dotted field paths
(``resources.gpu``, ``environment.env.0.value``) to messages; problems with the text itself are
reported under ``yamlContent``, the request field that carries it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from marshmallow import Schema, ValidationError

from gpuctl_async.errors import ValidationFailed
from gpuctl_async.documents.hostpaths import SYSTEM_DIRECTORIES_ONLY, HostPathPolicy
from gpuctl_async.documents.jobs import JOB_SCHEMAS
from gpuctl_async.documents.pool import PoolDocumentSchema
from gpuctl_async.documents.quota import QuotaDocumentSchema

TEXT_FIELD = "yamlContent"
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_YAML_DEPTH = 20
"""Deepest nesting of YAML collections (a job document needs 4)."""
MAX_YAML_NODES = 20_000
"""Most YAML nodes (scalars and collections, aliases counted as what they expand to)."""
MAX_INT_DIGITS = 4000
"""Longest plain integer scalar; Python refuses to convert more than 4,300 digits."""
MAX_REPORTED_PATHS = 20
"""Most field paths in one validation answer (thousands of bad entries are not echoed)."""

# libyaml (C) where the PyYAML wheel has it: about 14 times faster than the Python parser.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_INTEGER = re.compile(r"[-+]?[0-9_]+")
# libyaml's scanner does work quadratic in the nesting of flow collections ([[[[...) before it
# hands out the first event, so that nesting is counted on the raw text first. Brackets inside
# quoted strings count too, hence a looser bound than MAX_YAML_DEPTH.
MAX_FLOW_BRACKETS = 64
_BRACKETS = re.compile(r"[\[\]{}]")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}

JOB_KINDS = tuple(JOB_SCHEMAS)
SCHEMAS: dict[str, type[Schema]] = {**JOB_SCHEMAS, "pool": PoolDocumentSchema,
                                    "quota": QuotaDocumentSchema}
ALL_KINDS = tuple(SCHEMAS)
KIND_ALIASES = {"resource": "pool"}


class _SafeLoaderWithoutDuplicateKeys(_BaseLoader):
    """``yaml.safe_load``'s loader, except that a key given twice in one mapping is an error
    instead of the last one silently winning (a second ``resources:`` hides the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key '{key_node.value}'", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class ParsedDocument:
    """A valid document: ``kind`` is canonical (``resource`` reads as ``pool``) and ``spec`` is
    the whole document with canonical keys and defaults filled in."""

    kind: str
    spec: dict

    @property
    def is_job(self) -> bool:
        return self.kind in JOB_KINDS

    @property
    def name(self) -> str:
        block = "job" if self.is_job else self.kind
        return self.spec[block]["name"]

    @property
    def namespace(self) -> str:
        """Target namespace of a job document."""
        return self.spec["job"]["namespace"]


def parse_document(text: str, *, max_bytes: int = MAX_DOCUMENT_BYTES,
                   allowed_kinds: Iterable[str] = ALL_KINDS,
                   host_paths: HostPathPolicy = SYSTEM_DIRECTORIES_ONLY) -> ParsedDocument:
    """Parse and validate one gpuctl YAML document, or raise ``ValidationFailed``.

    ``host_paths`` decides which node directories a job's ``storage.workdirs`` may mount."""
    data = _load_yaml(text, max_bytes)
    kind = _kind_of(data, tuple(allowed_kinds))
    return validate_document(kind, data, host_paths=host_paths)


def parse_outcome(text: str, allowed_kinds: tuple[str, ...],
                  host_paths: HostPathPolicy = SYSTEM_DIRECTORIES_ONLY,
                  ) -> ParsedDocument | tuple[str, dict[str, list[str]]]:
    """``parse_document`` for a worker process: a failure comes back as (summary, details),
    which pickles whole (the exception's keyword-only ``details`` would not)."""
    try:
        return parse_document(text, allowed_kinds=allowed_kinds, host_paths=host_paths)
    except ValidationFailed as err:
        return err.message, err.details


def validate_document(kind: str, data: Mapping, *,
                      host_paths: HostPathPolicy = SYSTEM_DIRECTORIES_ONLY) -> ParsedDocument:
    """Validate an already-loaded mapping as a document of ``kind`` (canonical kind name)."""
    schema = JOB_SCHEMAS[kind](host_paths=host_paths) if kind in JOB_SCHEMAS else SCHEMAS[kind]()
    try:
        spec = schema.load(data)
    except ValidationError as err:
        details = dict(_flatten(err.messages))
        # The summary counts every problem; the answer names at most MAX_REPORTED_PATHS.
        shown = dict(list(details.items())[:MAX_REPORTED_PATHS])
        raise ValidationFailed(_summary(details), details=shown) from None
    spec["kind"] = kind
    return ParsedDocument(kind=kind, spec=spec)


def _load_yaml(text: Any, max_bytes: int) -> Mapping:
    if not isinstance(text, str):
        _fail("Invalid YAML: expected a string", TEXT_FIELD, "must be a string of YAML")
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        _fail("YAML document too large", TEXT_FIELD,
              f"must be at most {max_bytes} bytes, got {size}")
    try:
        _check_bounds(text)
        data = yaml.load(text, Loader=_SafeLoaderWithoutDuplicateKeys)  # a SafeLoader
    except yaml.composer.ComposerError as err:
        if err.context == "expected a single document in the stream":
            _fail("YAML parsing error: only one document is allowed", TEXT_FIELD,
                  f"{_where(err)}only one YAML document is allowed, found another")
        _syntax_error(err)
    except yaml.MarkedYAMLError as err:
        _syntax_error(err)
    except yaml.reader.ReaderError as err:  # a character YAML does not allow, by position
        line = text.count("\n", 0, err.position)
        column = err.position - (text.rfind("\n", 0, err.position) + 1)
        message = (f"line {line + 1}, column {column + 1}: unacceptable character "
                   f"#x{err.character:04x}: {err.reason}")
        _fail(f"YAML parsing error: {message}", TEXT_FIELD, message)
    except yaml.YAMLError as err:  # other unmarked errors
        _fail(f"YAML parsing error: {err}", TEXT_FIELD, str(err))
    except (RecursionError, ValueError):  # both ruled out by _check_bounds; kept as a net
        _fail("YAML parsing error: too complex", TEXT_FIELD, "too deeply nested or too large")
    if not isinstance(data, Mapping):
        _fail("Invalid YAML: the document must be a mapping", TEXT_FIELD,
              "must be a YAML mapping with a 'kind' field")
    return data


class _TooComplex(yaml.MarkedYAMLError):
    """The text is beyond :data:`MAX_YAML_DEPTH`, :data:`MAX_YAML_NODES` or
    :data:`MAX_INT_DIGITS`; reported like a syntax error, with its line and column."""


def _check_bounds(text: str) -> None:
    """Walk the parser's events (libyaml: no Python object is built) and stop at the first
    one past a bound, so a hostile text costs at most ``MAX_YAML_NODES`` events."""
    _check_flow_nesting(text)
    depth = nodes = 0
    anchored: list[tuple[str | None, int]] = []  # open collections: (anchor, nodes before)
    sizes: dict[str, int] = {}  # anchor -> how many nodes an alias of it expands to
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            nodes += 1
            depth += 1
            anchored.append((event.anchor, nodes - 1))
            if depth > MAX_YAML_DEPTH:
                raise _TooComplex(problem=f"nested deeper than {MAX_YAML_DEPTH} levels",
                                  problem_mark=event.start_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
            anchor, before = anchored.pop()
            if anchor is not None:
                sizes[anchor] = nodes - before
        elif isinstance(event, yaml.ScalarEvent):
            nodes += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
            if (not event.style and len(event.value) > MAX_INT_DIGITS
                    and _INTEGER.fullmatch(event.value)):
                raise _TooComplex(problem=f"integer longer than {MAX_INT_DIGITS} digits",
                                  problem_mark=event.start_mark)
        elif isinstance(event, yaml.AliasEvent):
            nodes += sizes.get(event.anchor, 1)
        else:
            continue
        if nodes > MAX_YAML_NODES:
            raise _TooComplex(problem=f"more than {MAX_YAML_NODES} nodes (aliases count as "
                                      "what they expand to)", problem_mark=event.start_mark)


def _check_flow_nesting(text: str) -> None:
    depth = 0
    for match in _BRACKETS.finditer(text):
        depth += _BRACKET_STEP[match.group()]
        if depth > MAX_FLOW_BRACKETS:
            position = match.start()
            line = text.count("\n", 0, position)
            column = position - (text.rfind("\n", 0, position) + 1)
            raise _TooComplex(problem=f"brackets nested deeper than {MAX_FLOW_BRACKETS} levels",
                              problem_mark=yaml.Mark("<text>", position, line, column, None,
                                                     None))


def _kind_of(data: Mapping, allowed_kinds: tuple[str, ...]) -> str:
    if data.get("kind") is None:
        _fail("Invalid YAML: missing 'kind' field", "kind", "Missing data for required field.")
    given = data["kind"]
    kind = KIND_ALIASES.get(given, given) if isinstance(given, str) else None
    if kind not in allowed_kinds:
        _fail(f"Unsupported kind: {given}", "kind", f"Must be one of: {', '.join(allowed_kinds)}.")
    return kind


def _where(err: yaml.MarkedYAMLError) -> str:
    mark = err.problem_mark
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""


def _syntax_error(err: yaml.MarkedYAMLError) -> None:
    problem = err.problem or err.context or "invalid YAML"
    if err.context and err.problem:
        problem = f"{err.context}, {err.problem}"
    message = f"{_where(err)}{problem}"
    _fail(f"YAML parsing error: {message}", TEXT_FIELD, message)


def _fail(summary: str, path: str, message: str) -> None:
    raise ValidationFailed(summary, details={path: [message]})


def _flatten(messages: Any, path: str = "") -> Iterator[tuple[str, list[str]]]:
    """marshmallow's nested error dicts → (dotted path, messages); ``_schema`` errors belong
    to the block that holds them."""
    if isinstance(messages, Mapping):
        for key, nested in messages.items():
            child = path if key == "_schema" else f"{path}.{key}" if path else str(key)
            yield from _flatten(nested, child)
    elif isinstance(messages, list):
        yield path, [str(message) for message in messages]
    else:
        yield path, [str(messages)]


def _summary(details: Mapping[str, list[str]]) -> str:
    path, messages = next(iter(details.items()))
    summary = f"Validation error: {path}: {messages[0]}"
    more = sum(len(m) for m in details.values()) - 1
    return f"{summary} (and {more} more)" if more else summary
