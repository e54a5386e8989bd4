"""Marshmallow fields for the value types of gpuctl YAML.

Each field accepts the loose forms people write in YAML and loads one canonical form, so the
manifest builders and the reverse mapping never have to guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from marshmallow import Schema, ValidationError, fields

from gpuctl_async.kuberules.naming import (
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_value_errors,
)
from gpuctl_async.kuberules.quantity import QuantityError, format_bytes, format_cpu, parse_quantity

# Kubernetes' own rule and message for environment variable names.
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
ENV_NAME_MESSAGE = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', "
    "'-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or "
    "'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
)


def _is_number(value: object) -> bool:
    # YAML booleans (yes/no/on/off) are ints to Python; they are never meant as numbers.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


MAX_TEXT_CHARS = 65_536
"""Longest string anywhere in a document (an inline script in ``args`` fits)."""
MAX_LIST_ITEMS = 1_000
"""Most items in ``command``, ``args`` and ``env``."""


class Text(fields.Field):
    """A string of at most :data:`MAX_TEXT_CHARS`; a YAML number is taken as its text
    (``name: 123``, ``value: 1``)."""

    default_error_messages = {
        "invalid": "Not a valid string.",
        "boolean": "Not a valid string; quote booleans to mean the text (e.g. 'true').",
        "too_long": f"Longer than {MAX_TEXT_CHARS} characters.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool):
            raise self.make_error("boolean")
        if isinstance(value, str):
            if len(value) > MAX_TEXT_CHARS:
                raise self.make_error("too_long")
            return value
        if _is_number(value):
            return str(value)
        raise self.make_error("invalid")


class BoundedList(fields.List):
    """A list of at most ``max_items``, refused before any item is loaded."""

    default_error_messages = {"too_many": "More than {max_items} items."}

    def __init__(self, inner: Any, *, max_items: int = MAX_LIST_ITEMS, **kwargs: Any):
        super().__init__(inner, **kwargs)
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list:
        if isinstance(value, list) and len(value) > self.max_items:
            raise self.make_error("too_many", max_items=self.max_items)
        return super()._deserialize(value, attr, data, **kwargs)


class WholeNumber(fields.Field):
    """An integer; integral floats (``2.0``) and digit strings (``"2"``) are accepted."""

    default_error_messages = {"invalid": "Not a valid integer."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)
        raise self.make_error("invalid")


def _quantity(value: Any) -> Decimal:
    if isinstance(value, bool) or not (isinstance(value, str) or _is_number(value)):
        raise QuantityError(value)
    return parse_quantity(value)


class _Quantity(fields.Field):
    """A quantity field: ``invalid``, ``negative`` and (unless ``allow_zero``) ``zero`` are
    refused here, the unit's own rules by the subclass."""

    def __init__(self, *, allow_zero: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.allow_zero = allow_zero

    def _amount(self, value: Any) -> Decimal:
        try:
            amount = _quantity(value)
        except QuantityError:
            raise self.make_error("invalid") from None
        if amount < 0:
            raise self.make_error("negative")
        if amount == 0 and not self.allow_zero:
            raise self.make_error("zero")
        return amount


class CpuQuantity(_Quantity):
    """Cores as a number or a quantity (``2``, ``1.5``, ``"500m"``), loaded in Kubernetes'
    canonical text (``"2"``, ``"1500m"``) so a value read back from the cluster compares equal."""

    default_error_messages = {
        "invalid": "Invalid CPU format, should be a number or millicores (e.g., 8000m)",
        "precision": "CPU must be a whole number of millicores (at least 1m)",
        "negative": "CPU cannot be negative",
        "zero": "CPU must be greater than 0",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        cores = self._amount(value)
        if (cores * 1000) != (cores * 1000).to_integral_value():
            raise self.make_error("precision")
        return format_cpu(cores)


class MemoryQuantity(_Quantity):
    """Bytes as a Kubernetes quantity (``512Mi``, ``32Gi``, ``1G``).

    A bare number means bytes, as it does in Kubernetes. Binary-suffixed values are loaded in
    Kubernetes' canonical form (``1024Mi`` → ``1Gi``); other forms are kept as written.
    """

    default_error_messages = {
        "invalid": "Invalid memory format, should be like 32Gi",
        "fraction": "Memory must be a whole number of bytes",
        "negative": "Memory cannot be negative",
        "zero": "Memory must be greater than 0",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        amount = self._amount(value)
        if amount != amount.to_integral_value():
            raise self.make_error("fraction")
        text = str(value).strip()
        if text.endswith("i"):
            return format_bytes(amount)
        return text


class EnvVars(fields.Field):
    """Environment variables, one per item: a list of ``{name, value}`` mappings or a mapping
    ``{NAME: value}``. Loaded as a list of ``{"name", "value"}`` with string values."""

    default_error_messages = {
        # make_error() formats these, hence the doubled braces.
        "invalid": "Must be a list of {{name, value}} items or a mapping of NAME: value.",
        "item": "Not a valid mapping; expected {name, value}.",
        "duplicate": "Duplicate environment variable name '{name}'.",
        "too_many": f"More than {MAX_LIST_ITEMS} variables.",
    }
    _value = Text()

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list:
        if isinstance(value, Mapping):
            items = [(str(key), {"name": key, "value": val}) for key, val in value.items()]
        elif isinstance(value, list):
            items = [(index, item) for index, item in enumerate(value)]
        else:
            raise self.make_error("invalid")
        if len(items) > MAX_LIST_ITEMS:
            raise self.make_error("too_many")
        errors: dict = {}
        result = []
        seen: set[str] = set()
        for where, item in items:
            loaded, problems = self._load_item(item)
            if problems:
                errors[where] = problems
                continue
            if loaded["name"] in seen:
                errors[where] = {"name": [self.error_messages["duplicate"].format(**loaded)]}
                continue
            seen.add(loaded["name"])
            result.append(loaded)
        if errors:
            raise ValidationError(errors)
        return result

    def _load_item(self, item: Any) -> tuple[dict, Any]:
        if not isinstance(item, Mapping):
            return {}, [self.error_messages["item"]]
        problems: dict = {}
        unknown = [key for key in item if key not in ("name", "value")]
        for key in unknown:
            problems[str(key)] = ["Unknown field."]
        name = item.get("name")
        if not isinstance(name, str):
            problems["name"] = ["Missing data for required field." if name is None
                                else "Not a valid string."]
        elif not _ENV_NAME.match(name):
            problems["name"] = [ENV_NAME_MESSAGE]
        raw_value = item.get("value")
        value = ""
        if raw_value is not None:
            try:
                value = self._value.deserialize(raw_value)
            except ValidationError as err:
                problems["value"] = err.messages
        return {"name": name, "value": value}, problems


class NamedEntries(fields.Field):
    """A mapping of names to blocks (``nodes: {node-a: {...}}``): every name is checked by
    ``name_errors`` and every block loaded with ``schema``; errors are reported under the name."""

    default_error_messages = {"invalid": "Not a valid mapping."}

    def __init__(self, schema: type[Schema], name_errors: Callable[[str], list[str]],
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.schema = schema
        self.name_errors = name_errors

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict:
        if not isinstance(value, Mapping):
            raise self.make_error("invalid")
        errors: dict = {}
        result = {}
        for key, block in value.items():
            name = str(key)
            name_problems = self.name_errors(name)
            if name_problems:
                errors[name] = name_problems
                continue
            try:
                # ``node-a:`` with nothing after it is an entry without settings.
                result[name] = self.schema().load({} if block is None else block)
            except ValidationError as err:
                errors[name] = err.messages
        if errors:
            raise ValidationError(errors)
        return result


def validator(check: Callable[[str], list[str]]) -> Callable[[str], None]:
    """Turn a ``value -> [problems]`` check into a marshmallow validator."""

    def validate(value: str) -> None:
        problems = check(value)
        if problems:
            raise ValidationError(problems)

    return validate


def non_empty_label_value_errors(value: str) -> list[str]:
    """A label value that selects something: pool names and GPU types."""
    if not value:
        return ["must not be empty"]
    return label_value_errors(value)


dns_label = validator(dns1123_label_errors)
dns_subdomain = validator(dns1123_subdomain_errors)
selectable_label_value = validator(non_empty_label_value_errors)
