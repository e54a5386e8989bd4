"""The strict schema every gpuctl YAML block is built on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, pre_load


class StrictSchema(Schema):
    """Rejects unknown keys, folds alias keys into their canonical camelCase name, and reads an
    explicit ``null`` for an optional key as "use the default" (YAML's ``key:`` with nothing
    after it)."""

    aliases: ClassVar[Mapping[str, str]] = {}

    class Meta:
        unknown = RAISE

    @pre_load
    def _canonical_keys(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, Mapping):
            return data  # marshmallow reports "Invalid input type."
        result: dict = {}
        written_as: dict = {}
        errors: dict = {}
        for key, value in data.items():
            canonical = self.aliases.get(key, key)
            if canonical in written_as:
                errors[str(key)] = [f"Duplicates '{written_as[canonical]}'; give only one of them."]
                continue
            written_as[canonical] = key
            field = self.fields.get(canonical) if isinstance(canonical, str) else None
            if value is None and field is not None and not field.required:
                continue
            result[canonical] = value
        if errors:
            raise ValidationError(errors)
        return result


def defaults_of(schema: type[Schema]) -> Callable[[], dict]:
    """``load_default`` for an optional block: the block with all its defaults filled in."""
    return lambda: schema().load({})
