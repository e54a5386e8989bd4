"""Label and field selectors with the API server's syntax and semantics.

Label selectors (``labels.Parse``): comma-separated requirements ``k``, ``!k``, ``k=v``,
``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k>1``, ``k<1``; ``!=`` and
``notin`` also match objects without the key. Field selectors (``fields.ParseSelector``):
``f=v``, ``f==v``, ``f!=v`` over the fields each resource type supports, with ``\\``
escapes. ``from_label_selector`` turns an object's ``spec.selector`` (matchLabels /
matchExpressions) into the same matcher, for validation and for the controllers of part 2.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from gpuctl_async.kuberules.naming import label_key_errors, label_value_errors
from gpuctl_async.sim.resources import ResourceType
from gpuctl_async.sim.status import StatusError, bad_request

_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|>|<|[^\s=!(),<>]+)")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        try:
            have, want = int(value), int(self.values[0])  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        return have > want if self.op == "gt" else have < want


class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    def __init__(self, requirements: list[Requirement]):
        self.requirements = requirements

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def matches(self, obj: dict) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)


def _parse_error(detail: str) -> StatusError:
    return bad_request(f"unable to parse requirement: {detail}")


def _check(key: str, values: tuple[str, ...]) -> None:
    problems = [f'key: Invalid value: "{key}": {e}' for e in label_key_errors(key)]
    for i, value in enumerate(values):
        problems += [f'values[{i}][{key}]: Invalid value: "{value}": {e}'
                     for e in label_value_errors(value)]
    if problems:
        raise _parse_error("; ".join(problems))


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``labelSelector``; a syntax error is a 400 BadRequest Status."""
    if not text or not text.strip():
        return LabelSelector([])
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos:].strip() == "":
                break
            raise _parse_error(f"unexpected character at position {pos} in {text!r}")
        tokens.append(match.group(1))
        pos = match.end()
    requirements = []
    i = 0

    def take() -> str | None:
        nonlocal i
        if i >= len(tokens):
            return None
        i += 1
        return tokens[i - 1]

    while i < len(tokens):
        token = take()
        negate = token == "!"
        key = take() if negate else token
        if key is None or key in "=!(),<>" or key in ("==", "!="):
            raise _parse_error(f"found '{key}', expected: identifier")
        op = take()
        if op is None or op == ",":
            requirements.append(Requirement(key, "!" if negate else "exists"))
            _check(key, ())
            continue
        if negate:
            raise _parse_error(f"found '{op}', expected: ',' or 'end of string'")
        if op in ("=", "==", "!="):
            value = "" if i >= len(tokens) or tokens[i] == "," else take()
            if value in ("=", "==", "!=", "!", "(", ")", "<", ">"):
                raise _parse_error(f"found '{value}', expected: identifier")
            requirements.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
            _check(key, (value,))
        elif op in ("in", "notin"):
            if take() != "(":
                raise _parse_error(f"found '{tokens[i - 1]}', expected: '('")
            values: list[str] = []
            while True:
                value = take()
                if value is None:
                    raise _parse_error("found 'end of string', expected: ')'")
                if value == ")":
                    break
                if value != ",":
                    values.append(value)
            if not values:
                raise _parse_error(f"for '{op}' operator, values set can't be empty")
            requirements.append(Requirement(key, op, tuple(values)))
            _check(key, tuple(values))
        elif op in (">", "<"):
            value = take()
            if value is None or not re.fullmatch(r"-?\d+", value):
                raise _parse_error(f"for '{op}' operator, the value must be an integer")
            requirements.append(Requirement(key, "gt" if op == ">" else "lt", (value,)))
            _check(key, ())
        else:
            raise _parse_error(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if i < len(tokens):
            if tokens[i] != ",":
                raise _parse_error(f"found '{tokens[i]}', expected: ',' or 'end of string'")
            i += 1
    return LabelSelector(requirements)


def from_label_selector(selector: dict | None) -> LabelSelector:
    """The matcher for a ``metav1.LabelSelector`` (``matchLabels`` + ``matchExpressions``).

    As in Kubernetes, a missing selector matches nothing, an empty one everything; callers
    that care about the difference test ``selector is None`` themselves.
    """
    selector = selector or {}
    requirements = [Requirement(k, "=", (str(v),))
                    for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists",
              "DoesNotExist": "!"}.get(expr.get("operator"))
        if op is None:
            raise ValueError(f"{expr.get('operator')!r} is not a valid selector operator")
        requirements.append(Requirement(expr.get("key", ""), op,
                                        tuple(expr.get("values") or ())))
    return LabelSelector(requirements)


class FieldSelector:
    """``field=value`` / ``field!=value`` terms, read through the resource's getters."""

    def __init__(self, terms: list[tuple[Callable[[dict], str], bool, str]]):
        self._terms = terms

    def __bool__(self) -> bool:
        return bool(self._terms)

    def matches(self, obj: dict) -> bool:
        return all((get(obj) == value) == equal for get, equal, value in self._terms)


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def parse_field_selector(text: str | None, rt: ResourceType,
                         label_text: str | None = None) -> FieldSelector:
    """Parse ``fieldSelector`` for ``rt``; unsupported fields are a 400 as in Kubernetes."""
    if not text or not text.strip():
        return FieldSelector([])
    getters = rt.field_getters
    terms = []
    for part in _split_unescaped(text, ","):
        if not part:
            continue
        match = re.match(r"^(.*?)(==|!=|=)(.*)$", part)
        if match is None:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        name, op, value = match.group(1).strip(), match.group(2), _unescape(match.group(3))
        getter = getters.get(name)
        if getter is None:
            qualified = f"{rt.group}/{rt.version}" if rt.group else f"/{rt.version}"
            raise bad_request(
                f'Unable to find "{qualified}, Resource={rt.plural}" that match label '
                f'selector "{label_text or ""}", field selector "{text}": field label not '
                f"supported: {name}")
        terms.append((getter, op != "!=", value))
    return FieldSelector(terms)
