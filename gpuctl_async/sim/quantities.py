"""Quantities as the API server stores them: parsed, then written back in canonical form.

``resource.Quantity`` keeps the format family of what it was given (binary ``Ki``..``Ei``,
decimal ``n``..``E``, or ``e`` exponents) and prints the shortest exact form of it: the
largest suffix that keeps the number an integer. So ``1073217536Ki`` is stored as
``1048064Mi``, ``1000m`` as ``1``, ``0.5`` as ``500m``, ``2000`` as ``2k``, ``1.5Gi`` as
``1536Mi``; a binary value below 1024, or one that is not a whole number of units, falls
back to decimal (``0.5Ki`` → ``512``). Values finer than ``1n`` round up to it, as the real
server's. Strings that are not quantities are left for validation to refuse.

``canonicalize(rt, obj)`` rewrites, in place, the quantity fields the sim's kinds carry:
container resources (pods and pod templates), node capacity and allocatable, and quota
hard/used.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from gpuctl_async.sim.resources import ResourceType

_NUMBER = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15,
            "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")


def _parse(text: str) -> tuple[Fraction, str] | None:
    """(value, format) with format "binary", "decimal" or "exponent"; None if invalid."""
    match = _NUMBER.match(text.strip())
    if not match:
        return None
    number, suffix = Fraction(match.group(1)), match.group(2)
    if suffix in _BINARY:
        return number * 1024 ** _BINARY[suffix], "binary"
    if suffix in _DECIMAL:
        return number * Fraction(10) ** _DECIMAL[suffix], "decimal"
    exponent = _EXPONENT.match(suffix)
    if exponent:
        return number * Fraction(10) ** int(exponent.group(1)), "exponent"
    return None


def _decimal(value: Fraction, exponent_form: bool) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    nanos = value * 10 ** 9
    units = math.ceil(nanos)  # finer than 1n rounds up
    if units == 0:
        return "0"
    exp = -9
    while units % 1000 == 0 and (exponent_form or exp < 18):
        units //= 1000
        exp += 3
    if exponent_form:
        return f"{sign}{units}" + (f"e{exp}" if exp else "")
    return f"{sign}{units}{_DECIMAL_SUFFIX[exp]}"


def canonical(text: str) -> str:
    """The stored form of a quantity string (unchanged if it is not one)."""
    parsed = _parse(text) if isinstance(text, str) else None
    if parsed is None:
        return text
    value, form = parsed
    if form == "binary":
        if value.denominator == 1 and abs(value) >= 1024:
            number, power = int(value), 0
            while power < 6 and number % 1024 == 0:
                number //= 1024
                power += 1
            suffix = next(s for s, p in _BINARY.items() if p == power) if power else ""
            return f"{number}{suffix}"
        form = "decimal"
    return _decimal(value, form == "exponent")


def _resource_list(resources: object) -> None:
    if isinstance(resources, dict):
        for key, value in resources.items():
            if isinstance(value, str):
                resources[key] = canonical(value)


def _pod_spec(spec: object) -> None:
    if not isinstance(spec, dict):
        return
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or ():
            if isinstance(container, dict) and isinstance(container.get("resources"), dict):
                for part in ("limits", "requests"):
                    _resource_list(container["resources"].get(part))
    _resource_list(spec.get("overhead"))


def canonicalize(rt: ResourceType, obj: dict) -> None:
    """Rewrite the quantity fields of ``obj`` in place."""
    if rt.plural == "pods":
        _pod_spec(obj.get("spec"))
    elif rt.plural in ("deployments", "replicasets", "statefulsets", "jobs"):
        template = (obj.get("spec") or {}).get("template") if isinstance(
            obj.get("spec"), dict) else None
        if isinstance(template, dict):
            _pod_spec(template.get("spec"))
    elif rt.plural == "nodes":
        status = obj.get("status")
        if isinstance(status, dict):
            _resource_list(status.get("capacity"))
            _resource_list(status.get("allocatable"))
    elif rt.plural == "resourcequotas":
        for part in ("spec", "status"):
            section = obj.get(part)
            if isinstance(section, dict):
                _resource_list(section.get("hard"))
                if part == "status":
                    _resource_list(section.get("used"))
